"""Campaign planner fixtures: generated data with truth (evaluation only) and a fast uplift model."""

from __future__ import annotations

import pytest

from rfm_portal.customers.generator import GeneratorParams, generate
from uplift.pipeline import UpliftConfig, train_uplift
from uplift.synthetic import campaign_frame

TRUTH_CUSTOMERS = 5000
TRUTH_SEED = 3
FAST = UpliftConfig(forest_trees=100, bootstrap=10, gbm_iter=100, n_jobs=2)


@pytest.fixture(scope="session")
def scored_truth():
    """(predicted scores, features+outcomes, truth table) for ≈ 3,700 campaign customers. The model is fitted on
    the generated randomised campaign; the truth only scores the planner afterwards."""
    data = generate(TRUTH_CUSTOMERS, TRUTH_SEED, params=GeneratorParams(acquisition_share=1.0))
    frame, _ = campaign_frame(data)
    result = train_uplift(frame, FAST)
    scores = result.models[result.champion].score(frame)
    truth = data.truth.set_index(data.truth["customer_id"].astype(str)).reindex(frame.index)
    return scores, frame, truth
