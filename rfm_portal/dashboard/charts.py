"""Plotly figure builders: plain data in, figure JSON (dict) out, rendered by plotly.js."""

from __future__ import annotations

import json
from collections.abc import Sequence

import plotly.graph_objects as go

PORTAL_COLORS = ["#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#4b5563"]


def _layout(fig: go.Figure, title: str, height: int = 360) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0, "font": {"size": 15}},
        height=height,
        margin={"l": 50, "r": 20, "t": 45, "b": 40},
        template="plotly_white",
        colorway=PORTAL_COLORS,
        legend={"orientation": "h", "y": -0.18},
        hovermode="x unified",
    )
    return fig


def as_json(fig: go.Figure) -> dict:
    """Figure as JSON-safe dict (numpy and datetimes converted by plotly's encoder)."""
    return json.loads(fig.to_json())


def monthly_revenue_figure(rows: Sequence[dict]) -> dict:
    months = [r["month"].strftime("%Y-%m") for r in rows]
    fig = go.Figure()
    fig.add_bar(x=months, y=[float(r["revenue"]) for r in rows], name="Net revenue", marker_color=PORTAL_COLORS[0])
    fig.add_bar(x=months, y=[float(r["returns"]) for r in rows], name="Returns", marker_color=PORTAL_COLORS[2])
    fig.add_scatter(
        x=months, y=[r["customers"] for r in rows], name="Buying customers", yaxis="y2",
        mode="lines+markers", line={"color": PORTAL_COLORS[1]},
    )
    fig.update_layout(
        barmode="relative",
        yaxis={"title": "Revenue"},
        yaxis2={"title": "Customers", "overlaying": "y", "side": "right", "showgrid": False, "rangemode": "tozero"},
    )
    return as_json(_layout(fig, "Revenue per month"))


def customer_timeline_figure(invoices: Sequence[dict]) -> dict:
    """Each invoice as a point in time sized by value; returns in red below zero."""
    ordered = sorted(invoices, key=lambda r: r["invoiced_at"])
    fig = go.Figure()
    for is_return, name, color in ((False, "Purchase", PORTAL_COLORS[0]), (True, "Return", PORTAL_COLORS[2])):
        rows = [r for r in ordered if r["is_return"] == is_return]
        if not rows:
            continue
        fig.add_bar(
            x=[r["invoiced_at"].isoformat() for r in rows],
            y=[float(r["amount"]) for r in rows],
            name=name,
            marker_color=color,
            customdata=[[r["invoice"], r["lines"]] for r in rows],
            hovertemplate="Invoice %{customdata[0]}<br>%{y:,.2f} (%{customdata[1]} lines)<extra></extra>",
        )
    cumulative, running = [], 0.0
    for r in ordered:
        running += float(r["amount"])
        cumulative.append(running)
    fig.add_scatter(
        x=[r["invoiced_at"].isoformat() for r in ordered], y=cumulative, name="Cumulative net revenue",
        yaxis="y2", mode="lines", line={"color": PORTAL_COLORS[1], "shape": "hv"},
    )
    fig.update_layout(
        yaxis={"title": "Invoice value", "rangemode": "tozero"},
        yaxis2={"title": "Cumulative", "overlaying": "y", "side": "right", "showgrid": False, "rangemode": "tozero"},
        hovermode="closest",
    )
    return as_json(_layout(fig, "Transaction timeline", height=320))
