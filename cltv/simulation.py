"""Vectorised simulation for the CLTV models: generative draws and per-customer posterior CLV draws.

Two uses:

1. ``simulate_population`` / ``simulate_spend`` draw synthetic customers from the generative
   processes (BG/NBD: Fader, Hardie & Lee 2005, Marketing Science 24(2); MBG/NBD: Batislam,
   Denizel & Filiztekin 2007; Pareto/NBD: Schmittlein, Morrison & Colombo 1987; Gamma-Gamma:
   Fader, Hardie & Lee 2005, "RFM and CLV", JMR 42(4), and Hardie's note 025). They replace
   lifetimes' per-customer Python loops (``lifetimes.generate_data``) with array draws.

2. ``simulate_clv`` draws each customer's *predictive* distribution of discounted future value
   over a horizon, given the fitted population parameters and the customer's (x, t_x, T, m_x).

Posterior used by ``simulate_clv`` (exact for these models, conditional on the point estimates of
the population parameters — parameter-estimation uncertainty is not propagated):

* alive at T ~ Bernoulli(P(alive | x, t_x, T)) (closed form from the fitted model);
* BG/NBD, conditional on alive: the likelihood is λ^x e^{-λT} (1-p)^x, so
  λ ~ Gamma(r + x, rate α + T) and p ~ Beta(a, b + x), independent. (The often-quoted
  Beta(a + x, b + x - 1) is not this posterior; a customer known to be alive has survived x
  dropout chances, which only adds to b.) MBG/NBD adds the dropout chance at time 0:
  p ~ Beta(a, b + x + 1). Future: Poisson(λ) purchases, the customer leaves after each one with
  probability p, i.e. at most K ~ Geometric(p) further purchases.
* Pareto/NBD, conditional on alive: λ ~ Gamma(r + x, rate α + T), μ ~ Gamma(s, rate β + T);
  remaining lifetime ~ Exponential(μ) (memoryless).
* spend: ν ~ Gamma(p·x + q, rate γ + x·m_x) (Gamma-Gamma posterior; x·m_x is the total repeat
  spend), each future transaction ~ Gamma(p, rate ν), so the spend of n transactions is
  Gamma(n·p, rate ν). Customers without informative spend (x = 0 or m_x <= 0) use the prior
  ν ~ Gamma(q, rate γ), whose mean transaction value is the population mean p·γ/(q-1).

Purchases: the count M over the active part of the horizon is Poisson and, given M, the arrival
times are iid uniform; with BG-type dropout only the first K arrivals count (the K-th of M
uniforms is h·Beta(K, M−K+1), the earlier ones are uniform below it), so each kept purchase is
drawn once, with its own Gamma(p, rate ν) value, and discounted at the end of its step with
(1 + annual rate)^(-days/365) — the discretisation the closed form in ``pipeline`` uses, so the
simulated mean matches the closed-form expected CLV up to Monte-Carlo error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

BG_MODELS = ("bgnbd", "mbgnbd")


@dataclass(frozen=True)
class HorizonSteps:
    """Discounting grid over a horizon expressed in model time units."""

    edges: np.ndarray  # step end times, in units (last == horizon)
    lengths: np.ndarray  # step lengths, in units
    discount: np.ndarray  # discount factor applied to each step's value

    @classmethod
    def build(
        cls, horizon_days: float, step_days: float, unit_days: float, annual_discount_rate: float
    ) -> HorizonSteps:
        """Steps of ``step_days`` (last one shorter) covering ``horizon_days``; discount at step end."""
        if horizon_days <= 0 or step_days <= 0:
            raise ValueError("horizon and step must be positive")
        if annual_discount_rate <= -1:
            raise ValueError("annual discount rate must be > -1")
        n = int(np.ceil(horizon_days / step_days - 1e-9))
        edges_days = np.minimum(np.arange(1, n + 1) * step_days, horizon_days)
        edges = edges_days / unit_days
        lengths = np.diff(np.r_[0.0, edges])
        discount = (1.0 + annual_discount_rate) ** (-edges_days / 365.0)
        return cls(edges=edges, lengths=lengths, discount=discount)


@dataclass
class SimulationResult:
    """Per-customer quantiles and mean of simulated CLV, plus per-group sums by draw."""

    quantiles: np.ndarray  # (n_customers, len(q))
    mean: np.ndarray  # (n_customers,)
    q: tuple[float, ...]
    group_draws: np.ndarray | None  # (n_groups, n_draws): sum of CLV draws over each group's customers


def _gamma(rng: np.random.Generator, shape: np.ndarray, rate: np.ndarray) -> np.ndarray:
    return rng.gamma(shape, 1.0 / rate)


def simulate_population(
    model: str, params: Mapping[str, float], T: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Draw (frequency, recency, alive) for customers observed for T units since their first purchase.

    Vectorised equivalent of lifetimes' ``beta_geometric_nbd_model``,
    ``modified_beta_geometric_nbd_model`` and ``pareto_nbd_model``. The x-th of N(T) = M uniform
    arrival times has the Beta(x, M - x + 1) distribution, which gives the recency without
    materialising the arrivals. Returns also the true ``lam`` and ``p`` (or ``mu``).
    """
    T = np.asarray(T, dtype=float)
    n = T.shape[0]
    r, alpha = params["r"], params["alpha"]
    lam = rng.gamma(r, 1.0 / alpha, n)
    out: dict[str, np.ndarray] = {"lam": lam}
    if model in BG_MODELS:
        p = rng.beta(params["a"], params["b"], n)
        out["p"] = p
        m = rng.poisson(lam * T)
        if model == "bgnbd":
            k = rng.geometric(p)  # repeat purchases until (and including) the one after which they leave
        else:
            k = rng.geometric(p) - 1  # MBG/NBD: may also leave right after the first purchase
        x = np.minimum(m, k)
        alive = m < k
        active = T
    elif model == "pareto_nbd":
        mu = rng.gamma(params["s"], 1.0 / params["beta"], n)
        out["mu"] = mu
        life = rng.exponential(1.0 / mu)
        active = np.minimum(life, T)
        x = rng.poisson(lam * active)
        alive = life > T
        m = x
    else:
        raise ValueError(f"unknown model {model!r}")
    rec = np.zeros(n)
    pos = x > 0
    rec[pos] = active[pos] * rng.beta(x[pos], m[pos] - x[pos] + 1)
    out.update(frequency=x.astype(float), recency=rec, T=T, alive=alive)
    return out


