"""CLTV pipeline: probabilistic customer-base models fitted with lifetimes, scored in numpy.

Models (all fitted by maximum likelihood with lifetimes' fitters):

* BG/NBD — Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An Alternative to
  the Pareto/NBD Model", Marketing Science 24(2), 275-284 (likelihood eq. 6, conditional
  expectation eq. 10, P(alive): Hardie's note 021).
* MBG/NBD — Batislam, Denizel & Filiztekin (2007), IJRM 24(3), 201-209.
* Pareto/NBD — Schmittlein, Morrison & Colombo (1987); Fader & Hardie note 009.
* Gamma-Gamma spend — Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves for
  Customer Base Analysis", JMR 42(4); Hardie's note 025. lifetimes' parameters (p, q, v) are the
  papers' (p, q, γ); E[M | x, m_x] = (p·v + p·x·m_x) / (p·x + q − 1).

Scale: the likelihood of these models depends on a customer only through (x, t_x, T) (and
(x, m_x) for Gamma-Gamma), so the fit runs on the *unique* rows with their counts as lifetimes'
``weights`` (Fader & Hardie's condensed data). lifetimes divides the weighted log-likelihood by
the total weight, so the weighted and the per-customer objectives are identical and so are the
estimates; closed-form scores are computed on the unique rows too and broadcast back.

Time: model time unit "D" (days) or "W" (weeks); horizons are given in days and converted.

CLV over a horizon (lifetimes' ``customer_lifetime_value`` discretisation, with an annual rate):
    CLV = margin · E[M | x, m_x] · Σ_s d_s · (E[N(t_s) | x, t_x, T] − E[N(t_{s−1}) | x, t_x, T]),
    d_s = (1 + annual_rate)^(−days(t_s)/365), steps of ``step_days`` (a month by default).
Its uncertainty (P10/P50/P90) comes from ``cltv.simulation.simulate_clv``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter, ParetoNBDFitter

from cltv.simulation import HorizonSteps, SimulationResult, simulate_clv, simulate_population
from cltv.summary import (
    ReturnsPolicy,
    TimeUnit,
    calibration_and_holdout,
    summary_from_transactions,
    unit_days,
)
from rfm_portal.mlops.group_metrics import DEFAULT_BOOT, DEFAULT_MIN_ROWS, GroupRule
from rfm_portal.mlops.group_metrics import group_performance as group_metrics

MODEL_NAMES: tuple[str, ...] = ("bgnbd", "mbgnbd", "pareto_nbd")
MODEL_LABELS: dict[str, str] = {"bgnbd": "BG/NBD", "mbgnbd": "MBG/NBD", "pareto_nbd": "Pareto/NBD"}
PARAM_NAMES: dict[str, tuple[str, ...]] = {
    "bgnbd": ("r", "alpha", "a", "b"),
    "mbgnbd": ("r", "alpha", "a", "b"),
    "pareto_nbd": ("r", "alpha", "s", "beta"),
    "gamma_gamma": ("p", "q", "v"),
}
_FITTERS: dict[str, type] = {
    "bgnbd": BetaGeoFitter,
    "mbgnbd": ModifiedBetaGeoFitter,
    "pareto_nbd": ParetoNBDFitter,
    "gamma_gamma": GammaGammaFitter,
}
DEFAULT_PENALIZERS: tuple[float, ...] = (0.0, 0.001, 0.01, 0.1, 1.0)
# Degeneracy bounds, applied to parameters in lifetimes' internal scale (time rescaled so that
# max(T) = 10, Gamma-Gamma v divided by the median spend): outside them a fit is "at a bound".
# A Gamma/Beta shape above 1e3 is a point mass in all but name (the optimiser drifting towards
# "no heterogeneity"); scale parameters get one more decade.
PARAM_BOUNDS: tuple[float, float] = (1e-4, 1e3)
SCALE_PARAMS: frozenset[str] = frozenset({"alpha", "beta", "v"})


# ---------------------------------------------------------------------------------------------
# unique-row compression
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompressedRows:
    """Unique rows of a few numeric columns, with counts and the inverse map to the originals."""

    columns: tuple[np.ndarray, ...]
    counts: np.ndarray
    inverse: np.ndarray

    @property
    def n_unique(self) -> int:
        return int(self.counts.shape[0])


def compress_rows(*columns: np.ndarray) -> CompressedRows:
    """Group identical rows (exact float equality) — O(n log n) via a pandas group-by."""
    frame = pd.DataFrame({f"c{i}": np.asarray(c, dtype=float) for i, c in enumerate(columns)})
    codes = frame.groupby(list(frame.columns), sort=True).ngroup().to_numpy()
    counts = np.bincount(codes)
    first = np.zeros(counts.shape[0], dtype=np.int64)
    first[codes[::-1]] = np.arange(codes.shape[0])[::-1]
    uniq = tuple(np.asarray(c, dtype=float)[first] for c in columns)
    return CompressedRows(columns=uniq, counts=counts, inverse=codes)


# ---------------------------------------------------------------------------------------------
# likelihoods, standard errors
# ---------------------------------------------------------------------------------------------


def _total_log_likelihood(model: str, params: Sequence[float], data: Sequence[np.ndarray], w: np.ndarray) -> float:
    """Total (weighted) log-likelihood with lifetimes' own likelihood functions, no penalty."""
    theta = np.asarray(params, dtype=float)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if model == "pareto_nbd":
            ll = ParetoNBDFitter._conditional_log_likelihood(theta, *data)
            return float(np.sum(w * ll))
        nll = _FITTERS[model]._negative_log_likelihood(np.log(theta), *data, w, 0.0)
        return float(-nll * w.sum())


def _standard_errors(
    model: str, params: Sequence[float], data: Sequence[np.ndarray], w: np.ndarray, h: float = 1e-4
) -> np.ndarray:
    """Asymptotic standard errors from the observed information (numerical Hessian in log-params).

    Cov(log θ) = H⁻¹ with H the Hessian of the total negative log-likelihood in log θ
    (central differences); delta method: Cov(θ) = diag(θ) H⁻¹ diag(θ). Same as lifetimes' diagonal
    (``params² · inv(hessian) / Σw``) for the models where lifetimes computes one, and also
    available for Pareto/NBD, which lifetimes leaves without standard errors.
    """
    theta = np.asarray(params, dtype=float)
    k = theta.shape[0]
    z0 = np.log(theta)

    def f(z: np.ndarray) -> float:
        return -_total_log_likelihood(model, np.exp(z), data, w)

    hess = np.empty((k, k))
    f0 = f(z0)
    eye = np.eye(k) * h
    for i in range(k):
        for j in range(i, k):
            if i == j:
                val = (f(z0 + eye[i]) - 2 * f0 + f(z0 - eye[i])) / h**2
            else:
                val = (
                    f(z0 + eye[i] + eye[j])
                    - f(z0 + eye[i] - eye[j])
                    - f(z0 - eye[i] + eye[j])
                    + f(z0 - eye[i] - eye[j])
                ) / (4 * h**2)
            hess[i, j] = hess[j, i] = val
    try:
        cov_log = np.linalg.inv(hess)
    except np.linalg.LinAlgError:
        return np.full(k, np.nan)
    var = np.diag(cov_log) * theta**2
    return np.sqrt(np.where(var >= 0, var, np.nan))


