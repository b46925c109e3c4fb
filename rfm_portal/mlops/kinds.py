"""What the Models and Jobs pages say about each model kind and job kind, declared by the apps.

The core never imports a capability app: each app registers, in its AppConfig.ready, a human label
for its model kind(s) and job kind(s) and the two or three metrics that summarise a version (e.g.
churn: AUC and Brier). Kinds nobody registered (an app added later) still show: their label is
derived from the kind and their key metrics are the first few plain numbers in the metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FALLBACK_METRICS = 3


@dataclass(frozen=True)
class KeyMetric:
    """One headline figure of a version.

    `value` is a dotted path into ModelVersion.metrics ("holdout.roc_auc") or a function of the metrics.
    `fmt`: "number" (`digits` significant decimals), "percent", "signed_percent", "int" or "text".
    """

    label: str
    value: str | Callable[[dict[str, Any]], Any]
    fmt: str = "number"
    digits: int = 3
    help: str = ""


@dataclass(frozen=True)
class KeyMetricValue:
    label: str
    text: str
    help: str = ""


# A version's charts for its page: metrics -> [(caption, Plotly figure dict)]. Built from the stored
# metrics only, so an old version's page shows that version's curves.
ChartsBuilder = Callable[[dict[str, Any]], list[tuple[str, dict[str, Any]]]]

_KIND_LABELS: dict[str, str] = {}
_KEY_METRICS: dict[str, tuple[KeyMetric, ...]] = {}
_CHARTS: dict[str, ChartsBuilder] = {}
_PAGES: dict[str, str] = {}
_JOB_LABELS: dict[str, str] = {}


def register_model_kind(
    kind: str,
    label: str,
    key_metrics: list[KeyMetric] | tuple[KeyMetric, ...] = (),
    charts: ChartsBuilder | None = None,
    page_url_name: str = "",
) -> None:
    """Declare a kind: its label, headline metrics, optional charts builder and the app page it serves."""
    _KIND_LABELS[kind] = label
    _KEY_METRICS[kind] = tuple(key_metrics)
    if charts is not None:
        _CHARTS[kind] = charts
    if page_url_name:
        _PAGES[kind] = page_url_name


def kind_charts(kind: str, metrics: dict[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
    builder = _CHARTS.get(kind)
    if builder is None or not metrics:
        return []
    try:
        return builder(metrics)
    except (KeyError, TypeError, ValueError, IndexError):
        # an older version's metrics may lack what today's builder reads: show the page without charts
        return []


def kind_page_url_name(kind: str) -> str:
    return _PAGES.get(kind, "")


def register_job_kind(job_kind: str, label: str) -> None:
    """`job_kind` is the Celery task name a Job row carries, e.g. "cltv.train"."""
    _JOB_LABELS[job_kind] = label


def _humanise(name: str) -> str:
    words = name.replace(".", " ").replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else name


def kind_label(kind: str) -> str:
    return _KIND_LABELS.get(kind) or _humanise(kind)


def job_label(job_kind: str) -> str:
    return _JOB_LABELS.get(job_kind) or _humanise(job_kind)


def _lookup(metrics: dict[str, Any], path: str) -> Any:
    value: Any = metrics
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def format_metric(value: Any, fmt: str = "number", digits: int = 3) -> str:
    if value is None:
        return "–"
    if fmt == "text" or not _is_number(value):
        return str(value)
    number = float(value)
    if fmt == "percent":
        return f"{number * 100:.1f}%"
    if fmt == "signed_percent":
        return f"{number * 100:+.1f}%"
    if fmt == "int" or (isinstance(value, int) and fmt == "number"):
        return f"{round(number):,}"
    if abs(number) >= 1000:
        return f"{number:,.0f}"
    return f"{number:.{digits}f}"


def key_metrics(kind: str, metrics: dict[str, Any] | None) -> list[KeyMetricValue]:
    """The version's headline figures: the registered ones, or the first plain numbers in its metrics."""
    metrics = metrics or {}
    declared = _KEY_METRICS.get(kind)
    out: list[KeyMetricValue] = []
    if declared:
        for km in declared:
            try:
                raw = km.value(metrics) if callable(km.value) else _lookup(metrics, km.value)
            except (KeyError, TypeError, ValueError, AttributeError):
                raw = None
            if raw is None:
                continue
            out.append(KeyMetricValue(km.label, format_metric(raw, km.fmt, km.digits), km.help))
        return out
    for name, value in metrics.items():
        if _is_number(value):
            out.append(KeyMetricValue(_humanise(name), format_metric(value)))
            if len(out) == FALLBACK_METRICS:
                break
    return out


def scalar_metrics(metrics: dict[str, Any] | None, limit: int = 40) -> list[tuple[str, str]]:
    """Every plain figure in the metrics (one level of nesting), for the version page's table.

    Curves, tables and other lists are left to the charts.
    """
    rows: list[tuple[str, str]] = []
    for name, value in (metrics or {}).items():
        if isinstance(value, dict):
            for sub, inner in value.items():
                if _is_number(inner) or (isinstance(inner, str) and len(inner) <= 120):
                    rows.append((f"{_humanise(name)} · {_humanise(str(sub))}", format_metric(inner)))
        elif _is_number(value) or (isinstance(value, str) and len(value) <= 200):
            rows.append((_humanise(name), format_metric(value)))
        if len(rows) >= limit:
            break
    return rows[:limit]
