"""Churn drivers in a marketer's words: "no order for 5 months, usually every 3 weeks".

Each stored top contribution (feature, value, SHAP log-odds) becomes one short sentence built from the
customer's features at the model's cut-off; the numbers (feature value, contribution) go in a tooltip.
"""

from __future__ import annotations

from typing import Any

from rfm_portal.customers.features import FEATURE_DOCS


def duration(days: float | None) -> str:
    """A span of days in the unit a person would use: 4 days, 3 weeks, 5 months, 2 years."""
    if days is None:
        return "an unknown time"
    d = max(float(days), 0.0)
    if d < 1:
        return "less than a day"
    if d < 14:
        n, unit = round(d), "day"
    elif d < 61:
        n, unit = round(d / 7), "week"
    elif d < 548:
        n, unit = round(d / 30.44), "month"
    else:
        n, unit = round(d / 365.25, 1), "year"
        n = int(n) if float(n).is_integer() else n
    return f"{n} {unit}{'' if n == 1 else 's'}"


def _money(value: float) -> str:
    return f"{value:,.0f}"


def _orders(n: float) -> str:
    n = round(n)
    return f"{n} order{'' if n == 1 else 's'}"


def driver_text(feature: str, value: float, features: dict[str, Any]) -> str:
    """One plain sentence about ``feature`` (``features`` = the customer's full feature row)."""
    f = features or {}
    recency, gap, freq = f.get("recency_days", value), f.get("ipt_mean_days"), f.get("frequency")
    if feature in ("recency_days", "gap_ratio"):
        if freq is not None and freq <= 1:
            return f"one order only, {duration(recency)} ago"
        usual = "" if not gap else (", usually more than once a day" if gap < 1 else f", usually every {duration(gap)}")
        if recency is not None and recency < 1:
            return f"ordered within the last day{usual}"
        return f"no order for {duration(recency)}{usual}"
    if feature == "frequency":
        return f"{_orders(value)} in total"
    if feature == "monetary":
        return f"spent {_money(value)} in total"
    if feature == "avg_order_value":
        return f"orders worth about {_money(value)} on average"
    if feature == "ipt_mean_days":
        return "usually orders more than once a day" if value < 1 else f"usually orders every {duration(value)}"
    if feature == "ipt_std_days":
        return "orders at irregular intervals" if gap and value > gap else "orders at regular intervals"
    if feature == "tenure_days":
        return f"customer for {duration(value)}"
    if feature == "purchases_90d":
        return "no order in the last 90 days" if value <= 0 else f"{_orders(value)} in the last 90 days"
    if feature == "spend_90d":
        return "nothing spent in the last 90 days" if value <= 0 else f"spent {_money(value)} in the last 90 days"
    if feature == "purchases_trend":
        if value == 0:
            return "as many orders as in the 90 days before"
        return f"{_orders(abs(value))} {'more' if value > 0 else 'fewer'} than in the 90 days before"
    if feature == "spend_trend":
        if value == 0:
            return "spending as much as in the 90 days before"
        return f"spent {_money(abs(value))} {'more' if value > 0 else 'less'} than in the 90 days before"
    if feature == "return_count":
        return "no returns" if value <= 0 else f"{int(value)} return{'' if value == 1 else 's'}"
    if feature == "return_share":
        return f"returned {value:.0%} of what they bought"
    if feature == "category_count":
        return f"bought from {int(value)} categor{'y' if value == 1 else 'ies'}"
    if feature == "p_alive":
        return f"{value:.0%} chance still active (CLTV model)"
    return f"{FEATURE_DOCS.get(feature, {}).get('label', feature)}: {value:g}"


def plain_drivers(contributions: list[dict[str, Any]], features: dict[str, Any]) -> list[dict[str, Any]]:
    """[{text, raises, tooltip}] per stored contribution, largest first; recency and gap ratio (the same fact
    said twice) are merged into one sentence."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for c in contributions or []:
        text = driver_text(c["feature"], float(c.get("value", 0.0)), features)
        label = c.get("label") or FEATURE_DOCS.get(c["feature"], {}).get("label", c["feature"])
        tip = f"{label} = {float(c.get('value', 0.0)):.4g}; contribution {c['contribution']:+.2f} log-odds"
        if text in seen:
            continue
        seen.add(text)
        out.append({"text": text, "raises": c["contribution"] > 0, "tooltip": tip})
    return out
