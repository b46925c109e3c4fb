"""Per-group metrics on small known data sets match hand calculations (pure: no database)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import hyp2f1

from churn.pipeline import group_performance as churn_groups
from cltv.pipeline import ModelFit, holdout_group_performance
from rfm_portal.mlops.group_metrics import GroupRule, auc, auc_interval, group_performance, proportion_interval
from uplift.pipeline import group_performance as uplift_groups


def test_auc_by_hand_including_ties():
    # positives 0.35, 0.8 against negatives 0.1, 0.4: 0.35 beats one of two, 0.8 beats both -> 3/4
    assert auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    # a tie between a positive and a negative counts one half: (1 + 0.5) / 2
    assert auc(np.array([0, 0, 1]), np.array([0.2, 0.5, 0.5])) == pytest.approx(0.75)
    assert np.isnan(auc(np.array([1, 1]), np.array([0.2, 0.3])))


def test_analytic_intervals_by_hand():
    # Hanley-McNeil: A = 0.8, 10 positives, 10 negatives -> Q1 = 0.8/1.2, Q2 = 1.28/1.8
    q1, q2 = 0.8 / 1.2, 2 * 0.64 / 1.8
    se = np.sqrt((0.8 * 0.2 + 9 * (q1 - 0.64) + 9 * (q2 - 0.64)) / 100)
    assert auc_interval(0.8, 10, 10) == pytest.approx((0.8 - 1.96 * se, 0.8 + 1.96 * se))
    # Wilson: 5 of 10
    half = 1.96 * np.sqrt(0.025 + 1.96**2 / 400) / (1 + 1.96**2 / 10)
    assert proportion_interval(5, 10) == pytest.approx((0.5 - half, 0.5 + half))


def test_churn_groups_auc_and_calibration_by_hand():
    y = np.array([0, 0, 1, 1, 0, 1, 0, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.3, 0.7])
    country = ["FR"] * 4 + ["DE"] * 4
    perf = churn_groups(y, p, {"country": country}, min_rows=5, n_boot=50)
    # overall: of 16 positive/negative pairs only 0.35 < 0.4 is misordered -> 15/16
    assert perf["overall"]["value"] == pytest.approx(15 / 16)
    assert perf["overall"]["n"] == 8
    rows = {r["group"]: r for r in perf["by"]["country"]}
    assert rows["FR"]["value"] == pytest.approx(0.75) and rows["DE"]["value"] == pytest.approx(1.0)
    assert rows["FR"]["mean_predicted"] == pytest.approx((0.1 + 0.4 + 0.35 + 0.8) / 4)
    assert rows["FR"]["observed_rate"] == pytest.approx(0.5)
    assert rows["DE"]["mean_predicted"] == pytest.approx((0.2 + 0.9 + 0.3 + 0.7) / 4)
    # four rows each: below min_rows, so no interval and never flagged
    for row in rows.values():
        assert row["n"] == 4 and not row["judged"] and row["ci_low"] is None and not row["flagged"]
    assert perf["flagged"] == [] and "too few to judge" in perf["rule"]


def test_a_group_the_model_cannot_rank_is_flagged_and_a_good_one_is_not():
    rng = np.random.default_rng(1)
    n = 300
    y_good = rng.integers(0, 2, n)
    p_good = np.clip(0.5 * y_good + 0.5 * rng.random(n), 0, 1)  # perfectly separated: AUC 1
    y_bad = rng.integers(0, 2, n)
    p_bad = rng.random(n)  # noise: AUC about 0.5
    perf = churn_groups(np.r_[y_good, y_bad], np.r_[p_good, p_bad], {"rfm_segment": ["Good"] * n + ["Bad"] * n})
    rows = {r["group"]: r for r in perf["by"]["rfm_segment"]}
    assert rows["Good"]["value"] == pytest.approx(1.0) and not rows["Good"]["flagged"]
    assert rows["Bad"]["judged"] and rows["Bad"]["flagged"]
    # the reference is the size-weighted mean of the judged groups: (1.0·300 + AUC_bad·300) / 600
    assert perf["reference"]["rfm_segment"] == pytest.approx((1.0 + rows["Bad"]["value"]) / 2)
    assert rows["Bad"]["ci_high"] < perf["reference"]["rfm_segment"] - 0.05
    assert perf["flagged"] == [{"grouping": "rfm_segment", "group": "Bad", "n": n, "value": rows["Bad"]["value"],
                                "ci_low": rows["Bad"]["ci_low"], "ci_high": rows["Bad"]["ci_high"]}]


def _bgnbd_no_repeat(a: float, b: float, r: float, alpha: float, T: float, t: float) -> float:
    """BG/NBD E[purchases in (T, T+t] | x = 0] (Fader, Hardie & Lee 2005, eq. 10 with x = 0)."""
    z = t / (alpha + T + t)
    return (a + b - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** r * hyp2f1(r, b, a + b - 1, z))


def test_cltv_group_holdout_error_by_hand():
    params = {"r": 0.8, "alpha": 5.0, "a": 1.5, "b": 4.0}
    fit = ModelFit(model="bgnbd", params=params, standard_errors={}, penalizer=0.0, attempts=[], n_customers=6,
                   n_unique=6, log_likelihood=0.0, fit_seconds=0.0)
    T = np.array([10.0, 20.0, 30.0, 5.0, 15.0, 25.0])
    actual = np.array([1.0, 0.0, 2.0, 0.0, 0.0, 1.0])
    cal = pd.DataFrame({"frequency_cal": 0.0, "recency_cal": 0.0, "T_cal": T, "frequency_holdout": actual,
                        "duration_holdout": 8.0})
    pred = np.array([_bgnbd_no_repeat(1.5, 4.0, 0.8, 5.0, T_i, 8.0) for T_i in T])
    perf = holdout_group_performance(cal, fit, {"country": ["UK", "UK", "UK", "NL", "NL", "NL"]}, min_rows=3,
                                     n_boot=100)
    rows = {r["group"]: r for r in perf["by"]["country"]}
    assert perf["overall"]["value"] == pytest.approx(abs(pred.sum() - 4) / 4, rel=1e-6)
    assert rows["UK"]["value"] == pytest.approx(abs(pred[:3].sum() - 3) / 3, rel=1e-6)
    assert rows["NL"]["value"] == pytest.approx(abs(pred[3:].sum() - 1) / 1, rel=1e-6)
    assert rows["UK"]["mae"] == pytest.approx(np.abs(pred[:3] - actual[:3]).mean(), rel=1e-6)
    assert rows["NL"]["mean_predicted"] == pytest.approx(pred[3:].mean(), rel=1e-6)
    assert perf["higher_is_better"] is False


def test_uplift_group_qini_by_hand():
    # ranked by score: treated buyer, treated non-buyer, control buyer, control non-buyer.
    # Q/N after each customer: 1/4, 1/4, (1 - 1·2/1)/4 = -1/4, (1 - 1·2/2)/4 = 0; trapezoids over steps of 1/4:
    # 1/32 + 1/16 + 0 - 1/32 = 1/16, minus the random line's area (end value 0) -> 0.0625
    y = np.array([1, 0, 1, 0] * 2, dtype=float)
    t = np.array([1, 1, 0, 0] * 2)
    s = np.array([0.9, 0.8, 0.2, 0.1, 0.1, 0.2, 0.8, 0.9])  # the second group ranked the other way round
    perf = uplift_groups(y, t, s, {"country": ["A"] * 4 + ["B"] * 4}, min_rows=10)
    rows = {r["group"]: r for r in perf["by"]["country"]}
    assert rows["A"]["value"] == pytest.approx(0.0625)
    # B ranked: control non-buyer, control buyer, treated non-buyer, treated buyer.
    # Q/N: 0, 0, (0 - 1·1/2)/4 = -1/8, (1 - 1·2/2)/4 = 0; trapezoids: 0 + 0 - 1/64 - 1/64 = -1/32
    assert rows["B"]["value"] == pytest.approx(-0.03125)
    assert rows["A"]["observed_uplift"] == pytest.approx(0.0)
    assert not rows["A"]["judged"] and rows["A"]["n"] == 4


def test_labels_must_align_and_blanks_are_unknown():
    rule = GroupRule("m", "m", True, 0.1, min_rows=1, n_boot=20)
    perf = group_performance(lambda rows: float(len(rows)), 3, {"country": ["", None, "UK"]}, rule)
    assert {r["group"]: r["n"] for r in perf["by"]["country"]} == {"(unknown)": 2, "UK": 1}
    with pytest.raises(ValueError):
        group_performance(lambda rows: 1.0, 3, {"country": ["UK"]}, rule)
