"""Churn backtest design, models, champion rule, bundle, and the AUC against the planted truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churn.pipeline import (
    ChurnConfig,
    ChurnError,
    ChurnModelBundle,
    RiskBands,
    choose_champion,
    evaluate,
    fit_bundle,
    logistic_decision,
    make_training_set,
    score_customers,
    train_churn,
)
from rfm_portal.customers.features import build_features

AUC_FLOOR = 0.75


def _tx(rows):
    cut = pd.Timestamp("2025-01-01", tz="UTC")
    return cut, pd.DataFrame({
        "customer_id": [r[0] for r in rows], "invoice": [f"I{i}" for i in range(len(rows))],
        "invoiced_at": [cut - pd.Timedelta(days=r[1]) for r in rows], "amount": [10.0] * len(rows),
        "quantity": [1] * len(rows), "is_return": [r[2] for r in rows], "category": ["x"] * len(rows),
    })


def test_training_set_labels_and_population():
    cut, tx = _tx([
        ("stay", 200, False), ("stay", 30, False),   # buys inside the label window → 0
        ("churn", 200, False), ("churn", 5, True),   # only a return in the window → still churned
        ("new", 50, False),                          # first purchase after the feature cut-off → excluded
        ("late", 100, False), ("late", -3, False),   # buys only after the label window → churned
    ])
    ts = make_training_set(tx, None, cut, 90)
    assert ts.feature_cutoff == cut - pd.Timedelta(days=90) and ts.label_end == cut
    assert ts.y.to_dict() == {"churn": 1, "late": 1, "stay": 0}
    assert ts.X.loc["stay", "frequency"] == 1  # the window purchase is not in the features
    assert ts.X.loc["stay", "recency_days"] == pytest.approx(110)


def test_uncovered_label_window_is_an_error():
    cut, tx = _tx([("a", 400, False), ("a", 300, False)])
    with pytest.raises(ChurnError, match="not covered"):
        make_training_set(tx, None, cut, 90)


def test_tiny_and_one_class_data_raise_churn_error(synthetic):
    tx = synthetic.transactions
    few = tx[tx["customer_id"].isin([f"C{i}" for i in range(12)])]
    with pytest.raises(ChurnError, match="customers, need at least"):
        train_churn(few, None, synthetic.cutoff)
    cut, one = _tx([(f"c{i}", 200, False) for i in range(40)] + [("z", 10, False)])
    ts = make_training_set(one, None, cut, 90)
    assert ts.y.sum() == 40 and len(ts.y) == 40  # everyone churned
    with pytest.raises(ChurnError, match="one class"):
        fit_bundle("logistic", ts)
    assert issubclass(ChurnError, ValueError)


def test_auc_clears_floor_and_is_compared_with_truth_ceiling(synthetic, trained):
    y = trained.holdout_y
    win = trained.holdout_window
    t0 = pd.Timestamp(win["feature_cutoff"])
    holdout = make_training_set(synthetic.transactions, synthetic.customers, synthetic.cutoff, 90)
    truth = synthetic.true_no_purchase_proba(t0, 90).reindex(holdout.X.index)
    ceiling = roc_auc_score(y, truth)
    aucs = {k: m["roc_auc"] for k, m in trained.metrics.items()}
    print(f"\nholdout ROC-AUC {aucs}; truth ceiling {ceiling:.3f}; churn rate {y.mean():.2f}")
    for name, auc in aucs.items():
        assert auc >= AUC_FLOOR, name
        assert auc <= ceiling + 0.01, name  # nobody beats the true dropout process
    assert ceiling > 0.85


def test_metrics_are_complete_and_sane(trained):
    for m in trained.metrics.values():
        assert 0 < m["brier"] < 0.25 and m["pr_auc"] > m["base_rate"]
        assert len(m["calibration"]["prob_pred"]) == len(m["calibration"]["prob_true"]) > 3
        lift = m["lift"]
        assert len(lift) == 10 and lift[-1]["cumulative_gain"] == pytest.approx(1.0)
        assert lift[0]["lift"] > 1.2 and lift[0]["rate"] >= lift[-1]["rate"]
        assert m["roc_curve"]["fpr"][0] == 0 and m["roc_curve"]["tpr"][-1] == 1


def test_champion_rule():
    base = {"roc_auc": 0.80, "brier": 0.15}
    win = {"logistic": base, "lightgbm": {"roc_auc": 0.815, "brier": 0.14}}
    small_gain = {"logistic": base, "lightgbm": {"roc_auc": 0.805, "brier": 0.14}}
    assert choose_champion(win, "lightgbm")[0] == "lightgbm"
    assert choose_champion(small_gain, "lightgbm")[0] == "logistic"
    name, why = choose_champion({"logistic": base, "lightgbm": {"roc_auc": 0.85, "brier": 0.16}}, "lightgbm")
    assert name == "logistic" and "Brier" in why


def test_final_bundle_is_champion_refit_on_latest_window(trained, synthetic):
    b = trained.bundle
    assert b.kind == trained.champion
    assert pd.Timestamp(b.feature_cutoff) == synthetic.cutoff - pd.Timedelta(days=90)
    assert pd.Timestamp(trained.train_window["feature_cutoff"]) == synthetic.cutoff - pd.Timedelta(days=180)
    assert b.metrics["champion_reason"] == trained.reason


def test_bundle_roundtrip_scoring_and_bands(trained, synthetic):
    X = build_features(synthetic.transactions, synthetic.cutoff, synthetic.customers)
    for bundle in (trained.bundle, *trained.holdout_models.values()):
        again = ChurnModelBundle.from_bytes(bundle.to_bytes())
        np.testing.assert_allclose(again.predict_proba(X), bundle.predict_proba(X))
        scores = score_customers(again, X)
        assert scores["churn_probability"].between(0, 1).all()
        assert set(scores["risk_band"]) <= {"low", "medium", "high"}
    assert list(RiskBands(0.3, 0.6).assign([0.1, 0.3, 0.59, 0.6])) == ["low", "medium", "medium", "high"]
    with pytest.raises(ChurnError):
        RiskBands(0.7, 0.6)
    with pytest.raises(ChurnError, match="missing"):
        trained.bundle.predict_proba(X.drop(columns="gap_ratio"))


def test_logistic_decision_is_the_sklearn_pipeline_bit_for_bit(trained, synthetic):
    logistic = next(b for b in (trained.bundle, *trained.holdout_models.values()) if b.kind == "logistic")
    X = build_features(synthetic.transactions, synthetic.cutoff, synthetic.customers)
    M = logistic.matrix(X).to_numpy()
    extreme = np.vstack([M[:3] * 1e6, -M[:3], np.zeros((1, M.shape[1])), M[:1] + 1e-300])
    for rows in (M, M[:1], extreme):
        expected = logistic.estimator.decision_function(rows)
        got = logistic_decision(logistic.estimator, rows)
        assert got.shape == expected.shape and np.array_equal(got, expected)
    assert np.array_equal(logistic.decision_function(X), logistic.estimator.decision_function(M))
    assert logistic_decision(logistic.estimator, M[:0]).shape == (0,)  # sklearn refuses no rows; no rows, no scores


def test_hist_gb_challenger_and_evaluate_errors(synthetic):
    cfg = ChurnConfig(challenger="hist_gb", n_estimators=60)
    small = synthetic.transactions[synthetic.transactions["customer_id"].isin([f"C{i}" for i in range(1500)])]
    result = train_churn(small, None, synthetic.cutoff, cfg)
    assert set(result.metrics) == {"logistic", "hist_gb"}
    assert result.metrics["hist_gb"]["roc_auc"] > AUC_FLOOR
    with pytest.raises(ChurnError, match="one class"):
        evaluate(np.ones(10), np.linspace(0, 1, 10))