# ---------------------------------------------------------------------------------------------
# fits
# ---------------------------------------------------------------------------------------------


@dataclass
class FitAttempt:
    """One rung of the penalizer ladder."""

    penalizer: float
    ok: bool
    reason: str = ""
    params: dict[str, float] | None = None


@dataclass
class ModelFit:
    """A fitted model: parameters, standard errors, the penalizer used and the attempts made."""

    model: str
    params: dict[str, float]
    standard_errors: dict[str, float]
    penalizer: float
    attempts: list[FitAttempt]
    n_customers: int
    n_unique: int
    log_likelihood: float
    fit_seconds: float
    degenerate: str = ""  # non-empty: no penalizer gave a clean fit; the reason of the kept one
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return MODEL_LABELS.get(self.model, "Gamma-Gamma")

    def param_table(self) -> pd.DataFrame:
        """coef, se(coef) and 95% Wald bounds (like lifetimes' ``summary``)."""
        names = list(self.params)
        coef = np.array([self.params[n] for n in names])
        se = np.array([self.standard_errors.get(n, np.nan) for n in names])
        return pd.DataFrame(
            {"coef": coef, "se(coef)": se, "lower 95% bound": coef - 1.96 * se, "upper 95% bound": coef + 1.96 * se},
            index=pd.Index(names, name="param"),
        )

    def fitter(self) -> Any:
        """A lifetimes fitter carrying these parameters (closed forms only; no refit)."""
        return make_fitter(self.model, self.params)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_fitter(model: str, params: Mapping[str, float]) -> Any:
    """Instantiate a lifetimes fitter and set ``params_`` so its closed-form methods work."""
    fitter = _FITTERS[model]()
    fitter.params_ = pd.Series({k: float(params[k]) for k in PARAM_NAMES[model]})
    return fitter


@functools.lru_cache(maxsize=32)
def _closed_form_fitter(model: str, values: tuple[float, ...]) -> Any:
    # One fitter per model and parameters, shared by the closed forms below, which only read it: a CLV is
    # E[N] at every horizon step (13+ calls a score), and each fitter costs ≈ 0.4 ms to build.
    return make_fitter(model, dict(zip(PARAM_NAMES[model], values, strict=True)))


def _fitter_for(model: str, params: Mapping[str, float]) -> Any:
    return _closed_form_fitter(model, tuple(float(params[k]) for k in PARAM_NAMES[model]))


def _degenerate_reason(model: str, params: Mapping[str, float], scale: Mapping[str, float]) -> str:
    values = np.array([params[k] for k in PARAM_NAMES[model]], dtype=float)
    if not np.all(np.isfinite(values)):
        return "non-finite parameters"
    lo, hi = PARAM_BOUNDS
    for name, value in zip(PARAM_NAMES[model], values, strict=True):
        scaled = value * scale.get(name, 1.0)
        if scaled < lo:
            return f"{name}={value:.4g} at its lower bound"
        if scaled > (hi * 10 if name in SCALE_PARAMS else hi):
            return f"{name}={value:.4g} at its upper bound"
    if model == "gamma_gamma" and params["q"] <= 1.0:
        return f"q={params['q']:.4g} <= 1 (mean spend undefined)"
    return ""


def _run_ladder(
    model: str,
    fit_once: Callable[[float], dict[str, float]],
    scale: Mapping[str, float],
    penalizers: Iterable[float],
) -> tuple[dict[str, float], float, list[FitAttempt], str]:
    """Walk the penalizer ladder; return (params, penalizer, attempts, degenerate reason or "").

    The first rung whose fit converges to finite parameters inside ``PARAM_BOUNDS`` wins. An L2
    penalty cures estimates that run off to infinity (no heterogeneity: r, α → ∞) but not a
    boundary at zero (e.g. a → 0 when nobody drops out, which every penalty only reinforces);
    if no rung is clean, the least-penalised converged fit with finite parameters is kept and
    flagged as degenerate rather than failing the whole training run.
    """
    attempts: list[FitAttempt] = []
    for pen in penalizers:
        try:
            with (
                contextlib.redirect_stdout(io.StringIO()),  # lifetimes prints the optimiser output on failure
                np.errstate(all="ignore"),
                warnings.catch_warnings(),
            ):
                warnings.simplefilter("ignore")
                params = fit_once(float(pen))
        except Exception as exc:  # ConvergenceError, LinAlgError, ValueError from the optimiser
            message = " ".join(f"{type(exc).__name__}: {exc}".split())
            attempts.append(FitAttempt(penalizer=float(pen), ok=False, reason=message))
            continue
        reason = _degenerate_reason(model, params, scale)
        attempts.append(FitAttempt(penalizer=float(pen), ok=not reason, reason=reason, params=params))
        if not reason:
            return params, float(pen), attempts, ""
    usable = [a for a in attempts if a.params is not None and "bound" in a.reason]
    if usable:
        return usable[0].params or {}, usable[0].penalizer, attempts, usable[0].reason
    raise RuntimeError(
        f"{model} fit failed for every penalizer: " + "; ".join(f"{a.penalizer}: {a.reason}" for a in attempts)
    )


def fit_transaction_model(
    frequency: np.ndarray,
    recency: np.ndarray,
    T: np.ndarray,
    model: str = "bgnbd",
    *,
    penalizers: Iterable[float] = DEFAULT_PENALIZERS,
    compress: bool = True,
) -> ModelFit:
    """Fit BG/NBD, MBG/NBD or Pareto/NBD on (x, t_x, T) with lifetimes, on unique rows with weights.

    Convergence-safe: walks the penalizer ladder until lifetimes converges to finite,
    non-degenerate parameters (see ``PARAM_BOUNDS``); ``attempts`` records every rung.
    ``compress=False`` fits every customer as its own row (lifetimes' plain fit).
    """
    if model not in MODEL_NAMES:
        raise ValueError(f"unknown model {model!r}; use one of {MODEL_NAMES}")
    x = np.asarray(frequency, dtype=float)
    tx = np.asarray(recency, dtype=float)
    TT = np.asarray(T, dtype=float)
    if x.shape[0] == 0:
        raise ValueError("no customers to fit")
    if not (np.isfinite(x).all() and np.isfinite(tx).all() and np.isfinite(TT).all()):
        raise ValueError("frequency, recency and T must be finite")
    if compress:
        rows = compress_rows(x, tx, TT)
        ux, utx, uT = rows.columns
        w = rows.counts.astype(float)
    else:
        ux, utx, uT, w = x, tx, TT, np.ones_like(x)
    time_scale = 10.0 / float(uT.max()) if uT.max() > 0 else 1.0
    scale = {"alpha": time_scale, "beta": time_scale}
    names = PARAM_NAMES[model]

    def fit_once(pen: float) -> dict[str, float]:
        fitter = _FITTERS[model](penalizer_coef=pen)
        if model == "pareto_nbd":
            # lifetimes draws Nelder-Mead starting points from the global numpy RNG; start from a
            # fixed point instead so the fit is reproducible.
            fitter.fit(ux, utx, uT, weights=w, initial_params=np.ones(4), maxiter=4000, tol=1e-6)
        else:
            fitter.fit(ux, utx, uT, weights=w)
        return {k: float(fitter.params_[k]) for k in names}

    t0 = time.perf_counter()
    params, pen, attempts, degenerate = _run_ladder(model, fit_once, scale, penalizers)
    seconds = time.perf_counter() - t0
    data = (ux.astype(int) if model != "pareto_nbd" else ux, utx, uT)
    theta = [params[k] for k in names]
    se = _standard_errors(model, theta, data, w)
    return ModelFit(
        model=model,
        params=params,
        standard_errors=dict(zip(names, se.tolist(), strict=True)),
        penalizer=pen,
        attempts=attempts,
        n_customers=int(w.sum()),
        n_unique=int(ux.shape[0]),
        log_likelihood=_total_log_likelihood(model, theta, data, w),
        fit_seconds=seconds,
        degenerate=degenerate,
    )


