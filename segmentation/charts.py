"""Plotly figure builders for the Segmentation pages (pure: no Django, no I/O).

Every builder takes the output of a :mod:`segmentation.pipeline` function and returns the
figure as a plain JSON dict (``json.loads(fig.to_json())``, template ``plotly_white``) for
plotly.js (``Plotly.newPlot(el, fig.data, fig.layout)``). Data are passed to Plotly as Python
lists, so the JSON holds plain numbers rather than base64 typed arrays.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from segmentation.pipeline import GONE_LABEL, NEW_LABEL, KSearchResult, pareto_share_at
from segmentation.segment_map import SEGMENTS

__all__ = [
    "RADAR_AXES",
    "cluster_radar_figure",
    "k_search_figure",
    "migration_heatmap_figure",
    "migration_sankey_figure",
    "pareto_figure",
    "rf_heatmap_figure",
    "segment_overview_figure",
]

TEMPLATE = "plotly_white"
CUSTOMER_COLOR = "#4c78a8"
REVENUE_COLOR = "#f58518"
RADAR_AXES: tuple[str, str, str] = (
    "Recency (inverted: higher = more recent)",
    "Frequency (higher = more purchases)",
    "Monetary (higher = more revenue)",
)
_SEGMENT_COLORS = {s.name: s.color for s in SEGMENTS}
_QUALITATIVE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d")


def _to_json(fig: go.Figure) -> dict[str, Any]:
    return json.loads(fig.to_json())


def _floats(values: Any) -> list[float | None]:
    """Plain floats for JSON; NaN becomes None (a gap in Plotly)."""
    arr = np.asarray(values, dtype=np.float64)
    return [None if np.isnan(v) else float(v) for v in arr]


def _labels(index: pd.Index) -> list[str]:
    return [str(v) for v in index]


def segment_overview_figure(stats: pd.DataFrame, *, title: str = "Customers and revenue by segment") -> dict[str, Any]:
    """Horizontal grouped bars: share of customers vs share of revenue per segment (or cluster).

    Input: :func:`segmentation.pipeline.group_stats` (index = group names, in display order —
    the first group is drawn at the top). The hover shows the absolute customers and revenue.
    A segment with a much longer revenue bar than customer bar is worth more than its size.
    """
    names = _labels(stats.index)
    customers = stats["customers"].to_numpy(dtype=np.int64).tolist()
    revenue = _floats(stats["revenue"])
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            name="Share of customers",
            y=names,
            x=_floats(stats["customer_share"] * 100),
            orientation="h",
            marker_color=CUSTOMER_COLOR,
            customdata=customers,
            hovertemplate="%{y}<br>%{x:.1f}% of customers (%{customdata:,} customers)<extra></extra>",
        )
    )
    fig.add_trace(
        go.Bar(
            name="Share of revenue",
            y=names,
            x=_floats(stats["revenue_share"] * 100),
            orientation="h",
            marker_color=REVENUE_COLOR,
            customdata=revenue,
            hovertemplate="%{y}<br>%{x:.1f}% of revenue (%{customdata:,.0f})<extra></extra>",
        )
    )
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        barmode="group",
        xaxis_title="Share (%)",
        yaxis={"autorange": "reversed", "title": None},
        legend={"orientation": "h", "y": -0.15},
        margin={"l": 140},
    )
    return _to_json(fig)


def pareto_figure(curve: pd.DataFrame, *, highlight: float = 0.2) -> dict[str, Any]:
    """The revenue Pareto curve with the equal-share diagonal and the top-``highlight`` point marked.

    Input: :func:`segmentation.pipeline.pareto_curve`. Axes in percent.
    """
    x = _floats(curve["customer_share"] * 100)
    y = _floats(curve["revenue_share"] * 100)
    share = pareto_share_at(curve, highlight)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0.0, 100.0],
            y=[0.0, 100.0],
            mode="lines",
            name="Equal share",
            line={"dash": "dot", "color": "#999999"},
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=y,
            mode="lines",
            name="Cumulative revenue",
            line={"color": REVENUE_COLOR, "width": 3},
            hovertemplate="Top %{x:.1f}% of customers<br>bring %{y:.1f}% of revenue<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[highlight * 100],
            y=[share * 100],
            mode="markers+text",
            name=f"Top {highlight:.0%}",
            marker={"size": 10, "color": CUSTOMER_COLOR},
            text=[f"Top {highlight:.0%} → {share:.0%} of revenue"],
            textposition="bottom right",
            hoverinfo="skip",
        )
    )
    fig.update_layout(
        template=TEMPLATE,
        title="Revenue concentration (Pareto curve)",
        xaxis={"title": "Customers, sorted by revenue (cumulative %)", "range": [0, 100]},
        yaxis={"title": "Revenue (cumulative %)", "range": [0, 105]},
        showlegend=False,
    )
    return _to_json(fig)


def cluster_radar_figure(profiles: pd.DataFrame) -> dict[str, Any]:
    """One Scatterpolar trace per cluster on normalised R, F, M (0–100, bigger is better).

    Input: :func:`segmentation.pipeline.cluster_profiles` (or ``ClusteringResult.profiles``).
    Each axis is the percentile of the cluster's median among all customers; recency is
    inverted (100 = most recent), as the axis label says. Trace names are the cluster names.
    """
    fig = go.Figure()
    theta = [*RADAR_AXES, RADAR_AXES[0]]
    for i, (_, row) in enumerate(profiles.iterrows()):  # one trace per cluster (k ≤ 10), not per customer
        r = [float(row["r_position"]) * 100, float(row["f_position"]) * 100, float(row["m_position"]) * 100]
        fig.add_trace(
            go.Scatterpolar(
                r=[*r, r[0]],
                theta=theta,
                fill="toself",
                name=f"{row['name']} ({int(row['customers']):,})",
                line={"color": _QUALITATIVE[i % len(_QUALITATIVE)]},
                opacity=0.7,
                hovertemplate="%{theta}: %{r:.0f}<extra>%{fullData.name}</extra>",
            )
        )
    fig.update_layout(
        template=TEMPLATE,
        title="Cluster profiles (percentile among all customers; bigger is better on every axis)",
        polar={"radialaxis": {"range": [0, 100], "ticksuffix": "", "title": {"text": "percentile"}}},
        legend={"orientation": "h", "y": -0.1},
    )
    return _to_json(fig)


def k_search_figure(search: KSearchResult) -> dict[str, Any]:
    """Silhouette (left axis) and inertia (right axis, the elbow) against k, chosen k marked.

    Input: :class:`segmentation.pipeline.KSearchResult`. The explanation of the choice is the
    figure's subtitle.
    """
    ks = list(search.k_values)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Scatter(
            x=ks,
            y=_floats(search.silhouette),
            mode="lines+markers",
            name=f"Silhouette (sample of {search.sample_size:,})",
            line={"color": CUSTOMER_COLOR},
        ),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(
            x=ks,
            y=_floats(search.inertia),
            mode="lines+markers",
            name="Inertia (all customers)",
            line={"color": REVENUE_COLOR, "dash": "dash"},
        ),
        secondary_y=True,
    )
    chosen_sil = search.silhouette[ks.index(search.chosen_k)]
    fig.add_trace(
        go.Scatter(
            x=[search.chosen_k],
            y=_floats([chosen_sil]),
            mode="markers",
            name=f"Chosen k = {search.chosen_k}",
            marker={"symbol": "star", "size": 16, "color": "#e45756"},
        ),
        secondary_y=False,
    )
    fig.add_vline(x=search.chosen_k, line={"color": "#e45756", "dash": "dot"})
    fig.update_layout(
        template=TEMPLATE,
        title={"text": "Choosing the number of clusters", "subtitle": {"text": search.explanation}},
        xaxis={"title": "k (number of clusters)", "dtick": 1},
        legend={"orientation": "h", "y": -0.2},
    )
    fig.update_yaxes(title_text="Silhouette (higher is better)", secondary_y=False)
    fig.update_yaxes(title_text="Inertia (look for the elbow)", secondary_y=True)
    return _to_json(fig)


def rf_heatmap_figure(grid: pd.DataFrame) -> dict[str, Any]:
    """5 × 5 heat map of customers by R score (rows, 5 at the top) and F score (columns).

    Input: :func:`segmentation.pipeline.rf_grid`. Colour and cell text are customer counts;
    the hover adds the cell's revenue.
    """
    r_levels = [5, 4, 3, 2, 1]
    f_levels = [1, 2, 3, 4, 5]
    counts = grid.pivot(index="r_score", columns="f_score", values="customers").reindex(
        index=r_levels, columns=f_levels, fill_value=0
    )
    revenue = grid.pivot(index="r_score", columns="f_score", values="revenue").reindex(
        index=r_levels, columns=f_levels, fill_value=0.0
    )
    fig = go.Figure(
        go.Heatmap(
            z=counts.to_numpy(dtype=np.int64).tolist(),
            x=[f"F{f}" for f in f_levels],
            y=[f"R{r}" for r in r_levels],
            customdata=revenue.to_numpy(dtype=np.float64).tolist(),
            colorscale="Blues",
            texttemplate="%{z:,}",
            colorbar={"title": {"text": "Customers"}},
            hovertemplate="%{y} × %{x}<br>%{z:,} customers<br>revenue %{customdata:,.0f}<extra></extra>",
        )
    )
    fig.update_layout(
        template=TEMPLATE,
        title="Customers by recency and frequency score",
        xaxis_title="Frequency score (5 = most purchases)",
        # A categorical y axis runs bottom-up; reversed, the first row (R5) sits at the top.
        yaxis={"title": "Recency score (5 = most recent)", "autorange": "reversed"},
    )
    return _to_json(fig)


def migration_heatmap_figure(matrix: pd.DataFrame) -> dict[str, Any]:
    """Heat map of a :func:`segmentation.pipeline.migration_matrix`: earlier run down the side,
    later run across; cell text = customers; hover adds the share of the earlier group."""
    counts = matrix.to_numpy(dtype=np.int64)
    row_totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, row_totals, out=np.zeros(counts.shape, dtype=np.float64), where=row_totals > 0)
    fig = go.Figure(
        go.Heatmap(
            z=counts.tolist(),
            x=_labels(matrix.columns),
            y=_labels(matrix.index),
            customdata=(share * 100).tolist(),
            colorscale="Purples",
            texttemplate="%{z:,}",
            colorbar={"title": {"text": "Customers"}},
            hovertemplate="%{y} → %{x}<br>%{z:,} customers (%{customdata:.1f}% of %{y})<extra></extra>",
        )
    )
    fig.update_layout(
        template=TEMPLATE,
        # Column labels sit on top: leave them room below the title.
        title={"text": f"Segment migration ({int(counts.sum()):,} customers)", "y": 0.98},
        margin={"t": 150},
        xaxis={"title": "Later run", "side": "top"},
        yaxis={"title": "Earlier run", "autorange": "reversed"},
    )
    return _to_json(fig)


def migration_sankey_figure(matrix: pd.DataFrame) -> dict[str, Any]:
    """Sankey of a migration matrix: earlier groups on the left, later groups on the right, one
    link per non-empty cell. The (new)/(gone) pseudo-groups are drawn in grey."""
    counts = matrix.to_numpy(dtype=np.int64)
    rows, cols = _labels(matrix.index), _labels(matrix.columns)
    src, dst = np.nonzero(counts)

    def color(label: str) -> str:
        if label in (NEW_LABEL, GONE_LABEL):
            return "#bbbbbb"
        return _SEGMENT_COLORS.get(label, CUSTOMER_COLOR)

    fig = go.Figure(
        go.Sankey(
            arrangement="snap",
            node={
                "label": [f"{r} (earlier)" for r in rows] + [f"{c} (later)" for c in cols],
                "color": [color(r) for r in rows] + [color(c) for c in cols],
                "pad": 12,
                "thickness": 14,
            },
            link={
                "source": src.tolist(),
                "target": (dst + len(rows)).tolist(),
                "value": counts[src, dst].tolist(),
                "hovertemplate": "%{source.label} → %{target.label}<br>%{value:,} customers<extra></extra>",
            },
        )
    )
    fig.update_layout(template=TEMPLATE, title=f"Segment migration ({int(counts.sum()):,} customers)")
    return _to_json(fig)
