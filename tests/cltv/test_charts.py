"""Figure builders return plain plotly JSON dicts (plotly_white) with the expected traces."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cltv import charts
from cltv import pipeline as P

from .conftest import CALIBRATION_END, OBSERVATION_END


@pytest.fixture(scope="module")
def training(cdnow_sample: pd.DataFrame) -> P.CLTVTraining:
    config = P.CLTVConfig(models=("bgnbd", "mbgnbd"), n_draws=50)
    return P.train_cltv(cdnow_sample, observation_end=OBSERVATION_END, calibration_end=CALIBRATION_END, config=config)


def _check(fig: dict, n_traces: int) -> dict:
    assert isinstance(fig, dict) and len(fig["data"]) == n_traces
    assert fig["layout"]["template"]["layout"]["paper_bgcolor"] == "white"  # plotly_white
    json.dumps(fig)  # plain JSON, no numpy left
    return fig


def test_validation_figures(training: P.CLTVTraining) -> None:
    fit = training.comparison.fits[training.bundle.model]
    cvh = _check(charts.calibration_vs_holdout_figure(P.calibration_vs_holdout(fit, training.cal_holdout)), 2)
    assert cvh["data"][0]["x"][-1] == "7+" and cvh["data"][0]["name"] == "Actual"
    pt = P.period_transactions(fit, training.cal_holdout["frequency_cal"], training.cal_holdout["T_cal"])
    fig = _check(charts.period_transactions_figure(pt), 2)
    assert fig["data"][0]["type"] == "bar" and fig["data"][0]["y"][0] == 1411
    mats = P.frequency_recency_matrices(training.bundle, max_frequency=15, max_T=78.0)
    heat = _check(charts.expected_purchases_heatmap(mats), 1)
    assert heat["data"][0]["type"] == "heatmap" and len(heat["data"][0]["z"]) == 79
    alive = _check(charts.p_alive_heatmap(mats), 1)
    assert alive["data"][0]["zmax"] == 1.0


def test_value_figures(training: P.CLTVTraining) -> None:
    scores, cohorts = P.score_with_cohorts(training.bundle, training.summary)
    dist = _check(charts.clv_distribution_figure(scores["clv"], currency="$"), 1)
    shapes = dist["layout"]["shapes"]
    assert len(shapes) == 3
    p10, p50, p90 = np.quantile(scores["clv"], [0.1, 0.5, 0.9])
    assert [s["x0"] for s in shapes] == pytest.approx([p10, p50, p90])
    band = _check(charts.cohort_band_figure(cohorts), 3)
    assert band["data"][1]["fill"] == "tonexty" and band["data"][2]["x"][0] == "1997-01-01"
    comparison = _check(charts.model_comparison_figure(training.comparison.table), 2)
    assert comparison["data"][0]["type"] == "bar" and comparison["data"][1]["type"] == "table"
    assert any("✓" in label for label in comparison["data"][1]["cells"]["values"][0])
    empty = _check(charts.clv_distribution_figure(np.array([])), 1)
    assert empty["data"][0]["y"] == [0] * 60
