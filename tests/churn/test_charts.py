"""Churn charts: plain JSON figure dicts (plotly_white) built from the pipeline's plain data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from churn import charts
from churn.explain import beeswarm_data, global_importance, shap_explain
from churn.pipeline import RiskBands
from rfm_portal.customers.features import build_features


@pytest.fixture(scope="module")
def expl(synthetic, trained):
    X = build_features(synthetic.transactions, synthetic.cutoff, synthetic.customers).iloc[:300]
    return shap_explain(trained.holdout_models["logistic"], X)


def _ok(fig: dict) -> dict:
    assert isinstance(fig, dict) and fig["data"]
    assert fig["layout"]["template"]["layout"]  # plotly_white is embedded
    json.dumps(fig)  # JSON-able as is
    return fig


def test_model_comparison_charts(trained):
    m = trained.metrics
    roc = _ok(charts.roc_figure(m))
    assert len(roc["data"]) == len(m) + 1 and "AUC" in roc["data"][0]["name"]
    _ok(charts.pr_figure(m))
    cal = _ok(charts.calibration_figure(m))
    assert len(cal["data"][0]["x"]) == len(m["logistic"]["calibration"]["prob_pred"])
    lift = _ok(charts.lift_gain_figure(m))
    gain = lift["data"][0]
    assert gain["y"][0] == 0 and gain["y"][-1] == pytest.approx(1.0)


def test_importance_and_beeswarm(expl):
    imp = _ok(charts.importance_figure(global_importance(expl), max_features=8))
    assert imp["data"][0]["type"] == "bar" and len(imp["data"][0]["y"]) == 8
    bee = _ok(charts.beeswarm_figure(beeswarm_data(expl, max_points=100, max_features=5)))
    assert len(bee["data"][0]["x"]) == 500
    assert bee["layout"]["yaxis"]["ticktext"][-1] == global_importance(expl)[0]["label"]


def test_waterfall_and_decision_plot_end_at_model_output(expl):
    row = expl.row(0)
    wf = _ok(charts.waterfall_figure(row, max_features=5))["data"][0]
    assert wf["type"] == "waterfall" and wf["measure"][0] == "absolute" and wf["measure"][-1] == "total"
    x = np.asarray(wf["x"], dtype=float)
    assert x[0] + x[1:-1].sum() == pytest.approx(row["output"]) and x[-1] == pytest.approx(row["output"])
    dec = _ok(charts.decision_figure([expl.row(i) for i in range(4)], max_features=6))
    for i, trace in enumerate(dec["data"]):
        assert trace["x"][0] == pytest.approx(row["base_value"])
        assert trace["x"][-1] == pytest.approx(expl.row(i)["output"])


def test_risk_distribution(trained):
    p = trained.holdout_proba["logistic"]
    fig = _ok(charts.risk_distribution_figure(p, RiskBands(0.3, 0.6)))
    assert [t["name"].split()[0] for t in fig["data"]] == ["low", "medium", "high"]
    assert sum(sum(t["y"]) for t in fig["data"]) == len(p)  # binned: bin counts add up to the population
    assert all(t["type"] == "bar" and len(t["y"]) == 50 for t in fig["data"])
