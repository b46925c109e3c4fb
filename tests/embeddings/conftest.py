"""Generated customers with known taste clusters, and one Customer2Vec fit on them (pure, no database)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from embeddings import pipeline
from rfm_portal.customers.generator import generate

N_CUSTOMERS = 800
SEED = 5
CONFIG = pipeline.EmbeddingConfig(epochs=12, seed=3, map_method="pca", map_sample=300, quality_sample=500)


@dataclass
class Fitted:
    frame: pd.DataFrame
    baskets: pipeline.Baskets
    trained: pipeline.TrainedEmbeddings
    labels: np.ndarray  # true taste cluster per customer code (evaluation only)
    rfm: np.ndarray  # standardised log R, F, M per customer code


def purchase_lines(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    data = generate(n, seed=seed)
    t = data.transactions
    t = t[t["quantity"] > 0]
    frame = pd.DataFrame({
        "customer_id": t["customer_id"].astype(str), "invoice": t["invoice"].astype(str), "product_id": t["sku"],
        "category": t["category"], "invoiced_at": pd.to_datetime(t["invoiced_at"]),
        "amount": t["quantity"] * t["unit_price"],
    })
    return frame, data.truth


@pytest.fixture(scope="session")
def fitted() -> Fitted:
    frame, truth = purchase_lines(N_CUSTOMERS, SEED)
    baskets = pipeline.encode_baskets(frame)
    trained = pipeline.train_customer2vec(baskets, CONFIG)
    labels = truth.assign(customer_id=truth["customer_id"].astype(str)).set_index("customer_id").loc[
        baskets.customer_ids, "taste_cluster"].to_numpy()
    rfm = pipeline.rfm_features(frame).loc[baskets.customer_ids].to_numpy(dtype=np.float32)
    return Fitted(frame, baskets, trained, labels, rfm)
