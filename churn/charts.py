"""Plotly figure builders for the churn pages (pure: plain data in, figure JSON dicts out).

Every builder returns ``json.loads(fig.to_json())`` with the ``plotly_white`` template, ready for
plotly.js. Inputs are the plain structures produced by :mod:`churn.pipeline` (``evaluate``
metrics per model) and :mod:`churn.explain` (``ShapExplanation.row``, ``global_importance``,
``beeswarm_data``).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from churn.pipeline import RiskBands

TEMPLATE = "plotly_white"
MODEL_LABELS: dict[str, str] = {"logistic": "Logistic baseline", "lightgbm": "LightGBM challenger",
                                "hist_gb": "HistGB challenger"}
RISE, FALL = "#d62728", "#1f77b4"
BAND_COLOURS: dict[str, str] = {"low": "#2ca02c", "medium": "#ff7f0e", "high": "#d62728"}


def _json(fig: go.Figure) -> dict[str, Any]:
    fig.update_layout(template=TEMPLATE)
    return json.loads(fig.to_json())


def _label(name: str) -> str:
    return MODEL_LABELS.get(name, name)


def roc_figure(metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """ROC curves of every model (holdout), with the chance diagonal."""
    fig = go.Figure()
    for name, m in metrics.items():
        fig.add_trace(go.Scatter(x=m["roc_curve"]["fpr"], y=m["roc_curve"]["tpr"], mode="lines",
                                 name=f"{_label(name)} (AUC {m['roc_auc']:.3f})"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dot", "color": "grey"}))
    fig.update_layout(title="ROC curve (out-of-time holdout)", xaxis_title="False positive rate",
                      yaxis_title="True positive rate (churners caught)")
    return _json(fig)


def pr_figure(metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Precision-recall curves of every model, with the base rate."""
    fig = go.Figure()
    base = None
    for name, m in metrics.items():
        fig.add_trace(go.Scatter(x=m["pr_curve"]["recall"], y=m["pr_curve"]["precision"], mode="lines",
                                 name=f"{_label(name)} (AP {m['pr_auc']:.3f})"))
        base = m["base_rate"]
    if base is not None:
        fig.add_trace(go.Scatter(x=[0, 1], y=[base, base], mode="lines", name=f"base rate {base:.0%}",
                                 line={"dash": "dot", "color": "grey"}))
    fig.update_layout(title="Precision-recall (out-of-time holdout)", xaxis_title="Recall", yaxis_title="Precision")
    return _json(fig)


def calibration_figure(metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Reliability diagram: mean predicted vs observed churn rate per quantile bin."""
    fig = go.Figure()
    for name, m in metrics.items():
        cal = m["calibration"]
        fig.add_trace(go.Scatter(x=cal["prob_pred"], y=cal["prob_true"], mode="lines+markers",
                                 name=f"{_label(name)} (Brier {m['brier']:.3f})"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect", line={"dash": "dot", "color": "grey"}))
    fig.update_layout(title="Calibration", xaxis_title="Predicted churn probability",
                      yaxis_title="Observed churn rate", xaxis_range=[0, 1], yaxis_range=[0, 1])
    return _json(fig)


def lift_gain_figure(metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Cumulative gain (left axis) and lift per decile (bars, right axis)."""
    fig = go.Figure()
    for name, m in metrics.items():
        rows = m["lift"]
        share = [0.0] + [r["population_share"] for r in rows]
        gain = [0.0] + [r["cumulative_gain"] for r in rows]
        fig.add_trace(go.Scatter(x=share, y=gain, mode="lines+markers", name=f"{_label(name)} gain"))
        fig.add_trace(go.Bar(x=[r["population_share"] - 0.05 for r in rows], y=[r["lift"] for r in rows],
                             name=f"{_label(name)} lift", yaxis="y2", opacity=0.35, width=0.04))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="random", line={"dash": "dot", "color": "grey"}))
    fig.update_layout(
        title="Gain and lift by risk decile", xaxis_title="Share of customers targeted (highest risk first)",
        yaxis={"title": "Share of churners caught", "range": [0, 1.02]},
        yaxis2={"title": "Lift", "overlaying": "y", "side": "right", "rangemode": "tozero"}, barmode="group",
    )
    return _json(fig)


