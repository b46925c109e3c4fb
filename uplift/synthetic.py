"""Generated data → the frames the uplift pipeline takes (pure; tests and bench/ use it).

Mirrors what :mod:`uplift.services` reads from the database: transactions as ``build_features``
expects them, each campaign customer's features as of their ``sent_at``, plus the outcome
columns. The truth (``true_uplift``) is returned separately and never enters a model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rfm_portal.customers.features import build_features_at
from rfm_portal.customers.generator import GeneratedData


def transactions_frame(data: GeneratedData) -> pd.DataFrame:
    tx = data.transactions
    return pd.DataFrame({
        "customer_id": tx["customer_id"].astype(str).to_numpy(),
        "invoice": tx["invoice"].astype(str).to_numpy(),
        "invoiced_at": pd.to_datetime(tx["invoiced_at"], utc=True),
        "amount": (tx["quantity"] * tx["unit_price"]).to_numpy(dtype=float),
        "quantity": tx["quantity"].to_numpy(dtype=np.int64),
        "is_return": tx["invoice"].astype(str).str.startswith("C").to_numpy(),
        "category": tx["category"].astype(str).to_numpy(),
    })


def campaign_frame(data: GeneratedData) -> tuple[pd.DataFrame, pd.Series]:
    """(features as of sent_at + treated/converted/revenue, indexed by customer id; true_uplift)."""
    camp = data.campaigns.set_index(data.campaigns["customer_id"].astype(str))
    cutoffs = pd.Series(pd.to_datetime(camp["sent_at"], utc=True).to_numpy(), index=camp.index)
    X = build_features_at(transactions_frame(data), cutoffs)
    frame = X.join(camp[["treated", "converted", "revenue"]].astype(float), how="inner")
    frame["treated"] = frame["treated"].astype(bool)
    truth = data.truth.set_index(data.truth["customer_id"].astype(str))["true_uplift"].reindex(frame.index)
    return frame, truth