def fit_gamma_gamma(
    frequency: np.ndarray,
    monetary_value: np.ndarray,
    *,
    penalizers: Iterable[float] = DEFAULT_PENALIZERS,
    compress: bool = True,
    max_abs_correlation: float = 0.3,
) -> ModelFit:
    """Fit the Gamma-Gamma spend model on repeat buyers (x > 0) with positive mean repeat spend.

    The model assumes spend is independent of the purchase process; the Pearson correlation
    between x and m_x over the fitted customers is reported in ``extra`` (``independence_ok``
    is False when |ρ| > ``max_abs_correlation``), together with the population mean spend
    p·v/(q − 1) used for customers without repeat purchases.
    """
    x = np.asarray(frequency, dtype=float)
    m = np.asarray(monetary_value, dtype=float)
    keep = (x > 0) & (m > 0) & np.isfinite(m)
    x, m = x[keep], m[keep]
    if x.shape[0] < 3:
        raise ValueError(
            f"Gamma-Gamma needs at least 3 repeat buyers with positive spend, and the data has {x.shape[0]}: "
            "import a longer transaction history (customers with purchases on two or more days), or, if "
            "returns cancel out the spend, train with returns='exclude'."
        )
    corr = float(np.corrcoef(x, m)[0, 1]) if np.std(x) > 0 and np.std(m) > 0 else 0.0
    if compress:
        rows = compress_rows(x, m)
        ux, um = rows.columns
        w = rows.counts.astype(float)
    else:
        ux, um, w = x, m, np.ones_like(x)
    scale = {"v": 1.0 / float(np.median(um))}

    def fit_once(pen: float) -> dict[str, float]:
        fitter = GammaGammaFitter(penalizer_coef=pen).fit(ux, um, weights=w)
        return {k: float(fitter.params_[k]) for k in ("p", "q", "v")}

    t0 = time.perf_counter()
    params, pen, attempts, degenerate = _run_ladder("gamma_gamma", fit_once, scale, penalizers)
    seconds = time.perf_counter() - t0
    theta = [params["p"], params["q"], params["v"]]
    se = _standard_errors("gamma_gamma", theta, (ux, um), w)
    return ModelFit(
        model="gamma_gamma",
        params=params,
        standard_errors=dict(zip(("p", "q", "v"), se.tolist(), strict=True)),
        penalizer=pen,
        attempts=attempts,
        n_customers=int(w.sum()),
        n_unique=int(ux.shape[0]),
        log_likelihood=_total_log_likelihood("gamma_gamma", theta, (ux, um), w),
        fit_seconds=seconds,
        degenerate=degenerate,
        extra={
            "frequency_monetary_corr": corr,
            "independence_ok": bool(abs(corr) <= max_abs_correlation),
            "max_abs_correlation": max_abs_correlation,
            "population_mean": gamma_gamma_population_mean(params),
        },
    )


def gamma_gamma_population_mean(gg: Mapping[str, float]) -> float:
    """E[Z] = p·v / (q − 1): mean transaction value of a random customer (Fader-Hardie-Lee 2005)."""
    return float(gg["p"] * gg["v"] / (gg["q"] - 1.0))


def gamma_gamma_expected_spend(
    gg: Mapping[str, float], frequency: np.ndarray, monetary_value: np.ndarray
) -> np.ndarray:
    """E[M | x, m_x] = (q − 1)/(p·x + q − 1) · p·v/(q − 1) + p·x/(p·x + q − 1) · m_x (note 025, eq. 5).

    Customers without repeat purchases or with m_x <= 0 (no informative spend) get the
    population mean p·v/(q − 1).
    """
    p, q = gg["p"], gg["q"]
    x = np.asarray(frequency, dtype=float)
    m = np.asarray(monetary_value, dtype=float)
    informative = (x > 0) & (m > 0)
    xe = np.where(informative, x, 0.0)
    weight = p * xe / (p * xe + q - 1.0)
    return (1.0 - weight) * gamma_gamma_population_mean(gg) + weight * np.where(informative, m, 0.0)


# ---------------------------------------------------------------------------------------------
# closed-form predictions on unique rows
# ---------------------------------------------------------------------------------------------


