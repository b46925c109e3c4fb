"""Plotly figure builders for the uplift pages (pure: plain data in, figure JSON dicts out).

Inputs are the structures :func:`uplift.pipeline.train_uplift` stores in a model version's
metrics (``evaluation`` per learner / naive rule) and :func:`uplift.services.profit_targeting`.
Plain words in titles and axes; the statistics are in the hover text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

TEMPLATE = "plotly_white"
CURVE_LABELS: dict[str, str] = {
    "causal_forest": "Causal forest",
    "t_learner": "T-learner",
    "most_likely_buyers": "Naive: most likely buyers",
    "highest_churn_risk": "Naive: highest churn risk",
    "random": "Random targeting",
}
CURVE_STYLES: dict[str, dict[str, Any]] = {
    "causal_forest": {"color": "#1f77b4", "width": 3},
    "t_learner": {"color": "#ff7f0e", "width": 2},
    "most_likely_buyers": {"color": "#9467bd", "dash": "dash"},
    "highest_churn_risk": {"color": "#8c564b", "dash": "dash"},
}
GROUP_COLOURS: dict[str, str] = {"persuadable": "#2ca02c", "sure_thing": "#1f77b4", "lost_cause": "#7f7f7f",
                                 "sleeping_dog": "#d62728"}


def _json(fig: go.Figure) -> dict[str, Any]:
    # legend under the x-axis title, title left of the mode bar
    fig.update_layout(template=TEMPLATE, legend={"orientation": "h", "yanchor": "top", "y": -0.3, "x": 0},
                      margin={"l": 60, "r": 20, "t": 60, "b": 40}, title={"x": 0.01, "font": {"size": 15}})
    return json.loads(fig.to_json())


def _curve_figure(evaluation: Mapping[str, Mapping[str, Any]], key: str, coef: str, title: str,
                  y_title: str) -> dict[str, Any]:
    fig = go.Figure()
    end = None
    for name in ("causal_forest", "t_learner", "most_likely_buyers", "highest_churn_risk"):
        ev = evaluation.get(name)
        if not ev:
            continue
        curve = ev[key]
        end = curve["y"][-1]
        fig.add_trace(go.Scatter(
            x=curve["x"], y=curve["y"], mode="lines", name=f"{CURVE_LABELS[name]} ({coef} {ev[coef.lower()]:.4f})",
            line=CURVE_STYLES.get(name), customdata=[[v * 1000] for v in curve["y"]],
            hovertemplate="%{x:.0%} targeted: %{customdata[0]:.1f} extra buyers per 1,000 customers<extra>"
                          + CURVE_LABELS[name] + "</extra>"))
    if end is not None:
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, end], mode="lines", name="Random targeting",
                                 line={"dash": "dot", "color": "grey"}, hoverinfo="skip"))
    fig.update_layout(title=title, xaxis={"title": "Share of customers contacted (best-ranked first)",
                                          "tickformat": ".0%"}, yaxis_title=y_title)
    return _json(fig)


def qini_figure(evaluation: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Qini curves of both learners and the naive rules against random targeting (held-out customers)."""
    return _curve_figure(evaluation, "qini_curve", "Qini", "Extra buyers won by contacting the top of each list",
                         "Extra buyers per customer (Qini)")


