"""Plotly figure builders for the Lookalikes pages (pure: plain data in, figure JSON dicts out)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

TEMPLATE = "plotly_white"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939")


def _json(fig: go.Figure) -> dict[str, Any]:
    fig.update_layout(template=TEMPLATE)
    return json.loads(fig.to_json())


def taste_map_figure(x: Sequence[float], y: Sequence[float], customer_ids: Sequence[str], colour: Sequence[Any],
                     colour_label: str, continuous: bool, hover: Sequence[str], method: str,
                     highlight: Sequence[int] = ()) -> dict[str, Any]:
    """Customers placed by taste (2-D projection of their vectors); click a dot to see its lookalikes."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    fig = go.Figure()
    ids = np.asarray(customer_ids, dtype=object)
    hover = np.asarray(hover, dtype=object)
    if continuous:
        values = np.asarray([np.nan if v is None else v for v in colour], dtype=float)
        fig.add_trace(go.Scattergl(
            x=x, y=y, mode="markers", customdata=ids, text=hover, hovertemplate="%{text}<extra></extra>",
            marker={"size": 5, "color": values, "colorscale": "Viridis", "showscale": True, "opacity": 0.8,
                    "colorbar": {"title": {"text": colour_label}}}, name=colour_label))
    else:
        labels = np.asarray(["(not scored)" if v is None else str(v) for v in colour], dtype=object)
        for i, label in enumerate(sorted(set(labels.tolist()), key=lambda v: (v == "(not scored)", v))):
            sel = labels == label
            fig.add_trace(go.Scattergl(
                x=x[sel], y=y[sel], mode="markers", name=label, customdata=ids[sel], text=hover[sel],
                hovertemplate="%{text}<extra></extra>",
                marker={"size": 5, "opacity": 0.8, "color": "#cbd5e1" if label == "(not scored)"
                        else PALETTE[i % len(PALETTE)]}))
    if len(highlight):
        h = np.asarray(highlight, dtype=int)
        fig.add_trace(go.Scatter(x=x[h], y=y[h], mode="markers", name="selected and lookalikes",
                                 customdata=ids[h], text=hover[h], hovertemplate="%{text}<extra></extra>",
                                 marker={"size": 11, "color": "rgba(0,0,0,0)", "line": {"width": 2, "color": "#111"}}))
    fig.update_layout(
        title=f"Customers by taste, coloured by {colour_label} ({'t-SNE' if method == 'tsne' else 'PCA'})",
        xaxis={"visible": False}, yaxis={"visible": False}, height=520, legend={"itemsizing": "constant"},
        margin={"l": 10, "r": 10, "t": 50, "b": 10}, hovermode="closest")
    return _json(fig)


def mix_figure(row_labels: Sequence[str], categories: Sequence[str], mixes: np.ndarray,
               similarities: Sequence[float | None]) -> dict[str, Any]:
    """Category mix of the seed (first row) beside each lookalike's: share of purchase lines per category."""
    mixes = np.asarray(mixes, dtype=float)
    text = [[f"{v:.0%}" if v >= 0.05 else "" for v in row] for row in mixes]
    labels = [f"{label} ({s:.2f})" if s is not None else f"{label}" for label, s in zip(row_labels, similarities,
                                                                                        strict=True)]
    fig = go.Figure(go.Heatmap(
        z=mixes, x=list(categories), y=labels, colorscale="Blues", zmin=0, zmax=max(0.5, float(mixes.max(initial=0))),
        text=text, texttemplate="%{text}", hovertemplate="%{y}<br>%{x}: %{z:.0%} of purchase lines<extra></extra>",
        colorbar={"title": {"text": "share"}, "tickformat": ".0%"}))
    fig.update_layout(title="What they buy: the seed (top) and each lookalike (similarity in brackets)",
                      yaxis={"autorange": "reversed"}, height=140 + 26 * len(labels),
                      margin={"l": 160, "r": 20, "t": 50, "b": 60})
    return _json(fig)


def loss_figure(curve: Sequence[dict[str, float]]) -> dict[str, Any]:
    epochs = [c["epoch"] for c in curve]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=epochs, y=[c["loss"] for c in curve], mode="lines+markers", name="total"))
    fig.add_trace(go.Scatter(x=epochs, y=[c["customer_loss"] for c in curve], mode="lines", name="customer → products"))
    fig.add_trace(go.Scatter(x=epochs, y=[c["basket_loss"] for c in curve], mode="lines", name="product → basket"))
    fig.update_layout(title="Training loss per epoch (lower = better fit)",
                      xaxis_title="epoch", yaxis_title="negative-sampling loss", height=320,
                      legend={"orientation": "h", "y": -0.3})
    return _json(fig)


def taste_bar_figure(categories: Sequence[str], mix: Sequence[float]) -> dict[str, Any]:
    order = np.argsort(-np.asarray(mix, dtype=float), kind="stable")
    fig = go.Figure(go.Bar(x=[float(mix[i]) for i in order], y=[categories[i] for i in order], orientation="h",
                           hovertemplate="%{y}: %{x:.0%} of purchase lines<extra></extra>", marker_color="#2563eb"))
    fig.update_layout(title="Taste (share of purchase lines)", xaxis={"tickformat": ".0%"},
                      yaxis={"autorange": "reversed"}, height=300, margin={"l": 120, "r": 20, "t": 40, "b": 30})
    return _json(fig)
