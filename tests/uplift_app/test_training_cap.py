"""UPLIFT_MAX_TRAIN_ROWS: above it the learners see a stratified sample; every customer is still scored."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rfm_portal.customers.models import Customer
from uplift import services
from uplift.models import UpliftScore

from .conftest import FAST


def _campaign(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    treated = rng.random(n) < 0.5
    converted = (rng.random(n) < np.where(treated, 0.12, 0.08)).astype(float)
    return pd.DataFrame({"treated": treated, "converted": converted, "x": rng.normal(size=n)},
                        index=pd.Index(np.arange(1000, 1000 + n)))


def test_the_cap_keeps_every_arm_and_outcome_in_proportion():
    frame = _campaign(50_000)
    capped = services.capped_training_frame(frame, 10_000, seed=0)
    assert abs(len(capped) - 10_000) <= 4  # rounding per stratum
    assert capped.index.is_monotonic_increasing and capped.index.isin(frame.index).all()
    for column in ("treated", "converted"):
        assert abs(capped[column].mean() - frame[column].mean()) < 0.002
    both = frame.groupby(["treated", "converted"]).size() / len(frame)
    assert np.allclose(capped.groupby(["treated", "converted"]).size() / len(capped), both, atol=1e-3)
    assert services.capped_training_frame(frame, 10_000, seed=0).index.equals(capped.index)  # seeded
    assert services.capped_training_frame(frame, 0, seed=0) is frame
    assert services.capped_training_frame(frame, 60_000, seed=0) is frame


def test_training_above_the_cap_learns_from_a_sample_and_scores_everyone(generated, admin, settings):
    settings.UPLIFT_MAX_TRAIN_ROWS = 800
    champion = services.train_uplift_model(user=admin, config=FAST)[0]  # 800 rows: maybe one learner only
    campaign = champion.metrics["campaign"]
    assert campaign["used_customers"] > 900 and abs(campaign["trained_on_customers"] - 800) <= 4
    assert UpliftScore.objects.filter(model_version=champion).count() == Customer.objects.count()
