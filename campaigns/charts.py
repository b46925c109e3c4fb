"""Plotly figure builders for the campaign pages (pure: the stored plan/results dicts in, figure JSON out)."""

from __future__ import annotations

import json
from typing import Any

import plotly.graph_objects as go

TEMPLATE = "plotly_white"
NAIVE_LABELS = {"everyone": "Everyone in the audience (random order)", "churn_risk": "Highest churn risk first",
                "likely_buyers": "Most likely buyers first"}
NAIVE_COLOURS = {"everyone": "#7f7f7f", "churn_risk": "#8c564b", "likely_buyers": "#9467bd"}


def _json(fig: go.Figure) -> dict[str, Any]:
    fig.update_layout(template=TEMPLATE, legend={"orientation": "h", "yanchor": "top", "y": -0.3, "x": 0},
                      margin={"l": 60, "r": 20, "t": 60, "b": 40}, title={"x": 0, "font": {"size": 15}})
    return json.loads(fig.to_json())


def profit_curve_figure(plan: dict[str, Any]) -> dict[str, Any] | None:
    curve = plan.get("curve")
    if not curve:
        return None
    t = plan["totals"]
    # Naive rules go on spending far beyond the budget (everyone); show the budget's neighbourhood.
    x_max = max(t["budget"], curve["spend"][-1]) * 1.5
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=curve["spend"], y=curve["profit"], mode="lines", name="Planner (best customers first)",
                             line={"color": "#1f77b4", "width": 3},
                             hovertemplate="Spend %{x:,.0f}: expected extra profit %{y:,.0f}<extra></extra>"))
    for name, c in plan.get("naive_curves", {}).items():
        keep = [i for i, x in enumerate(c["spend"]) if x <= x_max]
        fig.add_trace(go.Scatter(x=[c["spend"][i] for i in keep], y=[c["profit"][i] for i in keep], mode="lines",
                                 name=NAIVE_LABELS.get(name, name),
                                 line={"dash": "dash", "color": NAIVE_COLOURS.get(name)},
                                 hovertemplate="Spend %{x:,.0f}: %{y:,.0f}<extra>" + NAIVE_LABELS.get(name, name)
                                 + f" ({plan.get('naive_channel', '')})</extra>"))
    fig.add_trace(go.Scatter(x=[t["spend"]], y=[t["profit"]], mode="markers", name="This plan",
                             marker={"size": 13, "color": "#d62728", "symbol": "star"},
                             hovertemplate="Budget %{x:,.0f} spent: expected extra profit %{y:,.0f}<extra></extra>"))
    fig.add_vline(x=t["budget"], line_dash="dot", line_color="grey")
    fig.update_layout(title="Extra profit by amount spent", xaxis={"title": "Spend (contacts + expected incentives)",
                                                                   "range": [0, x_max]},
                      yaxis_title="Expected extra profit")
    return _json(fig)


def naive_bars_figure(plan: dict[str, Any]) -> dict[str, Any] | None:
    if not plan.get("naive"):
        return None
    names = ["This plan", *[NAIVE_LABELS.get(k, k) for k in plan["naive"]]]
    profits = [plan["totals"]["profit"], *[v["profit"] for v in plan["naive"].values()]]
    contacts = [plan["totals"]["selected"], *[v["contacts"] for v in plan["naive"].values()]]
    fig = go.Figure(go.Bar(x=names, y=profits, customdata=contacts,
                           marker_color=["#1f77b4", *[NAIVE_COLOURS.get(k, "#999") for k in plan["naive"]]],
                           hovertemplate="%{x}: %{y:,.0f} expected extra profit, %{customdata:,} contacted"
                                         "<extra></extra>"))
    fig.update_layout(title="Same budget, simple rules", yaxis_title="Expected extra profit")
    return _json(fig)


def segments_figure(rows: list[dict[str, Any]], title: str) -> dict[str, Any] | None:
    if not rows:
        return None
    fig = go.Figure(go.Bar(
        x=[r["segment"] for r in rows], y=[r["mean_uplift"] for r in rows],
        error_y={"type": "data", "symmetric": False, "array": [r["high"] - r["mean_uplift"] for r in rows],
                 "arrayminus": [r["mean_uplift"] - r["low"] for r in rows]},
        customdata=[[r["customers"], r["profit_per_customer"], r["sleeping_dogs"]] for r in rows],
        marker_color=["#2ca02c" if r["mean_uplift"] > 0 else "#d62728" for r in rows],
        hovertemplate="%{x}: contact changes the chance to buy by %{y:+.1%} on average<br>%{customdata[0]:,} customers"
                      ", %{customdata[1]:.2f} expected extra profit each, %{customdata[2]:,} sleeping dogs"
                      "<extra>bars: mean of the 95% bounds</extra>"))
    fig.update_layout(title=title, yaxis={"title": "Average effect of contact on P(buy)", "tickformat": ".1%"})
    return _json(fig)


def results_figure(results: dict[str, Any]) -> dict[str, Any] | None:
    if not results:
        return None
    fig = go.Figure()
    if results.get("predicted_uplift") is not None:
        fig.add_trace(go.Bar(x=["Predicted"], y=[results["predicted_uplift"]], name="Predicted", marker_color="#9ecae1",
                             hovertemplate="Predicted: %{y:+.2%}<extra></extra>"))
    interval = f"{results['uplift_low']:+.2%} to {results['uplift_high']:+.2%}"
    fig.add_trace(go.Bar(x=["Measured"], y=[results["uplift"]], name="Measured (contacted − holdout)",
                         marker_color="#1f77b4",
                         error_y={"type": "data", "symmetric": False,
                                  "array": [results["uplift_high"] - results["uplift"]],
                                  "arrayminus": [results["uplift"] - results["uplift_low"]]},
                         hovertemplate=f"Measured: %{{y:+.2%}} (95% interval {interval})<extra></extra>"))
    fig.update_layout(title="Extra buyers: predicted vs measured", yaxis={"title": "Change in P(buy)",
                                                                        "tickformat": ".1%"})
    return _json(fig)
