"""Tests of the pure Segmentation math; the helpers below generate data with a known structure."""

from __future__ import annotations

import numpy as np
import pandas as pd

T0 = pd.Timestamp("2024-01-01", tz="UTC")
HORIZON_DAYS = 730

# Planted behavioural groups: (mean invoices, active window start day, end day, spend per invoice, share).
PLANTED_GROUPS: dict[str, tuple[float, float, float, float, float]] = {
    "loyal_high": (24.0, 0.0, 728.0, 150.0, 0.15),
    "lapsed_big": (8.0, 0.0, 250.0, 300.0, 0.20),
    "new_low": (1.5, 690.0, 729.0, 15.0, 0.25),
    "occasional_low": (3.0, 350.0, 650.0, 40.0, 0.40),
}
# The shares are chosen so that every group's median sits well inside one tertile of each of
# R, F and M (≥ 0.06 from the ⅓ and ⅔ level boundaries), so the expected names are unambiguous.


def planted_transactions(n_customers: int = 1200, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Transactions of customers drawn from :data:`PLANTED_GROUPS`, with noise, and the truth.

    Each customer: 1 + Poisson(mean − 1) invoices spread uniformly over the group's window
    (window ends jittered by ±10 days), lognormal invoice values (σ = 0.3) around the group's
    spend; 5 % of invoices get a 30 % return the next day. Returns ``(transactions, group)``
    with ``group`` indexed by customer id.
    """
    rng = np.random.default_rng(seed)
    specs = np.array(list(PLANTED_GROUPS.values()))
    sizes = np.floor(specs[:, 4] * n_customers).astype(int)
    sizes[-1] = n_customers - sizes[:-1].sum()
    g = np.repeat(np.arange(len(specs)), sizes)
    lam, start, end, spend = specs[g, :4].T
    n_inv = 1 + rng.poisson(lam - 1)
    start = np.clip(start + rng.normal(0, 10, g.size), 0, HORIZON_DAYS - 2)
    end = np.clip(end + rng.normal(0, 10, g.size), start + 1, HORIZON_DAYS - 0.5)
    cust = np.repeat(np.arange(g.size), n_inv)
    day = start[cust] + rng.random(cust.size) * (end - start)[cust]
    amount = rng.lognormal(np.log(spend[cust]), 0.3)
    invoice = np.arange(cust.size)
    returned = rng.random(cust.size) < 0.05
    cust = np.concatenate([cust, cust[returned]])
    invoice = np.concatenate([invoice, invoice[returned] + 10**7])
    day = np.concatenate([day, np.minimum(day[returned] + 1, HORIZON_DAYS - 0.01)])
    amount = np.concatenate([amount, -0.3 * amount[returned]])
    is_return = np.concatenate([np.zeros(returned.size, bool), np.ones(returned.sum(), bool)])
    transactions = pd.DataFrame(
        {
            "customer_id": cust + 1000,
            "invoice": invoice,
            "invoiced_at": T0 + pd.to_timedelta(day, unit="D"),
            "amount": amount,
            "is_return": is_return,
        }
    )
    return transactions, pd.Series(g, index=np.arange(g.size) + 1000, name="group")