def _on_unique(
    fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    x: np.ndarray,
    tx: np.ndarray,
    T: np.ndarray,
    compress: bool = True,
) -> np.ndarray:
    """Evaluate ``fn`` once per unique (x, t_x, T) and broadcast back (``compress=False``: row by row)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not compress:
            return np.asarray(fn(*(np.asarray(a, dtype=float) for a in (x, tx, T))), dtype=float).reshape(-1)
        rows = compress_rows(x, tx, T)
        values = np.asarray(fn(*rows.columns), dtype=float).reshape(-1)
    return values[rows.inverse]


def conditional_expected_purchases(
    model: str,
    params: Mapping[str, float],
    t: float,
    x: np.ndarray,
    tx: np.ndarray,
    T: np.ndarray,
    *,
    compress: bool = True,
) -> np.ndarray:
    """E[N(T, T + t] | x, t_x, T] (BG/NBD eq. 10; MBG/NBD; Pareto/NBD note 009 eq. 41), >= 0."""
    fitter = _fitter_for(model, params)
    if t <= 0:
        return np.zeros(np.asarray(x).shape[0])
    values = _on_unique(
        lambda a, b, c: fitter.conditional_expected_number_of_purchases_up_to_time(t, a, b, c), x, tx, T, compress
    )
    return np.clip(np.nan_to_num(values, nan=0.0, posinf=0.0), 0.0, None)


def probability_alive(
    model: str, params: Mapping[str, float], x: np.ndarray, tx: np.ndarray, T: np.ndarray, *, compress: bool = True
) -> np.ndarray:
    """P(alive | x, t_x, T) (BG/NBD: Hardie note 021; MBG/NBD: Batislam et al. eq. 5; Pareto/NBD eq. 36-37)."""
    fitter = _fitter_for(model, params)
    values = _on_unique(fitter.conditional_probability_alive, x, tx, T, compress)
    return np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0)


def discounted_expected_purchases(
    model: str,
    params: Mapping[str, float],
    x: np.ndarray,
    tx: np.ndarray,
    T: np.ndarray,
    steps: HorizonSteps,
    *,
    compress: bool = True,
) -> np.ndarray:
    """Σ_s d_s · (E[N(t_s) | x, t_x, T] − E[N(t_{s−1}) | x, t_x, T]): discounted expected purchases."""
    if compress:
        rows = compress_rows(x, tx, T)
        return discounted_expected_purchases(model, params, *rows.columns, steps, compress=False)[rows.inverse]
    n = np.asarray(x).shape[0]
    discounted = np.zeros(n)
    previous = np.zeros(n)
    for edge, d in zip(steps.edges, steps.discount, strict=True):
        current = conditional_expected_purchases(model, params, float(edge), x, tx, T, compress=False)
        discounted += d * np.clip(current - previous, 0.0, None)
        previous = current
    return discounted


def expected_clv(
    model: str,
    params: Mapping[str, float],
    gg: Mapping[str, float],
    x: np.ndarray,
    tx: np.ndarray,
    T: np.ndarray,
    m: np.ndarray,
    steps: HorizonSteps,
    margin: float,
) -> np.ndarray:
    """Closed-form discounted CLV = margin · E[M | x, m_x] · discounted expected purchases, never negative."""
    discounted = discounted_expected_purchases(model, params, x, tx, T, steps)
    return np.clip(margin * gamma_gamma_expected_spend(gg, x, m) * discounted, 0.0, None)


# ---------------------------------------------------------------------------------------------
# model comparison on a holdout period
# ---------------------------------------------------------------------------------------------


@dataclass
class ModelComparison:
    """Calibration fits of every candidate, their holdout errors and the chosen model."""

    table: pd.DataFrame
    fits: dict[str, ModelFit]
    chosen: str
    selection_metric: str


def compare_models(
    cal_holdout: pd.DataFrame,
    models: Sequence[str] = MODEL_NAMES,
    *,
    penalizers: Iterable[float] = DEFAULT_PENALIZERS,
    selection_metric: str = "rmse",
) -> ModelComparison:
    """Fit each model on the calibration summary and score its holdout predictions.

    Per model: log-likelihood, BIC, MAE and RMSE of predicted vs actual holdout purchases per
    customer, the predicted and actual holdout totals and the aggregate error
    (Σ predicted − Σ actual) / Σ actual. The model with the lowest ``selection_metric``
    ("mae", "rmse" or "abs_aggregate_error") is chosen; models whose fit failed are listed
    with the error and never chosen.
    """
    x = cal_holdout["frequency_cal"].to_numpy(dtype=float)
    tx = cal_holdout["recency_cal"].to_numpy(dtype=float)
    T = cal_holdout["T_cal"].to_numpy(dtype=float)
    actual = cal_holdout["frequency_holdout"].to_numpy(dtype=float)
    duration = float(cal_holdout["duration_holdout"].iloc[0])
    penalizers = tuple(penalizers)
    rows, fits = [], {}
    for model in models:
        try:
            fit = fit_transaction_model(x, tx, T, model, penalizers=penalizers)
        except (RuntimeError, ValueError) as exc:
            rows.append({"model": model, "label": MODEL_LABELS[model], "error": str(exc)})
            continue
        fits[model] = fit
        pred = conditional_expected_purchases(model, fit.params, duration, x, tx, T)
        err = pred - actual
        n_obs = float(fit.n_customers)
        rows.append(
            {
                "model": model,
                "label": MODEL_LABELS[model],
                "penalizer": fit.penalizer,
                "log_likelihood": fit.log_likelihood,
                "bic": -2 * fit.log_likelihood + len(fit.params) * math.log(n_obs),
                "mae": float(np.mean(np.abs(err))),
                "rmse": float(np.sqrt(np.mean(err**2))),
                "predicted_total": float(pred.sum()),
                "actual_total": float(actual.sum()),
                "aggregate_error": float((pred.sum() - actual.sum()) / max(actual.sum(), 1e-12)),
                "error": "",
            }
        )
    table = pd.DataFrame(rows)
    if not fits:
        raise RuntimeError("no candidate model could be fitted: " + "; ".join(table["error"].astype(str)))
    table["abs_aggregate_error"] = table["aggregate_error"].abs()
    if selection_metric not in ("mae", "rmse", "abs_aggregate_error"):
        raise ValueError(f"unknown selection metric {selection_metric!r}")
    ok = table[table["model"].isin(list(fits))]
    chosen = str(ok.sort_values(selection_metric, kind="stable").iloc[0]["model"])
    table["chosen"] = table["model"] == chosen
    return ModelComparison(
        table=table.reset_index(drop=True), fits=fits, chosen=chosen, selection_metric=selection_metric
    )


# ---------------------------------------------------------------------------------------------
# the serialisable bundle
# ---------------------------------------------------------------------------------------------

PAYLOAD_FIELDS = ("frequency", "recency", "T", "monetary_value")


@dataclass
class CLTVModelBundle:
    """Everything needed to score a customer without refitting (JSON-serialisable).

    ``unit`` is the time unit of ``recency``/``T`` in payloads and of the transaction-model
    parameters; horizons are in days. ``predict`` accepts raw payloads
    (frequency, recency, T, monetary_value) — one mapping, a list of them or a DataFrame.
    """

    model: str
    params: dict[str, float]
    unit: str
    gamma_gamma: dict[str, float]
    penalizers: dict[str, float]
    metrics: dict[str, Any] = field(default_factory=dict)
    standard_errors: dict[str, dict[str, float]] = field(default_factory=dict)
    horizons_days: tuple[int, ...] = (30, 90, 365)
    clv_horizon_days: float = 365.0
    annual_discount_rate: float = 0.10
    margin: float = 1.0
    step_days: float = 365.25 / 12
    n_draws: int = 200
    seed: int = 0
    observation_end: str | None = None
    version: int = 1

    # -- serialisation -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only; NaN/inf (e.g. an undefined standard error) become None (jsonb-safe)."""
        data = asdict(self)
        data["horizons_days"] = list(self.horizons_days)
        return _finite(json.loads(json.dumps(data, default=_json_default)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CLTVModelBundle:
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["horizons_days"] = tuple(int(h) for h in kwargs.get("horizons_days", (30, 90, 365)))
        bundle = cls(**kwargs)
        bundle.validate()
        return bundle

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CLTVModelBundle:
        return cls.from_dict(json.loads(text))

    def validate(self) -> None:
        if self.model not in MODEL_NAMES:
            raise ValueError(f"unknown model {self.model!r}")
        unit_days(self.unit)
        for name in PARAM_NAMES[self.model]:
            if not (np.isfinite(self.params.get(name, np.nan)) and self.params[name] > 0):
                raise ValueError(f"parameter {name} missing or not positive")
        if self.gamma_gamma.get("q", 0) <= 1:
            raise ValueError("Gamma-Gamma q must be > 1")
        if not self.margin >= 0:
            raise ValueError("margin must be >= 0")
        if not self.annual_discount_rate > -1:
            raise ValueError("annual discount rate must be > -1")

    # -- helpers -----------------------------------------------------------------------------

    @property
    def unit_days(self) -> float:
        return unit_days(self.unit)

    def steps(self, horizon_days: float | None = None) -> HorizonSteps:
        return HorizonSteps.build(
            self.clv_horizon_days if horizon_days is None else horizon_days,
            self.step_days,
            self.unit_days,
            self.annual_discount_rate,
        )

    def p_alive(self, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray) -> np.ndarray:
        return probability_alive(self.model, self.params, frequency, recency, T)

    def expected_purchases(self, days: float, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray) -> np.ndarray:
        return conditional_expected_purchases(self.model, self.params, days / self.unit_days, frequency, recency, T)

    def expected_aov(self, frequency: np.ndarray, monetary_value: np.ndarray) -> np.ndarray:
        return gamma_gamma_expected_spend(self.gamma_gamma, frequency, monetary_value)

    def clv(self, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray, monetary_value: np.ndarray) -> np.ndarray:
        return expected_clv(
            self.model, self.params, self.gamma_gamma, frequency, recency, T, monetary_value, self.steps(), self.margin
        )

    def simulate(
        self,
        frequency: np.ndarray,
        recency: np.ndarray,
        T: np.ndarray,
        monetary_value: np.ndarray,
        *,
        p_alive: np.ndarray | None = None,
        groups: np.ndarray | None = None,
        n_groups: int | None = None,
        chunk_size: int = 10_000,
        n_draws: int | None = None,
    ) -> SimulationResult:
        """Posterior-predictive CLV draws (``cltv.simulation.simulate_clv``) with this bundle's settings."""
        pa = self.p_alive(frequency, recency, T) if p_alive is None else p_alive
        return simulate_clv(
            self.model,
            self.params,
            self.gamma_gamma,
            frequency,
            recency,
            T,
            monetary_value,
            pa,
            self.steps(),
            margin=self.margin,
            n_draws=self.n_draws if n_draws is None else n_draws,
            seed=self.seed,
            chunk_size=chunk_size,
            groups=groups,
            n_groups=n_groups,
        )

    # -- scoring -----------------------------------------------------------------------------

    def predict(
        self, payload: pd.DataFrame | Mapping[str, Any] | Sequence[Mapping[str, Any]], *, with_uncertainty: bool = True
    ) -> pd.DataFrame:
        """Score raw payloads: validates them and returns one row of scores per input."""
        frame = validate_payload(payload)
        return score_frame(self, frame, with_uncertainty=with_uncertainty)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def validate_payload(payload: pd.DataFrame | Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Coerce and check (frequency, recency, T, monetary_value) rows; raises ValueError with the row."""
    if isinstance(payload, pd.DataFrame):
        frame = payload.copy()
    elif isinstance(payload, Mapping):
        frame = pd.DataFrame([dict(payload)])
    else:
        frame = pd.DataFrame([dict(p) for p in payload])
    missing = [c for c in PAYLOAD_FIELDS if c not in frame.columns]
    if missing:
        raise ValueError(f"missing fields: {', '.join(missing)}")
    try:
        values = frame[list(PAYLOAD_FIELDS)].apply(pd.to_numeric, errors="raise").astype(float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"non-numeric value: {exc}") from None
    x, tx, T, m = (values[c].to_numpy() for c in PAYLOAD_FIELDS)
    checks = [
        (~np.isfinite(values.to_numpy()).all(axis=1), "values must be finite"),
        ((x < 0) | (x != np.round(x)), "frequency must be a non-negative integer"),
        (tx < 0, "recency must be >= 0"),
        (T < 0, "T must be >= 0"),
        (tx > T + 1e-6, "recency must not exceed T"),
        ((x == 0) & (tx != 0), "recency must be 0 when frequency is 0"),
        (m < 0, "monetary_value must be >= 0"),
    ]
    for bad, message in checks:
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"row {row}: {message}")
    values["recency"] = np.minimum(tx, T)  # absorb rounding (e.g. both rounded to 2 decimals)
    values.index = frame.index
    return values


def alive_and_clv(
    bundle: CLTVModelBundle, x: np.ndarray, m: np.ndarray, rows: CompressedRows
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P(alive), expected order value and closed-form CLV of each row: :func:`score_frame`'s columns.

    ``rows``: ``compress_rows(x, t_x, T)`` (the closed forms are evaluated once per unique row). On
    its own for callers that need nothing else, e.g. the stream re-scoring a batch of events.
    """
    ux, utx, uT = rows.columns
    pa = probability_alive(bundle.model, bundle.params, ux, utx, uT, compress=False)[rows.inverse]
    aov = bundle.expected_aov(x, m)
    discounted = discounted_expected_purchases(bundle.model, bundle.params, ux, utx, uT, bundle.steps(), compress=False)
    return pa, aov, np.clip(bundle.margin * aov * discounted[rows.inverse], 0.0, None)


def score_frame(
    bundle: CLTVModelBundle,
    summary: pd.DataFrame,
    *,
    with_uncertainty: bool = True,
    groups: np.ndarray | None = None,
    n_groups: int | None = None,
    chunk_size: int = 10_000,
) -> pd.DataFrame:
    """Per-customer scores for a summary frame (frequency, recency, T, monetary_value).

    Columns: ``p_alive``, ``expected_purchases_<d>d`` for each horizon, ``expected_aov``,
    ``clv`` (closed form) and, with uncertainty, ``clv_p10``, ``clv_p50``, ``clv_p90``,
    ``clv_sim_mean``. With ``groups`` the per-group draw sums are attached as
    ``frame.attrs["group_draws"]``.
    """
    x = summary["frequency"].to_numpy(dtype=float)
    tx = summary["recency"].to_numpy(dtype=float)
    T = summary["T"].to_numpy(dtype=float)
    m = summary["monetary_value"].to_numpy(dtype=float)
    out = pd.DataFrame(index=summary.index)
    # every closed form depends on (x, t_x, T) only: evaluate once per unique row, broadcast back
    rows = compress_rows(x, tx, T)
    ux, utx, uT = rows.columns
    pa, aov, clv = alive_and_clv(bundle, x, m, rows)
    out["p_alive"] = pa
    for days in bundle.horizons_days:
        out[f"expected_purchases_{int(days)}d"] = conditional_expected_purchases(
            bundle.model, bundle.params, float(days) / bundle.unit_days, ux, utx, uT, compress=False
        )[rows.inverse]
    out["expected_aov"] = aov
    out["clv"] = clv
    if with_uncertainty:
        sim = bundle.simulate(x, tx, T, m, p_alive=pa, groups=groups, n_groups=n_groups, chunk_size=chunk_size)
        for i, q in enumerate(sim.q):
            out[f"clv_p{round(q * 100)}"] = sim.quantiles[:, i]
        out["clv_sim_mean"] = sim.mean
        if sim.group_draws is not None:
            out.attrs["group_draws"] = sim.group_draws
    return out


# ---------------------------------------------------------------------------------------------
# training end to end
# ---------------------------------------------------------------------------------------------


@dataclass
class CLTVConfig:
    """Training and scoring settings (horizons in days; rates annual; margin as a fraction)."""

    unit: TimeUnit = "W"
    returns: ReturnsPolicy = "net"
    models: tuple[str, ...] = MODEL_NAMES
    penalizers: tuple[float, ...] = DEFAULT_PENALIZERS
    selection_metric: str = "rmse"
    horizons_days: tuple[int, ...] = (30, 90, 365)
    clv_horizon_days: float = 365.0
    annual_discount_rate: float = 0.10
    margin: float = 1.0
    step_days: float = 365.25 / 12
    n_draws: int = 200
    seed: int = 0
    holdout_fraction: float = 0.25
    max_abs_correlation: float = 0.3
    # The model comparison (the slow Pareto/NBD above all) runs on a seeded sample of this many
    # customers when there are more; the chosen model is then refitted on every customer.
    # bench/sampled_decisions_bench.py shows the sample takes the full comparison's decision.
    comparison_sample: int | None = 30_000


@dataclass
class CLTVTraining:
    """Result of ``train_cltv``: the bundle plus the frames and fits behind it."""

    bundle: CLTVModelBundle
    summary: pd.DataFrame
    cal_holdout: pd.DataFrame
    comparison: ModelComparison
    transaction_fit: ModelFit
    gamma_gamma_fit: ModelFit
    calibration_end: pd.Timestamp
    observation_end: pd.Timestamp


def default_calibration_end(dates: pd.Series, observation_end: pd.Timestamp, holdout_fraction: float) -> pd.Timestamp:
    """The day that leaves the last ``holdout_fraction`` of purchase days in the holdout.

    Split by transaction-time quantile, not by the calendar span: one stray early transaction
    (a 2011 row among 2023-24 data) would stretch the span and push the calibration end back
    to a time with almost no customers. The quantile is a purchase day itself ("lower"), never
    a date interpolated into a gap.
    """
    day = pd.to_datetime(dates)
    if getattr(day.dt, "tz", None) is not None:
        day = day.dt.tz_localize(None)
    day = day.dt.normalize()
    obs_end = pd.Timestamp(observation_end).normalize()
    day = day[day <= obs_end]
    if day.empty:
        raise ValueError(f"No transactions on or before the observation end {obs_end.date()}.")
    cal_end = day.quantile(1 - holdout_fraction, interpolation="lower")
    if cal_end >= obs_end:  # all the late activity on the last day: keep at least one day of holdout
        cal_end = obs_end - pd.Timedelta(days=1)
    return pd.Timestamp(cal_end).normalize()


MIN_CALIBRATION_REPEAT_BUYERS = 3


def check_calibration_split(cal_holdout: pd.DataFrame, cal_end: pd.Timestamp, obs_end: pd.Timestamp) -> None:
    """Refuse a split the models cannot learn from, saying what to change."""
    repeat = int((cal_holdout["frequency_cal"] > 0).sum()) if len(cal_holdout) else 0
    if repeat < MIN_CALIBRATION_REPEAT_BUYERS:
        raise ValueError(
            f"Only {repeat} customers bought on more than one day before the calibration end "
            f"{cal_end.date()} ({len(cal_holdout)} customers in all): the models need at least "
            f"{MIN_CALIBRATION_REPEAT_BUYERS} repeat buyers to learn from, ideally hundreds. Import a longer "
            f"transaction history, or set the calibration end later (it must stay before {obs_end.date()})."
        )


def comparison_rows(cal_holdout: pd.DataFrame, sample: int | None, seed: int) -> pd.DataFrame:
    """The customers the model comparison runs on: all of them, or a seeded sample of ``sample``."""
    if not sample or len(cal_holdout) <= sample:
        return cal_holdout
    rows = np.sort(np.random.default_rng(seed).choice(len(cal_holdout), sample, replace=False))
    return cal_holdout.iloc[rows]


def train_cltv(
    transactions: pd.DataFrame,
    *,
    observation_end: object | None = None,
    calibration_end: object | None = None,
    config: CLTVConfig | None = None,
    customer_col: str = "customer_id",
    date_col: str = "invoiced_at",
    amount_col: str = "amount",
) -> CLTVTraining:
    """Holdout comparison → chosen model refitted on the whole period → Gamma-Gamma → bundle.

    ``observation_end`` defaults to the last transaction day; ``calibration_end`` to the day that
    leaves the last ``holdout_fraction`` of purchase days in the holdout (default_calibration_end).
    """
    cfg = config or CLTVConfig()
    cols = {"customer_col": customer_col, "date_col": date_col, "amount_col": amount_col, "returns": cfg.returns}
    dates = pd.to_datetime(transactions[date_col])
    obs_end = pd.Timestamp(observation_end if observation_end is not None else dates.max()).normalize()
    if calibration_end is None:
        cal_end = default_calibration_end(dates, obs_end, cfg.holdout_fraction)
    else:
        cal_end = pd.Timestamp(calibration_end).normalize()
    cal_holdout = calibration_and_holdout(transactions, cal_end, obs_end, unit=cfg.unit, **cols)
    check_calibration_split(cal_holdout, cal_end, obs_end)
    compared = comparison_rows(cal_holdout, cfg.comparison_sample, cfg.seed)
    comparison = compare_models(
        compared, cfg.models, penalizers=cfg.penalizers, selection_metric=cfg.selection_metric
    )
    summary = summary_from_transactions(transactions, obs_end, unit=cfg.unit, **cols)
    fit = fit_transaction_model(
        summary["frequency"].to_numpy(),
        summary["recency"].to_numpy(),
        summary["T"].to_numpy(),
        comparison.chosen,
        penalizers=cfg.penalizers,
    )
    gg = fit_gamma_gamma(
        summary["frequency"].to_numpy(),
        summary["monetary_value"].to_numpy(),
        penalizers=cfg.penalizers,
        max_abs_correlation=cfg.max_abs_correlation,
    )
    chosen_row = comparison.table.set_index("model").loc[comparison.chosen]
    metrics = {
        "comparison": comparison.table.replace({np.nan: None}).to_dict(orient="records"),
        "selection_metric": comparison.selection_metric,
        "holdout_mae": float(chosen_row["mae"]),
        "holdout_rmse": float(chosen_row["rmse"]),
        "holdout_aggregate_error": float(chosen_row["aggregate_error"]),
        "calibration_end": cal_end.date().isoformat(),
        "comparison_customers": len(compared),
        "n_customers": fit.n_customers,
        "n_unique_rows": fit.n_unique,
        "log_likelihood": fit.log_likelihood,
        "fit_seconds": fit.fit_seconds,
        "attempts": [asdict(a) for a in fit.attempts],
        "gamma_gamma": {**gg.extra, "n_customers": gg.n_customers, "attempts": [asdict(a) for a in gg.attempts]},
    }
    bundle = CLTVModelBundle(
        model=fit.model,
        params=fit.params,
        unit=cfg.unit,
        gamma_gamma=gg.params,
        penalizers={"transactions": fit.penalizer, "gamma_gamma": gg.penalizer},
        metrics=metrics,
        standard_errors={"transactions": fit.standard_errors, "gamma_gamma": gg.standard_errors},
        horizons_days=tuple(cfg.horizons_days),
        clv_horizon_days=cfg.clv_horizon_days,
        annual_discount_rate=cfg.annual_discount_rate,
        margin=cfg.margin,
        step_days=cfg.step_days,
        n_draws=cfg.n_draws,
        seed=cfg.seed,
        observation_end=obs_end.date().isoformat(),
    )
    bundle = CLTVModelBundle.from_dict(bundle.to_dict())  # JSON round trip: what is stored is what is used
    return CLTVTraining(
        bundle=bundle,
        summary=summary,
        cal_holdout=cal_holdout,
        comparison=comparison,
        transaction_fit=fit,
        gamma_gamma_fit=gg,
        calibration_end=cal_end,
        observation_end=obs_end,
    )


# ---------------------------------------------------------------------------------------------
# validation outputs for analysts
# ---------------------------------------------------------------------------------------------


def calibration_vs_holdout(fit: ModelFit, cal_holdout: pd.DataFrame, max_frequency: int = 7) -> pd.DataFrame:
    """Mean actual vs predicted holdout purchases by calibration frequency (last bucket = "max+").

    The data behind lifetimes' ``plot_calibration_purchases_vs_holdout_purchases``.
    """
    x = cal_holdout["frequency_cal"].to_numpy(dtype=float)
    pred = conditional_expected_purchases(
        fit.model,
        fit.params,
        float(cal_holdout["duration_holdout"].iloc[0]),
        x,
        cal_holdout["recency_cal"].to_numpy(dtype=float),
        cal_holdout["T_cal"].to_numpy(dtype=float),
    )
    bucket = np.minimum(x, max_frequency).astype(int)
    frame = pd.DataFrame({"bucket": bucket, "actual": cal_holdout["frequency_holdout"].to_numpy(), "predicted": pred})
    out = frame.groupby("bucket").agg(
        customers=("actual", "size"), actual=("actual", "mean"), predicted=("predicted", "mean")
    )
    out = out.reindex(range(max_frequency + 1)).fillna({"customers": 0})
    out["customers"] = out["customers"].astype(int)
    out.index = pd.Index(
        [str(i) if i < max_frequency else f"{max_frequency}+" for i in out.index], name="frequency_cal"
    )
    return out


def period_transactions(
    fit: ModelFit, frequency: np.ndarray, T: np.ndarray, max_frequency: int = 7, seed: int = 0, min_draws: int = 200_000
) -> pd.DataFrame:
    """Actual vs model number of customers by repeat-transaction count in the calibration period.

    Model counts come from simulating the fitted process over each customer's own T (as
    lifetimes' ``plot_period_transactions`` does with ``generate_new_data``), vectorised and
    averaged over enough replicates to make the expected counts smooth.
    """
    x = np.minimum(np.asarray(frequency, dtype=float), max_frequency).astype(int)
    TT = np.asarray(T, dtype=float)
    n = TT.shape[0]
    reps = int(min(50, max(1, math.ceil(min_draws / max(n, 1)))))
    rng = np.random.default_rng(seed)
    sim = np.zeros(max_frequency + 1)
    for _ in range(reps):
        draw = simulate_population(fit.model, fit.params, TT, rng)
        sim += np.bincount(np.minimum(draw["frequency"], max_frequency).astype(int), minlength=max_frequency + 1)
    labels = [str(i) if i < max_frequency else f"{max_frequency}+" for i in range(max_frequency + 1)]
    return pd.DataFrame(
        {"actual": np.bincount(x, minlength=max_frequency + 1), "model": sim / reps},
        index=pd.Index(labels, name="repeat_transactions"),
    )


@dataclass
class FrequencyRecencyMatrices:
    """Expected purchases in ``t`` units and P(alive) on a (recency × frequency) grid, at T = max_T."""

    frequency: np.ndarray
    recency: np.ndarray
    T: float
    t: float
    expected_purchases: np.ndarray  # (len(recency), len(frequency))
    p_alive: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=_json_default))


def frequency_recency_matrices(
    fit: ModelFit | CLTVModelBundle, max_frequency: int, max_T: float, t: float = 1.0, n_recency: int | None = None
) -> FrequencyRecencyMatrices:
    """The data of lifetimes' ``plot_frequency_recency_matrix`` and ``plot_probability_alive_matrix``.

    A hypothetical customer of age ``max_T`` with frequency x and recency t_x on the grid.
    """
    model, params = fit.model, fit.params
    freq = np.arange(max_frequency + 1, dtype=float)
    n_rec = int(n_recency or math.floor(max_T) + 1)
    rec = np.linspace(0.0, float(max_T), n_rec)
    X, R = np.meshgrid(freq, rec)
    TT = np.full(X.size, float(max_T))
    ep = conditional_expected_purchases(model, params, t, X.ravel(), R.ravel(), TT).reshape(X.shape)
    pa = probability_alive(model, params, X.ravel(), R.ravel(), TT).reshape(X.shape)
    return FrequencyRecencyMatrices(frequency=freq, recency=rec, T=float(max_T), t=t, expected_purchases=ep, p_alive=pa)


def score_with_cohorts(
    bundle: CLTVModelBundle, summary: pd.DataFrame, *, cohort_freq: str = "M", chunk_size: int = 10_000
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score customers and aggregate CLV by first-purchase cohort with an uncertainty band.

    Returns (customer scores, cohort table). Cohort table columns: ``cohort`` (period start),
    ``customers``, ``expected_clv`` (sum of closed-form CLV), ``simulated_mean``, ``p10``,
    ``p50``, ``p90`` — quantiles of the cohort *sum* over the aligned simulation draws.
    """
    cohort = pd.to_datetime(summary["first_purchase"]).dt.to_period(cohort_freq)
    codes, labels = pd.factorize(cohort, sort=True)
    scores = score_frame(
        bundle, summary, with_uncertainty=True, groups=codes, n_groups=len(labels), chunk_size=chunk_size
    )
    draws = scores.attrs.pop("group_draws")
    table = pd.DataFrame(
        {
            "cohort": labels.to_timestamp(),
            "customers": np.bincount(codes, minlength=len(labels)),
            "expected_clv": np.bincount(codes, weights=scores["clv"].to_numpy(), minlength=len(labels)),
            "simulated_mean": draws.mean(axis=1),
            "p10": np.quantile(draws, 0.1, axis=1),
            "p50": np.quantile(draws, 0.5, axis=1),
            "p90": np.quantile(draws, 0.9, axis=1),
        }
    )
    return scores, table


GROUP_ERROR_MARGIN = 0.10


def holdout_group_performance(cal_holdout: pd.DataFrame, fit: ModelFit, groupings: Mapping[str, Any],
                              min_rows: int = DEFAULT_MIN_ROWS, n_boot: int = DEFAULT_BOOT,
                              seed: int = 0) -> dict[str, Any]:
    """Holdout error per country / RFM segment: predicted vs actual holdout purchases of the calibration fit.

    Key metric: the absolute aggregate error ``|Σ predicted − Σ actual| / Σ actual`` of the group (lower is
    better; undefined when the group made no holdout purchase); extras: MAE per customer and the mean
    predicted and actual holdout purchases. ``groupings`` labels align with ``cal_holdout``'s rows. A group
    is flagged when its bootstrap interval lies entirely more than :data:`GROUP_ERROR_MARGIN` above the
    typical group's error (see :mod:`rfm_portal.mlops.group_metrics`).
    """
    x = cal_holdout["frequency_cal"].to_numpy(dtype=float)
    tx = cal_holdout["recency_cal"].to_numpy(dtype=float)
    T = cal_holdout["T_cal"].to_numpy(dtype=float)
    actual = cal_holdout["frequency_holdout"].to_numpy(dtype=float)
    duration = float(cal_holdout["duration_holdout"].iloc[0]) if len(cal_holdout) else 0.0
    pred = conditional_expected_purchases(fit.model, fit.params, duration, x, tx, T) if len(x) else np.array([])

    def abs_aggregate_error(rows: np.ndarray) -> float:
        total = actual[rows].sum()
        return float(abs(pred[rows].sum() - total) / total) if total > 0 else float("nan")

    def mean_of(values: np.ndarray) -> Callable[[np.ndarray], float]:
        return lambda rows: float(values[rows].mean()) if len(rows) else float("nan")

    rule = GroupRule("abs_aggregate_error", "holdout error", higher_is_better=False, margin=GROUP_ERROR_MARGIN,
                     min_rows=min_rows, n_boot=n_boot, seed=seed)
    return group_metrics(abs_aggregate_error, len(x), groupings, rule,
                         extras={"mae": mean_of(np.abs(pred - actual)), "mean_predicted": mean_of(pred),
                                 "mean_actual": mean_of(actual)})


# ---------------------------------------------------------------------------------------------
# batch scoring in chunks: the same rows whatever the chunks
# ---------------------------------------------------------------------------------------------

SIMULATION_BLOCK = 1_000  # customer pks per independently seeded block of simulation draws


@dataclass
class BlockScores:
    """``score_in_pk_blocks`` output: per-customer scores and the cohort sums chunks add up."""

    scores: pd.DataFrame  # score_frame columns with uncertainty, indexed like the summary
    cohort_customers: dict[str, int]  # "YYYY-MM" -> customers
    cohort_expected_clv: dict[str, float]  # "YYYY-MM" -> sum of closed-form CLV
    cohort_draws: dict[str, np.ndarray]  # "YYYY-MM" -> (n_draws,) sum of simulated CLV over its customers


def score_in_pk_blocks(
    bundle: CLTVModelBundle, summary: pd.DataFrame, *, block: int = SIMULATION_BLOCK, cohort_freq: str = "M"
) -> BlockScores:
    """Scores of customers indexed by integer id (sorted), with the simulation seeded per block of ids.

    Customers ``[k·block, (k+1)·block)`` draw from the generator seeded ``(bundle.seed, k)``, so a
    customer's simulated P10/P50/P90 depend on the block, never on which chunk of customers is being
    scored: chunks that start on a multiple of ``block`` give exactly the rows of one big run. The
    closed forms are per customer anyway. Cohort draw sums are additive over chunks (draws of one
    index add across customers, as in ``score_with_cohorts``).
    """
    ids = summary.index.to_numpy(dtype=np.int64)
    if len(ids) and np.any(np.diff(ids) <= 0):
        raise ValueError("customers must be sorted by id, without repeats")
    scores = score_frame(bundle, summary, with_uncertainty=False)
    x, tx, T, m = (summary[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T", "monetary_value"))
    cohort = pd.to_datetime(summary["first_purchase"]).dt.to_period(cohort_freq)
    codes, labels = pd.factorize(cohort, sort=True)
    q = (0.1, 0.5, 0.9)
    quantiles, mean = np.empty((len(ids), len(q))), np.empty(len(ids))
    draws = np.zeros((len(labels), bundle.n_draws))
    blocks = ids // int(block)
    starts = np.flatnonzero(np.r_[True, blocks[1:] != blocks[:-1]]) if len(ids) else np.array([], dtype=np.int64)
    for lo, hi in zip(starts, np.r_[starts[1:], len(ids)], strict=True):
        rows = slice(int(lo), int(hi))
        sim = simulate_clv(
            bundle.model, bundle.params, bundle.gamma_gamma, x[rows], tx[rows], T[rows], m[rows],
            scores["p_alive"].to_numpy()[rows], bundle.steps(), margin=bundle.margin, n_draws=bundle.n_draws,
            seed=[int(bundle.seed), int(blocks[lo])], q=q, groups=codes[rows], n_groups=len(labels),
        )  # fmt: skip
        quantiles[rows], mean[rows] = sim.quantiles, sim.mean
        draws += sim.group_draws
    for i, level in enumerate(q):
        scores[f"clv_p{round(level * 100)}"] = quantiles[:, i]
    scores["clv_sim_mean"] = mean
    names = [str(label) for label in labels]
    clv = scores["clv"].to_numpy()
    return BlockScores(
        scores=scores,
        cohort_customers=dict(zip(names, np.bincount(codes, minlength=len(names)).tolist(), strict=True)),
        cohort_expected_clv=dict(zip(names, np.bincount(codes, weights=clv, minlength=len(names)).tolist(),
                                     strict=True)),
        cohort_draws=dict(zip(names, draws, strict=True)),
    )


def cohort_table(customers: Mapping[str, int], expected_clv: Mapping[str, float],
                 draws: Mapping[str, np.ndarray], cohort_freq: str = "M") -> pd.DataFrame:
    """The cohort band (as ``score_with_cohorts``' table) from cohort sums added up over chunks."""
    names = sorted(customers)
    sims = np.array([np.asarray(draws[n], dtype=float) for n in names]).reshape(len(names), -1)
    return pd.DataFrame({
        "cohort": pd.PeriodIndex(names, freq=cohort_freq).to_timestamp(),
        "customers": [int(customers[n]) for n in names],
        "expected_clv": [float(expected_clv[n]) for n in names],
        "simulated_mean": sims.mean(axis=1) if len(names) else [],
        "p10": np.quantile(sims, 0.1, axis=1) if len(names) else [],
        "p50": np.quantile(sims, 0.5, axis=1) if len(names) else [],
        "p90": np.quantile(sims, 0.9, axis=1) if len(names) else [],
    })
