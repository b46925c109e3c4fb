"""CLTV charts a marketer can read: titles clear of the toolbar, labels that do not overprint, human tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cltv import charts


def test_long_titles_wrap_left_aligned():
    title = charts.wrapped_title("Model comparison on the holdout period (RMSE, lower is better)")
    first, _, rest = title["text"].partition("<br>")
    assert len(first) <= charts.TITLE_LINE and "lower is better" in rest
    assert title["x"] == 0.0 and title["xanchor"] == "left"
    assert charts.wrapped_title("Short")["text"] == "Short"


def test_percentile_labels_sit_on_three_heights_with_the_currency():
    values = np.r_[np.full(50, 10.0), np.full(50, 11.0), np.linspace(12, 500, 100)]
    fig = charts.clv_distribution_figure(values, currency="£")
    labels = [a for a in fig["layout"]["annotations"] if a["text"].startswith(("P10", "P50", "P90"))]
    assert [a["text"].split()[0] for a in labels] == ["P10", "P50", "P90"]
    assert len({a["y"] for a in labels}) == 3 and all("£" in a["text"] for a in labels)


def test_comparison_table_has_human_headers_and_no_scientific_notation():
    table = pd.DataFrame(
        {
            "model": ["bgnbd", "pareto_nbd"], "label": ["BG/NBD", "Pareto/NBD"], "penalizer": [0.0, 0.001],
            "log_likelihood": [-29650.123, -29700.5], "bic": [59321.7, 59400.2], "mae": [0.98, 0.99],
            "rmse": [1.48, 1.49], "aggregate_error": [-0.041, 0.02], "chosen": [True, False], "error": ["", ""],
        }
    )  # fmt: skip
    fig = charts.model_comparison_figure(table)
    [tbl] = [t for t in fig["data"] if t["type"] == "table"]
    headers = tbl["header"]["values"]
    assert "<b>Log-lik.</b>" in headers and "<b>Total error</b>" in headers and not any("_" in h for h in headers)
    cells = [str(v) for column in tbl["cells"]["values"] for v in column]
    assert "-29,650" in cells and not any("e+" in c or "e-0" in c for c in cells)


def test_partial_last_cohort_is_marked():
    cohorts = pd.DataFrame(
        {
            "cohort": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]), "customers": [10, 12, 3],
            "expected_clv": [1000.0, 1100.0, 200.0], "p10": [800.0, 900.0, 100.0], "p90": [1200.0, 1300.0, 300.0],
        }
    )  # fmt: skip
    marked = charts.cohort_band_figure(cohorts, currency="£", partial_last=True)
    assert any(a["text"] == "partial month" for a in marked["layout"].get("annotations", []))
    assert "annotations" not in charts.cohort_band_figure(cohorts)["layout"]