def importance_figure(importance: Sequence[Mapping[str, Any]], title: str = "Global feature importance",
                      max_features: int = 15) -> dict[str, Any]:
    """Horizontal bars of mean |SHAP| (log-odds), most important on top."""
    items = list(importance)[:max_features][::-1]
    fig = go.Figure(go.Bar(x=[i["mean_abs_shap"] for i in items], y=[i["label"] for i in items], orientation="h",
                           marker_color=FALL))
    fig.update_layout(title=title, xaxis_title="mean |SHAP| (log-odds)", height=max(300, 28 * len(items) + 120))
    return _json(fig)


def _spread_rows(data: Mapping[str, Any], max_rows: int) -> np.ndarray:
    """Row positions of at most ``max_rows`` explained customers, evenly spaced over their ranking by total
    SHAP (i.e. by risk): a sample stratified by risk, so the beeswarm keeps the shape of the whole cloud."""
    features = list(data["features"])
    n = len(features[0]["shap"]) if features else 0
    if n <= max_rows:
        return np.arange(n)
    total = np.sum([np.asarray(f["shap"], dtype=float) for f in features], axis=0)
    ranked = np.argsort(total, kind="stable")
    return np.sort(ranked[np.linspace(0, n - 1, max_rows).round().astype(int)])


def beeswarm_figure(data: Mapping[str, Any], jitter: float = 0.3, seed: int = 0,
                    max_rows: int = 300) -> dict[str, Any]:
    """SHAP beeswarm: one row per feature, x = SHAP value, colour = feature value percentile (jittered).

    Shows at most ``max_rows`` customers (spread over the risk ranking, see ``_spread_rows``); the title and
    every hover say how many of how many explained customers are drawn."""
    rng = np.random.default_rng(seed)
    features = list(data["features"])[::-1]
    rows = _spread_rows(data, max_rows)
    explained = len(features[0]["shap"]) if features else 0
    drawn = f"{rows.size:,} of {explained:,} customers" if rows.size < explained else f"{rows.size:,} customers"
    xs, ys, cs, texts = [], [], [], []
    for row, f in enumerate(features):
        n = rows.size
        xs.extend(np.round(np.asarray(f["shap"], dtype=float)[rows], 4).tolist())
        ys.extend(np.round(row + rng.uniform(-jitter, jitter, n), 3).tolist())
        cs.extend(np.round(np.asarray(f["percentile"], dtype=float)[rows], 1).tolist())
        texts.extend(f"{f['label']}: {v:,.2f}" for v in np.asarray(f["value"], dtype=float)[rows])
    fig = go.Figure(go.Scattergl(
        x=xs, y=ys, mode="markers", text=texts,
        hovertemplate=f"%{{text}}<br>SHAP %{{x:.3f}}<br>one of {drawn}<extra></extra>",
        marker={"color": cs, "colorscale": "RdBu_r", "cmin": 0, "cmax": 100, "size": 4, "opacity": 0.7,
                "colorbar": {"title": "value<br>percentile"}},
    ))
    space = data.get("output_space", "log-odds")
    fig.update_layout(title=f"SHAP summary (beeswarm, {drawn} spread over the risk range)",
                      xaxis_title=f"SHAP value ({space})",
                      yaxis={"tickmode": "array", "tickvals": list(range(len(features))),
                             "ticktext": [f["label"] for f in features]},
                      height=max(320, 30 * len(features) + 120))
    fig.add_vline(x=0, line_color="grey", line_width=1)
    return _json(fig)


def _ordered_contributions(explanation: Mapping[str, Any], max_features: int) -> tuple[list[str], list[float], float]:
    vals = np.asarray(explanation["values"], dtype=float)
    labels = [f"{lab} = {v:,.4g}" for lab, v in zip(explanation["labels"], explanation["data"], strict=True)]
    order = np.argsort(-np.abs(vals), kind="stable")
    keep, rest = order[:max_features], order[max_features:]
    names = [labels[i] for i in keep]
    contrib = [float(vals[i]) for i in keep]
    return names, contrib, float(vals[rest].sum()) if rest.size else 0.0


