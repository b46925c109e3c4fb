"""Synthetic customers with a planted BG/NBD-like purchase + dropout process (ground truth known).

Each customer is born (first purchase) at a uniform time in the first 60 % of the period, then
buys as a Poisson process with rate λ ~ Gamma(r, 1/α) per day; after each *repeat* purchase they
drop out for good with probability p ~ Beta(a, b) (Fader, Hardie & Lee 2005). Order values are
Gamma around a per-customer mean; each invoice has 1–3 lines in the customer's favourite
categories; ~5 % of invoices are partly returned a few days later.

Truth for a window starting at ``t0`` of ``H`` days: a customer dead at ``t0`` surely makes no
purchase; an alive one makes none with probability exp(−λH). That P(no purchase in H) is the
best any model could know (the ceiling the churn AUC is compared with).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

START = pd.Timestamp("2024-01-01", tz="UTC")
CATEGORIES = np.array(["home", "kitchen", "garden", "toys", "gifts", "party", "stationery", "books"])


@dataclass
class SyntheticData:
    transactions: pd.DataFrame
    customers: pd.DataFrame
    truth: pd.DataFrame  # customer_id → lam (per day), p, birth, death (NaT if alive at the end)
    cutoff: pd.Timestamp

    def true_no_purchase_proba(self, t0: pd.Timestamp, horizon_days: int) -> pd.Series:
        """P(no purchase in [t0, t0 + H) | true λ, true alive state at t0)."""
        dead = self.truth["death"].notna() & (self.truth["death"] < t0)
        p = np.where(dead, 1.0, np.exp(-self.truth["lam"].to_numpy() * horizon_days))
        return pd.Series(p, index=self.truth.index)


def simulate_dropout_population(
    n_customers: int = 4000,
    days: int = 730,
    seed: int = 7,
    r: float = 1.0,
    alpha: float = 40.0,
    a: float = 1.0,
    b: float = 12.0,
    return_rate: float = 0.05,
) -> SyntheticData:
    """Vectorised simulation (also used by ``bench/churn_pipeline_bench.py`` at 1,000,000 customers)."""
    rng = np.random.default_rng(seed)
    n = n_customers
    lam = rng.gamma(r, 1.0 / alpha, n)  # purchases per day
    p = rng.beta(a, b, n)
    birth = rng.uniform(0, 0.6 * days, n)
    K = rng.geometric(np.clip(p, 1e-6, 1.0))  # dies right after its K-th repeat purchase
    N = rng.poisson(lam * (days - birth))  # repeat purchases if it never died
    n_rep = np.minimum(N, K)
    # repeat purchase times: N uniform points in (birth, days), keep the first min(N, K)
    cust = np.repeat(np.arange(n), N)
    t = birth[cust] + rng.uniform(0, 1, cust.size) * (days - birth[cust])
    order = np.lexsort((t, cust))
    cust, t = cust[order], t[order]
    starts = np.concatenate(([0], np.cumsum(N)[:-1]))
    rank = np.arange(cust.size) - starts[cust]
    keep = rank < n_rep[cust]
    cust, t = cust[keep], t[keep]
    died = K <= N
    death = np.full(n, np.nan)
    last_idx = np.cumsum(n_rep) - 1
    death[died] = t[last_idx[died]]
    # all purchase invoices = birth + repeats
    inv_cust = np.concatenate((np.arange(n), cust))
    inv_t = np.concatenate((birth, t))
    n_inv = inv_cust.size
    mean_value = rng.gamma(3.0, 12.0, n) + 5.0
    inv_value = rng.gamma(4.0, mean_value[inv_cust] / 4.0)
    n_lines = 1 + rng.binomial(2, 0.4, n_inv)
    line_inv = np.repeat(np.arange(n_inv), n_lines)
    share = rng.uniform(0.5, 1.5, line_inv.size)
    share /= np.bincount(line_inv, weights=share)[line_inv]
    fav = rng.integers(0, len(CATEGORIES), (n, 3))
    line_cat = CATEGORIES[fav[inv_cust[line_inv], rng.integers(0, 3, line_inv.size)]]
    cid = np.char.add("C", np.arange(n).astype(str)).astype(object)
    inv_name = np.char.add("I", np.arange(n_inv).astype(str)).astype(object)
    ts = START + pd.to_timedelta(inv_t * 86400.0, unit="s")
    purchases = pd.DataFrame({
        "customer_id": cid[inv_cust[line_inv]],
        "invoice": inv_name[line_inv],
        "invoiced_at": ts[line_inv],
        "amount": np.round(inv_value[line_inv] * share, 2),
        "quantity": rng.integers(1, 5, line_inv.size),
        "is_return": np.zeros(line_inv.size, dtype=bool),
        "category": line_cat,
    })
    ret = np.flatnonzero(rng.uniform(size=n_inv) < return_rate)
    ret_t = inv_t[ret] + rng.uniform(1, 14, ret.size)
    ok = ret_t < days
    ret, ret_t = ret[ok], ret_t[ok]
    returns = pd.DataFrame({
        "customer_id": cid[inv_cust[ret]],
        "invoice": np.char.add("C", inv_name[ret].astype(str)).astype(object),
        "invoiced_at": START + pd.to_timedelta(ret_t * 86400.0, unit="s"),
        "amount": -np.round(inv_value[ret] * rng.uniform(0.2, 1.0, ret.size), 2),
        "quantity": -rng.integers(1, 3, ret.size),
        "is_return": np.ones(ret.size, dtype=bool),
        "category": CATEGORIES[fav[inv_cust[ret], 0]],
    })
    tx = pd.concat([purchases, returns], ignore_index=True)
    countries = np.array(["United Kingdom", "France", "Germany", "Spain"])
    customers = pd.DataFrame({
        "customer_id": cid,
        "country": countries[rng.integers(0, len(countries), n)],
        "first_seen": START + pd.to_timedelta(birth * 86400.0, unit="s"),
    })
    truth = pd.DataFrame({
        "lam": lam, "p": p,
        "birth": START + pd.to_timedelta(birth * 86400.0, unit="s"),
        "death": START + pd.to_timedelta(death * 86400.0, unit="s"),
    }, index=pd.Index(cid, name="customer_id"))
    return SyntheticData(tx, customers, truth, START + pd.Timedelta(days=days))


@pytest.fixture(scope="session")
def synthetic() -> SyntheticData:
    return simulate_dropout_population()


@pytest.fixture(scope="session")
def trained(synthetic):
    from churn.pipeline import train_churn

    return train_churn(synthetic.transactions, synthetic.customers, synthetic.cutoff)
