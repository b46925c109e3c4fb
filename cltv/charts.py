"""Plotly figure builders for the CLTV pages (pure: frames in, figure JSON dicts out).

Each builder returns ``json.loads(fig.to_json())`` with the ``plotly_white`` template, ready for
plotly.js. Inputs are the validation frames produced by ``cltv.pipeline``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from cltv.pipeline import FrequencyRecencyMatrices

TEMPLATE = "plotly_white"
ACTUAL = "#1f77b4"
MODEL = "#ff7f0e"


TITLE_LINE = 46  # characters of a title's first line; the rest goes to a smaller second line


def wrapped_title(text: str) -> dict[str, Any]:
    """Left-aligned, wrapped title: the chart toolbar sits top-right, so a title never runs under it."""
    if len(text) > TITLE_LINE:
        cut = text.rfind(" ", 0, TITLE_LINE)
        cut = cut if cut > 0 else TITLE_LINE
        text = f"{text[:cut]}<br><span style='font-size:12px'>{text[cut + 1:]}</span>"
    return {"text": text, "x": 0.0, "xanchor": "left", "xref": "paper", "y": 0.96, "yanchor": "top",
            "font": {"size": 14}}


def _finish(fig: go.Figure, title: str, x_title: str, y_title: str) -> dict[str, Any]:
    fig.update_layout(
        template=TEMPLATE,
        title=wrapped_title(title),
        xaxis_title=x_title,
        yaxis_title=y_title,
        legend={"orientation": "h", "y": -0.4, "yanchor": "top"},
        margin={"l": 60, "r": 20, "t": 90, "b": 110},
    )
    return json.loads(fig.to_json())


def _number(value: float) -> str:
    """Table cells: thousands separators, no scientific notation (-29650.1 -> '-29,650')."""
    if value is None or not np.isfinite(value):
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.3f}"


def calibration_vs_holdout_figure(table: pd.DataFrame, unit_label: str = "holdout period") -> dict[str, Any]:
    """Mean actual vs predicted holdout purchases by calibration frequency (``calibration_vs_holdout``)."""
    x = [str(i) for i in table.index]
    fig = go.Figure()
    fig.add_scatter(x=x, y=table["actual"].tolist(), mode="lines+markers", name="Actual", line={"color": ACTUAL})
    fig.add_scatter(
        x=x,
        y=table["predicted"].tolist(),
        mode="lines+markers",
        name="Model",
        line={"color": MODEL, "dash": "dash"},
        customdata=table["customers"].tolist(),
        hovertemplate="%{y:.2f} (customers: %{customdata})<extra>Model</extra>",
    )
    return _finish(
        fig,
        "Actual vs predicted purchases in the holdout period",
        "Purchases in the calibration period",
        f"Mean purchases in the {unit_label}",
    )


def period_transactions_figure(table: pd.DataFrame) -> dict[str, Any]:
    """Customers by number of repeat transactions: actual vs model (``period_transactions``)."""
    x = [str(i) for i in table.index]
    fig = go.Figure()
    fig.add_bar(x=x, y=table["actual"].tolist(), name="Actual", marker_color=ACTUAL)
    fig.add_bar(x=x, y=table["model"].tolist(), name="Model", marker_color=MODEL)
    fig.update_layout(barmode="group")
    return _finish(fig, "Frequency of repeat transactions", "Number of repeat transactions", "Customers")


def _heatmap(
    matrices: FrequencyRecencyMatrices, z: np.ndarray, title: str, colorbar: str, zmax: float | None
) -> dict[str, Any]:
    fig = go.Figure(
        go.Heatmap(
            x=matrices.frequency.tolist(),
            y=np.round(matrices.recency, 4).tolist(),
            z=np.round(z, 6).tolist(),
            zmin=0.0,
            zmax=zmax,
            colorscale="Viridis",
            colorbar={"title": {"text": colorbar}},
            hovertemplate="frequency %{x}<br>recency %{y}<br>" + colorbar + " %{z:.3f}<extra></extra>",
        )
    )
    return _finish(fig, title, "Historical frequency (repeat purchases)", "Historical recency")


def expected_purchases_heatmap(matrices: FrequencyRecencyMatrices) -> dict[str, Any]:
    """Expected purchases in the next ``t`` units by frequency and recency (customer age = T)."""
    title = f"Expected purchases in the next {matrices.t:g} time units (customer age {matrices.T:g})"
    return _heatmap(matrices, matrices.expected_purchases, title, "Expected purchases", None)


def p_alive_heatmap(matrices: FrequencyRecencyMatrices) -> dict[str, Any]:
    """P(alive) by frequency and recency (customer age = T)."""
    return _heatmap(
        matrices, matrices.p_alive, f"Probability a customer is alive (customer age {matrices.T:g})", "P(alive)", 1.0
    )


def clv_distribution_figure(
    clv: Sequence[float] | np.ndarray, *, bins: int = 60, currency: str = "", clip_quantile: float = 0.99
) -> dict[str, Any]:
    """Histogram of customers' CLV with the P10/P50/P90 of the distribution marked.

    The histogram's range is cut at ``clip_quantile`` (long right tail); the cut share is
    stated in the title.
    """
    values = np.asarray(clv, dtype=float)
    values = values[np.isfinite(values)]
    p10, p50, p90 = np.quantile(values, [0.1, 0.5, 0.9]) if values.size else (0.0, 0.0, 0.0)
    upper = float(np.quantile(values, clip_quantile)) if values.size else 1.0
    shown = values[values <= upper]
    counts, edges = np.histogram(shown, bins=bins, range=(0.0, max(upper, 1e-9)))
    fig = go.Figure()
    fig.add_bar(
        x=((edges[:-1] + edges[1:]) / 2).round(4).tolist(),
        y=counts.tolist(),
        width=float(edges[1] - edges[0]),
        name="Customers",
        marker_color=ACTUAL,
    )
    # Labels on three heights, left-anchored at their line: close percentiles no longer overprint.
    for row, (name, value, dash) in enumerate((("P10", p10, "dot"), ("P50", p50, "dash"), ("P90", p90, "dot"))):
        fig.add_vline(x=float(value), line_dash=dash, line_color=MODEL)
        fig.add_annotation(
            x=float(value), y=1.0 - 0.09 * row, xref="x", yref="paper", xanchor="left", yanchor="top",
            text=f"{name} {currency}{value:,.2f}", showarrow=False, xshift=3,
            bgcolor="rgba(255,255,255,0.85)", font={"size": 11, "color": "#9a3412"},
        )
    cut = 100.0 * (1 - shown.size / values.size) if values.size else 0.0
    title = f"CLTV distribution ({values.size:,} customers; top {cut:.1f}% beyond the axis)"
    return _finish(fig, title, f"CLTV {currency}".strip(), "Customers")


def cohort_band_figure(cohorts: pd.DataFrame, currency: str = "", partial_last: bool = False) -> dict[str, Any]:
    """Expected cohort value by first-purchase cohort with the P10–P90 band of the cohort sum.

    ``partial_last``: the data end inside the last month, so that cohort holds only part of a month's
    new customers; its point is marked so the drop is not read as a collapse.
    """
    x = pd.to_datetime(cohorts["cohort"]).dt.strftime("%Y-%m-%d").tolist()
    fig = go.Figure()
    fig.add_scatter(x=x, y=cohorts["p90"].tolist(), mode="lines", line={"width": 0}, name="P90", showlegend=False)
    fig.add_scatter(
        x=x,
        y=cohorts["p10"].tolist(),
        mode="lines",
        line={"width": 0},
        fill="tonexty",
        fillcolor="rgba(31,119,180,0.2)",
        name="P10–P90",
    )
    fig.add_scatter(
        x=x,
        y=cohorts["expected_clv"].tolist(),
        mode="lines+markers",
        name="Expected value",
        line={"color": ACTUAL},
        customdata=cohorts["customers"].tolist(),
        hovertemplate="%{y:,.0f} (customers: %{customdata})<extra></extra>",
    )
    if partial_last and x:
        fig.add_annotation(
            x=x[-1], y=float(cohorts["expected_clv"].iloc[-1]), text="partial month", showarrow=True, arrowhead=2,
            ax=-40, ay=-30, font={"size": 11}, bgcolor="rgba(255,255,255,0.85)",
        )
    y_title = f"Cohort value ({currency.strip()})" if currency.strip() else "Cohort value"
    return _finish(fig, "Expected future value by acquisition cohort", "First-purchase cohort", y_title)


COMPARISON_COLUMNS = {
    "label": "Model", "penalizer": "Penalizer", "log_likelihood": "Log-lik.", "bic": "BIC",
    "mae": "Mean abs. error", "rmse": "RMSE", "aggregate_error": "Total error",
}  # fmt: skip


def model_comparison_figure(table: pd.DataFrame, metric: str = "rmse") -> dict[str, Any]:
    """Holdout error per candidate model (bars) with the full comparison as a table."""
    ok = table[table["error"].fillna("") == ""] if "error" in table else table
    colors = [MODEL if bool(c) else ACTUAL for c in ok.get("chosen", [False] * len(ok))]
    fig = go.Figure()
    fig.add_bar(
        x=ok["label"].tolist(),
        y=ok[metric].round(6).tolist(),
        marker_color=colors,
        name=metric.upper(),
        xaxis="x",
        yaxis="y",
    )
    columns = ["label", "penalizer", "log_likelihood", "bic", "mae", "rmse", "aggregate_error"]
    columns = [c for c in columns if c in ok]
    cells = []
    for c in columns:
        col = ok[c]
        if c == "aggregate_error":
            cells.append([f"{v:+.1%}" for v in col])
        elif c == "label":
            cells.append([f"{v} ✓" if chosen else str(v) for v, chosen in zip(col, ok["chosen"], strict=True)])
        elif c == "penalizer":
            cells.append([f"{v:g}" for v in col])
        else:
            cells.append([_number(float(v)) for v in col])
    fig.add_table(
        header={"values": [f"<b>{COMPARISON_COLUMNS.get(c, c)}</b>" for c in columns], "align": "left"},
        cells={"values": cells, "align": ["left"] + ["right"] * (len(columns) - 1)},
        domain={"x": [0.0, 1.0], "y": [0.0, 0.4]},
    )
    fig.update_layout(yaxis={"domain": [0.55, 1.0]}, height=520)
    return _finish(
        fig, f"Model comparison on the holdout period ({metric.upper()}, lower is better)", "", metric.upper()
    )