def simulate_spend(
    gg_params: Mapping[str, float], frequency: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Gamma-Gamma draws: (ν per customer, mean value m_x of x transactions; 0 when x = 0).

    z ~ Gamma(p, rate ν), ν ~ Gamma(q, rate γ); the sum of x values is Gamma(p·x, rate ν).
    """
    p, q, v = gg_params["p"], gg_params["q"], gg_params["v"]
    x = np.asarray(frequency, dtype=float)
    nu = rng.gamma(q, 1.0 / v, x.shape[0])
    total = np.where(x > 0, rng.gamma(np.maximum(p * x, 1e-12), 1.0 / nu), 0.0)
    return nu, np.where(x > 0, total / np.maximum(x, 1), 0.0)


def _zero_truncated_nbinom(
    rng: np.random.Generator, shape: np.ndarray, q: np.ndarray, p0: np.ndarray, max_terms: int = 400
) -> np.ndarray:
    """Draws of M ~ NegBin(shape, q) conditioned on M > 0 (pmf(0) = p0 = q^shape).

    Rows with a likely zero (p0 > 0.3) use the inverse CDF with the pmf recursion
    pmf(k) = pmf(k-1)·(shape + k - 1)/k·(1 - q); the others rejection-sample (≤ 1/0.7 tries each).
    """
    out = np.zeros(shape.shape[0], dtype=np.int64)
    low = p0 > 0.3
    rows = np.flatnonzero(low)
    if rows.shape[0]:
        target = p0[rows] + rng.random(rows.shape[0]) * (1.0 - p0[rows])
        pmf = p0[rows]
        cdf = pmf.copy()
        sh, qq = shape[rows], 1.0 - q[rows]
        k = 0
        while rows.shape[0] and k < max_terms:  # the pending set shrinks fast: most draws are 1 or 2
            k += 1
            pmf = pmf * (sh + k - 1) / k * qq
            cdf = cdf + pmf
            hit = cdf >= target
            out[rows[hit]] = k
            keep = ~hit
            rows, target, pmf, cdf, sh, qq = rows[keep], target[keep], pmf[keep], cdf[keep], sh[keep], qq[keep]
        low[rows] = False  # float round-off left the target unreached: rejection below
    rest = np.flatnonzero(~low)
    while rest.shape[0]:
        m = rng.negative_binomial(shape[rest], q[rest])
        out[rest[m > 0]] = m[m > 0]
        rest = rest[m == 0]
    return out


def simulate_clv(
    model: str,
    params: Mapping[str, float],
    gg_params: Mapping[str, float],
    frequency: np.ndarray,
    recency: np.ndarray,
    T: np.ndarray,
    monetary_value: np.ndarray,
    p_alive: np.ndarray,
    steps: HorizonSteps,
    *,
    margin: float = 1.0,
    n_draws: int = 200,
    seed: int = 0,
    chunk_size: int = 10_000,
    q: tuple[float, ...] = (0.1, 0.5, 0.9),
    groups: np.ndarray | None = None,
    n_groups: int | None = None,
) -> SimulationResult:
    """Posterior-predictive draws of each customer's discounted future value (see module docstring).

    Memory is O(chunk_size · n_draws); the result holds only the requested quantiles,
    the mean and, when ``groups`` (int codes 0..n_groups-1) is given, the per-group sum of every
    draw (draws are aligned across customers, so the group sum's quantiles are the cohort band).
    """
    x = np.asarray(frequency, dtype=float)
    T = np.asarray(T, dtype=float)
    m = np.asarray(monetary_value, dtype=float)
    pa = np.clip(np.nan_to_num(np.asarray(p_alive, dtype=float), nan=0.0), 0.0, 1.0)
    n = x.shape[0]
    gp, gq, gv = gg_params["p"], gg_params["q"], gg_params["v"]
    informative = (x > 0) & (m > 0)
    x_eff = np.where(informative, x, 0.0)
    spend_total = np.where(informative, x * m, 0.0)
    horizon = float(steps.edges[-1])
    step_len = float(steps.lengths[0])  # all steps but the last have this length
    n_steps = steps.edges.shape[0]
    quant = np.empty((n, len(q)))
    mean = np.empty(n)
    group_draws = None
    if groups is not None:
        groups = np.asarray(groups, dtype=np.int64)
        n_groups = int(n_groups if n_groups is not None else (groups.max() + 1 if n else 0))
        group_draws = np.zeros((n_groups, n_draws))
    if model in BG_MODELS:
        nb_shape = params["r"] + x
        nb_q = (params["alpha"] + T) / (params["alpha"] + T + horizon)
        nb_p0 = np.exp(nb_shape * np.log(nb_q))
        p_buy = pa * (1.0 - nb_p0)
    elif model != "pareto_nbd":
        raise ValueError(f"unknown model {model!r}")
    rng = np.random.default_rng(seed)
    for lo in range(0, n, chunk_size):
        hi = min(lo + chunk_size, n)
        c = hi - lo
        values = np.zeros(c * n_draws)
        if model in BG_MODELS:
            # λ only matters through M = N(horizon) ~ NegBin(r + x, q) (Poisson-Gamma mixture), so
            # "alive and buys at least once" is one Bernoulli(P(alive)·(1 − q^(r+x))) per draw and
            # only those draws get a (zero-truncated) M: non-buying draws cost a single uniform.
            buy = rng.random(c * n_draws) < np.repeat(p_buy[lo:hi], n_draws)
            idx = np.flatnonzero(buy)
            ci = lo + idx // n_draws
            total = _zero_truncated_nbinom(rng, nb_shape[ci], nb_q[ci], nb_p0[ci])
            active = np.full(idx.shape[0], horizon)
        else:
            alive = rng.random(c * n_draws) < np.repeat(pa[lo:hi], n_draws)
            idx = np.flatnonzero(alive)
            ci = lo + idx // n_draws
            lam = _gamma(rng, params["r"] + x[ci], params["alpha"] + T[ci])
            mu = _gamma(rng, params["s"], params["beta"] + T[ci])
            active = np.minimum(rng.exponential(1.0 / mu), horizon)
            total = rng.poisson(lam * active)
            buy = total > 0
            idx, ci, total, active = idx[buy], ci[buy], total[buy], active[buy]
        if idx.shape[0]:
            n_buy = total
            capped = np.zeros(idx.shape[0], dtype=bool)
            if model in BG_MODELS:
                # p is independent of λ given the data, so it is drawn only where purchases occur.
                # The customer leaves after the K-th purchase: if K <= M (the Poisson count over the
                # horizon), the purchases are the first K of M uniform arrivals — the K-th at
                # D = h·Beta(K, M-K+1) and the other K-1 uniform on [0, D] — so no sorting is needed.
                extra = 1.0 if model == "mbgnbd" else 0.0
                k = rng.geometric(rng.beta(params["a"], params["b"] + x[ci] + extra))
                capped = k <= total
                n_buy = np.where(capped, k, total)
                active = active.copy()
                active[capped] = active[capped] * rng.beta(k[capped], total[capped] - k[capped] + 1)
            rows = np.repeat(np.arange(idx.shape[0]), n_buy)
            times = rng.random(rows.shape[0]) * active[rows]
            first = np.cumsum(n_buy) - n_buy
            times[first[capped]] = active[capped]  # the purchase after which the customer leaves
            step = np.minimum((times / step_len).astype(np.int64), n_steps - 1)
            nu = _gamma(rng, gp * x_eff[ci] + gq, gv + spend_total[ci])
            # purchases of one draw in one step: n values ~ Gamma(p, rate ν) sum to Gamma(n·p, rate ν)
            per_cell = np.bincount(rows * n_steps + step, minlength=idx.shape[0] * n_steps)
            cells = np.flatnonzero(per_cell)
            crow, cstep = np.divmod(cells, n_steps)
            spend = rng.gamma(gp * per_cell[cells], 1.0 / nu[crow])
            values[idx] = margin * np.bincount(crow, weights=spend * steps.discount[cstep], minlength=idx.shape[0])
        values = values.reshape(c, n_draws)
        quant[lo:hi] = np.quantile(values, q, axis=1).T
        mean[lo:hi] = values.mean(axis=1)
        if group_draws is not None:
            g = groups[lo:hi]
            order = np.argsort(g, kind="stable")
            gs = g[order]
            starts = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]])
            group_draws[gs[starts]] += np.add.reduceat(values[order], starts, axis=0)
    return SimulationResult(quantiles=quant, mean=mean, q=tuple(q), group_draws=group_draws)