def waterfall_figure(explanation: Mapping[str, Any], max_features: int = 10) -> dict[str, Any]:
    """Per-customer waterfall: base value → contributions (largest first) → model output (log-odds)."""
    names, contrib, rest = _ordered_contributions(explanation, max_features)
    if rest:
        names.append("other features")
        contrib.append(rest)
    base, out = float(explanation["base_value"]), float(explanation["output"])
    fig = go.Figure(go.Waterfall(
        orientation="h", measure=["absolute", *(["relative"] * len(contrib)), "total"],
        y=["base value", *names, "model output"], x=[base, *contrib, out],
        increasing={"marker": {"color": RISE}}, decreasing={"marker": {"color": FALL}},
        totals={"marker": {"color": "#7f7f7f"}},
    ))
    fig.update_layout(title=f"Why {explanation['customer_id']}: churn risk {explanation['probability']:.0%}",
                      xaxis_title="log-odds of churn", yaxis={"autorange": "reversed"},
                      height=max(320, 30 * (len(names) + 2) + 120))
    return _json(fig)


def decision_figure(explanations: Sequence[Mapping[str, Any]], max_features: int = 12) -> dict[str, Any]:
    """Decision plot: cumulative log-odds from the base value through the ordered contributions.

    Features are ordered by mean |contribution| over the customers shown (shared y axis); the
    line ends at each customer's model output.
    """
    if not explanations:
        return _json(go.Figure())
    labels = list(explanations[0]["labels"])
    V = np.array([e["values"] for e in explanations], dtype=float)
    order = np.argsort(np.abs(V).mean(axis=0), kind="stable")  # least important first (bottom)
    shown = order[-max_features:]
    hidden = order[:-max_features] if len(order) > max_features else np.array([], dtype=int)
    fig = go.Figure()
    ticks = ["base value", *(["other features"] if hidden.size else []), *[labels[i] for i in shown]]
    for e, v in zip(explanations, V, strict=True):
        steps = ([float(v[hidden].sum())] if hidden.size else []) + [float(v[i]) for i in shown]
        path = np.concatenate(([e["base_value"]], e["base_value"] + np.cumsum(steps)))
        fig.add_trace(go.Scatter(x=path.tolist(), y=list(range(len(path))), mode="lines+markers",
                                 name=f"{e['customer_id']} ({e['probability']:.0%})"))
    fig.add_vline(x=float(explanations[0]["base_value"]), line_color="grey", line_dash="dot")
    fig.update_layout(title="Decision plot", xaxis_title="cumulative log-odds of churn",
                      yaxis={"tickmode": "array", "tickvals": list(range(len(ticks))), "ticktext": ticks},
                      height=max(320, 28 * len(ticks) + 120))
    return _json(fig)


def risk_distribution_figure(probabilities: Sequence[float] | np.ndarray, bands: RiskBands | None = None,
                             nbins: int = 50) -> dict[str, Any]:
    """Histogram of churn probabilities coloured by risk band, with the band edges marked.

    Binned here (``nbins`` equal bins on [0, 1], counts per band stacked), so the page ships bin counts, not a
    point per customer; the bars of a bin add up to its customers."""
    b = bands or RiskBands()
    p = np.asarray(probabilities, dtype=float)
    labels = b.assign(p)
    edges = np.linspace(0.0, 1.0, nbins + 1)
    centres = np.round((edges[:-1] + edges[1:]) / 2, 6).tolist()
    ranges = [f"{lo:.2f}–{hi:.2f}" for lo, hi in itertools.pairwise(edges)]
    fig = go.Figure()
    for band in ("low", "medium", "high"):
        sel = p[labels == band]
        counts, _ = np.histogram(sel, bins=edges)
        fig.add_trace(go.Bar(x=centres, y=counts.tolist(), width=1.0 / nbins, name=f"{band} ({sel.size:,})",
                             marker_color=BAND_COLOURS[band], customdata=ranges,
                             hovertemplate=f"{band} risk, P(churn) %{{customdata}}: %{{y:,}} customers"
                                           "<extra></extra>"))
    for edge in (b.low, b.high):
        fig.add_vline(x=edge, line_dash="dash", line_color="grey")
    fig.update_layout(title="Churn risk distribution", xaxis_title="P(churn)", yaxis_title="customers",
                      barmode="stack", bargap=0, xaxis_range=[0, 1])
    return _json(fig)
