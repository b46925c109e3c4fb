"""The uplift pipeline against truth it never sees: the generator's true effects and IHDP's.

Floors (stated in the issue note, measured values in docs/benchmarks.md): on 5,000 generated customers
(seed 3, continuous acquisition; ≈ 3,700 in the campaign, 30 % held out) the promoted learner's
held-out Qini is ≥ 40 % of the oracle's (customers ranked by true_uplift, same observed outcomes),
its predicted effects correlate ≥ 0.3 with true_uplift, and ≥ 75 % of the true sleeping dogs
(true_uplift < 0) are not recommended for contact.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from econml.data.dgps import ihdp_surface_B

from tests.uplift.conftest import FAST
from uplift import pipeline
from uplift.pipeline import (
    ProfitInputs,
    UpliftConfig,
    UpliftError,
    assign_groups,
    campaign_checks,
    expected_profit,
    ihdp_benchmark,
    oracle_share,
    train_uplift,
)

ORACLE_SHARE_FLOOR = 0.40
CORRELATION_FLOOR = 0.30
SLEEPING_DOGS_NOT_CONTACTED_FLOOR = 0.75


@pytest.fixture(scope="module")
def trained(truth_campaign):
    frame, truth = truth_campaign
    return train_uplift(frame, FAST), frame, truth


def test_promoted_model_recovers_the_true_effects(trained):
    result, frame, truth = trained
    model = result.models[result.champion]
    ho = frame.loc[result.holdout_index]
    held = model.score(ho)
    share = oracle_share(ho["converted"].to_numpy(), ho["treated"].to_numpy(), held["uplift"].to_numpy(),
                         truth.loc[result.holdout_index].to_numpy())
    everyone = model.score(frame)
    corr = np.corrcoef(everyone["uplift"], truth)[0, 1]
    dogs = truth < 0
    not_contacted = (everyone.loc[dogs, "recommendation"] != "contact").mean()
    print(f"champion={result.champion} oracle_share={share:.3f} corr={corr:.3f} dogs={dogs.sum()} "
          f"not_contacted={not_contacted:.3f}")
    assert share >= ORACLE_SHARE_FLOOR
    assert corr >= CORRELATION_FLOOR
    assert dogs.sum() > 100 and not_contacted >= SLEEPING_DOGS_NOT_CONTACTED_FLOOR


def test_both_learners_beat_random_and_the_naive_rules(trained):
    result, _, _ = trained
    ev = result.evaluation
    assert set(result.models) == {"causal_forest", "t_learner"}
    for learner in result.models:
        assert ev[learner]["qini"] > ev["random"]["qini"]
        assert ev[learner]["qini"] > ev["most_likely_buyers"]["qini"]
        assert ev[learner]["qini"] > ev["highest_churn_risk"]["qini"]
    assert result.champion == max(result.models, key=lambda k: ev[k]["qini"])
    assert str(round(ev[result.champion]["qini"], 4)) in result.reason


def test_scores_are_consistent(trained):
    result, frame, _ = trained
    s = result.models[result.champion].score(frame.head(300), ProfitInputs(0.2, 1.0, 0.5))
    assert (s["uplift_low"] <= s["uplift"]).all() and (s["uplift"] <= s["uplift_high"]).all()
    assert s["baseline"].between(0, 1).all()
    assert set(s["group"]) <= set(pipeline.GROUPS)
    assert (s.loc[s["group"] == "sleeping_dog", "recommendation"] == "dont_contact").all()
    assert ((s["expected_profit"] > 0) == (s["recommendation"] == "contact")).loc[s["group"] != "sleeping_dog"].all()


def test_groups_follow_the_interval_and_the_baseline():
    low = np.array([0.01, -0.2, -0.1, -0.1])
    high = np.array([0.2, -0.01, 0.1, 0.1])
    base = np.array([0.1, 0.9, 0.8, 0.1])
    assert list(assign_groups(low, high, base, 0.5)) == ["persuadable", "sleeping_dog", "sure_thing", "lost_cause"]


def test_expected_profit_closed_form():
    p = expected_profit(np.array([10.0]), np.array([0.1]), np.array([0.3]), ProfitInputs(0.5, 2.0, 0.4))
    assert p[0] == pytest.approx(10 * 0.4 - 0.5 - 2.0 * 0.4)


def test_profit_inputs_are_validated():
    with pytest.raises(UpliftError, match="margin"):
        ProfitInputs(margin=1.5).validated()
    with pytest.raises(UpliftError, match="contact_cost"):
        ProfitInputs(contact_cost=float("nan")).validated()


def _frame(n_treated: int, n_control: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = n_treated + n_control
    frame = pd.DataFrame({f: rng.random(n) for f in pipeline.FEATURE_COLUMNS})
    frame["treated"] = np.r_[np.ones(n_treated, bool), np.zeros(n_control, bool)]
    frame["converted"] = (rng.random(n) < 0.3).astype(float)
    frame["revenue"] = frame["converted"] * 20
    return frame


def test_one_armed_campaign_is_refused_clearly():
    with pytest.raises(UpliftError, match="no control customers"):
        campaign_checks(_frame(500, 0), list(pipeline.FEATURE_COLUMNS), UpliftConfig())
    with pytest.raises(UpliftError, match="too small"):
        campaign_checks(_frame(500, 40), list(pipeline.FEATURE_COLUMNS), UpliftConfig())


def test_balance_is_measured_as_standardised_differences():
    frame = _frame(600, 600)
    frame.loc[frame["treated"], "recency_days"] += 1.0  # contacted customers much more recent: unbalanced
    checks = campaign_checks(frame, list(pipeline.FEATURE_COLUMNS), UpliftConfig())
    by = {b["feature"]: b for b in checks["balance"]}
    assert not by["recency_days"]["balanced"] and by["recency_days"]["smd"] > 2
    assert by["frequency"]["balanced"]
    assert checks["treatment_share"] == pytest.approx(0.5)


def test_small_data_falls_back_to_the_t_learner():
    result = train_uplift(_frame(300, 300), UpliftConfig(bootstrap=3, gbm_iter=30))
    assert result.champion == "t_learner" and set(result.models) == {"t_learner"}
    assert "forest needs" in result.failures["causal_forest"]


def test_econml_failure_falls_back_to_the_t_learner(monkeypatch):
    def broken(self, X, t, y):
        raise RuntimeError("econml exploded")

    monkeypatch.setattr(pipeline.ForestEffect, "fit", broken)
    result = train_uplift(_frame(500, 500), UpliftConfig(bootstrap=3, gbm_iter=30, min_forest_train=10))
    assert result.champion == "t_learner"
    assert "econml exploded" in result.failures["causal_forest"]


IHDP_DRAWS = range(6)  # evaluation draws; every setting was chosen on draws 10–21 (bench/uplift_ihdp_variants.py)


def test_ihdp_pipeline_beats_the_t_learner():
    """IHDP surface B (econml's bundled covariates, 747 children, true effects known), draws 0–5, in-sample.

    The pipeline's causal forest (grown on its R-loss-shrunk stacked T-learner prior) against its own T-learner
    challenger, unchanged. Measured (docs/benchmarks.md): √PEHE 0.878 vs 1.063, |ATE error| 0.108 vs 0.116;
    knowing only the true average effect gives √PEHE = sd of τ = 3.06. The ATE margin is small: on the tuning
    draws 10–21 the T-learner's ATE error was lower (0.066 vs 0.123), so the ATE win here is within noise.
    """
    pehe = {"causal_forest": [], "t_learner": []}
    ate = {"causal_forest": [], "t_learner": []}
    sd = []
    for seed in IHDP_DRAWS:
        sd.append(ihdp_surface_B(random_state=seed)[3].std())
        for kind, r in ihdp_benchmark(seed).items():
            pehe[kind].append(r["sqrt_pehe"])
            ate[kind].append(r["ate_error"])
    mean_pehe = {k: float(np.mean(v)) for k, v in pehe.items()}
    mean_ate = {k: float(np.mean(v)) for k, v in ate.items()}
    print(mean_pehe, mean_ate, round(float(np.mean(sd)), 3))
    assert mean_pehe["causal_forest"] < mean_pehe["t_learner"]
    assert mean_ate["causal_forest"] < mean_ate["t_learner"]
    assert mean_pehe["causal_forest"] == pytest.approx(0.878, abs=0.02)
    assert mean_pehe["t_learner"] == pytest.approx(1.063, abs=0.02)
    for kind in pehe:  # both far better than knowing only the true average effect
        assert mean_pehe[kind] < 0.5 * np.mean(sd)


def test_forest_prior_is_shrunk_by_the_r_loss():
    """A prior that explains a large smooth effect is kept (λ near 1); a prior fitted to pure noise is dropped
    (λ near 0), leaving the forest alone, as on campaigns whose effects are small."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(800, 4))
    t = rng.random(800) < 0.5
    cfg = UpliftConfig(forest_trees=20, gbm_iter=40, gbm_min_leaf=10, n_jobs=1)
    tau = 3.0 * X[:, 0]
    strong = pipeline.ForestEffect(cfg, binary=False).fit(X, t, X[:, 1] + t * tau + rng.normal(size=800))
    assert strong.shrinkage > 0.8
    assert np.corrcoef(strong.effect(X), tau)[0, 1] > 0.95
    assert strong.prior[1].weights[-1] > 0.5  # the linear member carries the linear treated response
    none = pipeline.ForestEffect(cfg, binary=False).fit(X, t, X[:, 1] + rng.normal(size=800))
    assert none.shrinkage < 0.3