def uplift_curve_figure(evaluation: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return _curve_figure(evaluation, "uplift_curve", "AUUC", "Cumulative gain (uplift curve)",
                         "Extra buyers per customer (uplift curve)")


def deciles_figure(deciles: Sequence[Mapping[str, Any]], learner: str) -> dict[str, Any]:
    """Observed conversion of contacted vs held-back customers per decile of predicted uplift, with 95 % CIs."""
    x = [f"{d['decile']}" for d in deciles]
    fig = go.Figure()
    for arm, colour, label in (("treated", "#1f77b4", "Contacted"), ("control", "#aaaaaa", "Not contacted")):
        rates = [d[f"{arm}_rate"] for d in deciles]
        lo = [d[f"{arm}_ci"][0] for d in deciles]
        hi = [d[f"{arm}_ci"][1] for d in deciles]
        fig.add_trace(go.Bar(
            x=x, y=rates, name=label, marker_color=colour,
            error_y={"type": "data", "symmetric": False, "array": [h - r for h, r in zip(hi, rates, strict=True)],
                     "arrayminus": [r - lo_ for r, lo_ in zip(rates, lo, strict=True)]},
            customdata=[[d[f"n_{arm}"], lo_, h] for d, lo_, h in zip(deciles, lo, hi, strict=True)],
            hovertemplate="Decile %{x}: %{y:.1%} bought (95% CI %{customdata[1]:.1%}–%{customdata[2]:.1%}, "
                          "n=%{customdata[0]})<extra>" + label + "</extra>"))
    fig.add_trace(go.Scatter(
        x=x, y=[d["uplift"] for d in deciles], mode="lines+markers", name="Observed uplift (difference)",
        yaxis="y2", line={"color": "#2ca02c"},
        error_y={"type": "data", "symmetric": False,
                 "array": [d["uplift_ci"][1] - d["uplift"] for d in deciles],
                 "arrayminus": [d["uplift"] - d["uplift_ci"][0] for d in deciles]},
        customdata=[[d["predicted_uplift"], d["uplift_ci"][0], d["uplift_ci"][1]] for d in deciles],
        hovertemplate="Decile %{x}: observed %{y:+.1%} (95% CI %{customdata[1]:+.1%} to %{customdata[2]:+.1%}), "
                      "predicted %{customdata[0]:+.1%}<extra></extra>"))
    fig.update_layout(
        title=f"Does the ranking hold? Purchases by decile of predicted uplift ({CURVE_LABELS.get(learner, learner)})",
        barmode="group", xaxis_title="Decile of predicted uplift (1 = contact helps most)",
        yaxis={"title": "Bought in the outcome window", "tickformat": ".0%"},
        yaxis2={"title": "Uplift", "overlaying": "y", "side": "right", "tickformat": "+.0%", "zeroline": True})
    return _json(fig)


def groups_figure(summary: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    fig = go.Figure(go.Bar(
        x=[g["label"] for g in summary], y=[g["n"] for g in summary],
        marker_color=[GROUP_COLOURS[g["group"]] for g in summary],
        customdata=[[g["revenue"], g["profit"]] for g in summary],
        hovertemplate="%{x}: %{y:,} customers<br>extra revenue if all contacted: %{customdata[0]:,.0f}"
                      "<br>expected profit if all contacted: %{customdata[1]:,.0f}<extra></extra>"))
    fig.update_layout(title="Customers by what contact would do", yaxis_title="Customers")
    return _json(fig)


def profit_figure(targeting: Mapping[str, Any]) -> dict[str, Any]:
    """Incremental profit (whole base) against the share contacted, best cut-off marked."""
    pop = targeting["population"]
    fig = go.Figure()
    for key, name, style in (("model", "Uplift model (by expected profit)", {"color": "#1f77b4", "width": 3}),
                             ("churn", "Naive: highest churn risk", {"color": "#8c564b", "dash": "dash"}),
                             ("random", "Random targeting", {"color": "grey", "dash": "dot"})):
        fig.add_trace(go.Scatter(x=targeting["x"], y=[v * pop for v in targeting[key]], mode="lines", name=name,
                                 line=style, hovertemplate="%{x:.0%} contacted: %{y:,.0f} profit<extra>" + name
                                 + "</extra>"))
    fig.add_trace(go.Scatter(x=[targeting["best_share"]], y=[targeting["best_total"]], mode="markers+text",
                             name="Best cut-off", marker={"size": 12, "color": "#2ca02c", "symbol": "star"},
                             text=[f"best: contact {targeting['best_share']:.0%}"], textposition="top center",
                             hovertemplate="Contact the top %{x:.0%}: %{y:,.0f}<extra>best cut-off</extra>"))
    fig.add_trace(go.Scatter(x=[1.0], y=[targeting["everyone_total"]], mode="markers", name="Target everyone",
                             marker={"size": 11, "color": "#d62728", "symbol": "x"},
                             hovertemplate="Everyone: %{y:,.0f}<extra></extra>"))
    fig.update_layout(title=f"Incremental profit across {pop:,} customers by share contacted",
                      xaxis={"title": "Share of customers contacted", "tickformat": ".0%"},
                      yaxis_title="Incremental profit")
    return _json(fig)


def balance_figure(balance: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    fig = go.Figure(go.Bar(
        y=[b["feature"] for b in balance], x=[b["smd"] for b in balance], orientation="h",
        marker_color=["#2ca02c" if b["balanced"] else "#d62728" for b in balance],
        customdata=[[b["treated_mean"], b["control_mean"]] for b in balance],
        hovertemplate="%{y}: standardised difference %{x:+.3f}<br>contacted mean %{customdata[0]:.2f}, "
                      "held-back mean %{customdata[1]:.2f}<extra></extra>"))
    fig.add_vrect(x0=-0.1, x1=0.1, fillcolor="#2ca02c", opacity=0.08, line_width=0)
    fig.update_layout(title="Were the two groups alike before the send? (|difference| < 0.1 = balanced)",
                      xaxis_title="Standardised difference (contacted − held back)", height=420)
    return _json(fig)
