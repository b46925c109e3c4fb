"""Plotly figure builders: plain JSON dicts, plotly_white, the right traces and numbers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import plotly.io as pio
import pytest

from segmentation import charts
from segmentation.pipeline import (
    GONE_LABEL,
    NEW_LABEL,
    cluster_rfm,
    group_stats,
    migration_matrix,
    pareto_curve,
    rf_grid,
    rfm_table,
    score_rfm,
)
from segmentation.segment_map import SEGMENT_NAMES
from tests.segmentation import planted_transactions


@pytest.fixture(scope="module")
def data():
    transactions, _ = planted_transactions(600, seed=1)
    rfm = rfm_table(transactions)
    scored = score_rfm(rfm)
    clustering = cluster_rfm(rfm, k_values=range(2, 7))
    earlier = score_rfm(rfm_table(transactions, cutoff=rfm.attrs["cutoff"] - pd.Timedelta(days=60)))
    before = pd.Series(earlier["segment"].to_numpy(), index=earlier["customer_id"])
    after = pd.Series(scored["segment"].to_numpy(), index=scored["customer_id"])
    return {"rfm": rfm, "scored": scored, "clustering": clustering, "migration": migration_matrix(before, after)}


def _check_figure(fig: dict) -> None:
    assert set(fig) >= {"data", "layout"}
    text = json.dumps(fig)  # plain JSON, round-trips
    assert json.loads(text) == fig
    assert '"bdata"' not in text  # plain lists, not base64 typed arrays
    white = pio.templates["plotly_white"].layout.plot_bgcolor
    assert fig["layout"]["template"]["layout"]["plot_bgcolor"] == white == "white"
    assert fig["layout"]["title"]["text"]


def test_segment_overview_bars(data):
    scored = data["scored"]
    stats = group_stats(scored, scored["segment"])
    fig = charts.segment_overview_figure(stats)
    _check_figure(fig)
    customers, revenue = fig["data"]
    assert customers["type"] == revenue["type"] == "bar"
    assert customers["orientation"] == "h"
    assert customers["y"] == list(SEGMENT_NAMES)
    assert sum(customers["x"]) == pytest.approx(100.0)
    assert sum(revenue["x"]) == pytest.approx(100.0)
    assert sum(customers["customdata"]) == len(scored)
    assert fig["layout"]["barmode"] == "group"


def test_overview_works_for_clusters_too(data):
    clustering = data["clustering"]
    stats = group_stats(data["rfm"], pd.Categorical.from_codes(clustering.labels, list(clustering.names)))
    fig = charts.segment_overview_figure(stats, title="Clusters")
    assert fig["data"][0]["y"] == list(clustering.names)


def test_pareto_figure(data):
    curve = pareto_curve(data["rfm"]["monetary"])
    fig = charts.pareto_figure(curve)
    _check_figure(fig)
    diagonal, line, marker = fig["data"]
    assert diagonal["x"] == [0.0, 100.0]
    assert line["x"][0] == 0.0 and line["y"][0] == 0.0
    assert line["x"][-1] == pytest.approx(100.0) and line["y"][-1] == pytest.approx(100.0)
    assert marker["x"] == [20.0]
    assert "Top 20%" in marker["text"][0]


def test_cluster_radar(data):
    clustering = data["clustering"]
    fig = charts.cluster_radar_figure(clustering.profiles)
    _check_figure(fig)
    assert len(fig["data"]) == clustering.k
    for trace, name in zip(fig["data"], clustering.names, strict=True):
        assert trace["type"] == "scatterpolar"
        assert trace["name"].startswith(name)
        assert trace["r"][0] == trace["r"][-1]  # closed polygon
        assert all(0 <= v <= 100 for v in trace["r"])
        assert trace["theta"][0] == "Recency (inverted: higher = more recent)"
    assert "bigger is better" in fig["layout"]["title"]["text"]
    top = fig["data"][0]["r"]
    bottom = fig["data"][-1]["r"]
    assert top[2] > bottom[2]  # cluster 0 has the highest value


def test_k_search_diagnostics(data):
    search = data["clustering"].search
    fig = charts.k_search_figure(search)
    _check_figure(fig)
    silhouette, inertia, chosen = fig["data"]
    assert silhouette["x"] == list(search.k_values)
    assert silhouette["y"] == pytest.approx(list(search.silhouette))
    assert inertia["y"] == pytest.approx(list(search.inertia))
    assert inertia["yaxis"] == "y2"
    assert chosen["x"] == [search.chosen_k]
    assert chosen["name"] == f"Chosen k = {search.chosen_k}"
    assert any(shape.get("x0") == search.chosen_k for shape in fig["layout"]["shapes"])
    assert fig["layout"]["title"]["subtitle"]["text"] == search.explanation


def test_rf_heatmap(data):
    scored = data["scored"]
    grid = rf_grid(scored)
    fig = charts.rf_heatmap_figure(grid)
    _check_figure(fig)
    (heat,) = fig["data"]
    assert heat["type"] == "heatmap"
    assert heat["y"] == ["R5", "R4", "R3", "R2", "R1"]
    assert heat["x"] == ["F1", "F2", "F3", "F4", "F5"]
    z = np.array(heat["z"])
    assert z.shape == (5, 5) and z.sum() == len(scored)
    assert np.array(heat["customdata"]).sum() == pytest.approx(scored["monetary"].sum())
    top_left = ((scored["r_score"] == 5) & (scored["f_score"] == 1)).sum()
    assert z[0, 0] == top_left
    assert "revenue" in heat["hovertemplate"]


def test_migration_heatmap_and_sankey(data):
    matrix = data["migration"]
    heat = charts.migration_heatmap_figure(matrix)
    _check_figure(heat)
    assert np.array(heat["data"][0]["z"]).sum() == matrix.to_numpy().sum()
    assert heat["data"][0]["y"][-1] == NEW_LABEL and heat["data"][0]["x"][-1] == GONE_LABEL
    shares = np.array(heat["data"][0]["customdata"])
    row_has_customers = matrix.to_numpy().sum(axis=1) > 0
    assert shares[row_has_customers].sum(axis=1) == pytest.approx(100.0)

    sankey = charts.migration_sankey_figure(matrix)
    _check_figure(sankey)
    (trace,) = sankey["data"]
    assert trace["type"] == "sankey"
    assert sum(trace["link"]["value"]) == matrix.to_numpy().sum()
    n_rows = len(matrix.index)
    assert all(s < n_rows <= t for s, t in zip(trace["link"]["source"], trace["link"]["target"], strict=True))
    assert len(trace["node"]["label"]) == n_rows + len(matrix.columns)
