"""Generated campaigns with a known true effect per customer (truth used only to score the models)."""

from __future__ import annotations

import pandas as pd
import pytest

from rfm_portal.customers.generator import GeneratorParams, generate
from uplift.pipeline import UpliftConfig
from uplift.synthetic import campaign_frame

# Small and fast, still enough for the forest to see the planted effects (≈ 3,700 campaign customers).
TRUTH_CUSTOMERS = 5000
TRUTH_SEED = 3
FAST = UpliftConfig(forest_trees=100, bootstrap=10, gbm_iter=100, n_jobs=2)


@pytest.fixture(scope="session")
def truth_campaign() -> tuple[pd.DataFrame, pd.Series]:
    data = generate(TRUTH_CUSTOMERS, TRUTH_SEED, params=GeneratorParams(acquisition_share=1.0))
    return campaign_frame(data)
