"""Per-group performance with bootstrap intervals (pure: arrays in, JSON-able dicts out; no Django).

Each capability's pipeline supplies its key metric as a function of the evaluation rows it selects
(churn: ROC-AUC and calibration on the backtest rows; CLTV: error of predicted vs actual holdout
purchases; uplift: Qini on the held-out split) and the group labels (country, RFM segment as of the
evaluation cut-off); :func:`group_performance` computes the metric overall and per group with a
percentile bootstrap interval and flags groups that do markedly worse.

Rules (stated in every result, so the card and the pages can quote them):

* a group with fewer than ``min_rows`` rows (or whose metric is undefined, e.g. one class only for
  AUC) is "too few to judge": its value is shown, no interval, never flagged;
* the interval is the 2.5 / 97.5 % percentile of ``n_boot`` bootstrap resamples of the group's rows
  (resamples where the metric is undefined are dropped);
* a group is *flagged* when its whole interval lies on the worse side of the grouping's *reference*
  by more than ``margin`` (higher-is-better: ``ci_high < reference − margin``; lower-is-better:
  ``ci_low > reference + margin``). So a flag needs both a real gap and enough rows to be sure of it.
* the reference is the size-weighted mean of the judged groups' values in the same grouping (the
  typical *within-group* value), not the overall value: groups such as RFM segments already separate
  the outcome, so ranking inside any one of them is harder than over everyone (a within-segment AUC is
  lower than the overall AUC for every segment), and errors of opposite sign cancel in an overall
  aggregate error. Comparing with the overall value would flag nearly every segment.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

Metric = Callable[[np.ndarray], float]  # rows (an index array into the evaluation set) -> value or NaN

DEFAULT_MIN_ROWS = 30
DEFAULT_BOOT = 200
UNKNOWN_GROUP = "(unknown)"


@dataclass(frozen=True)
class GroupRule:
    """How a per-group table is judged (quoted in the card)."""

    metric: str
    label: str
    higher_is_better: bool
    margin: float
    min_rows: int = DEFAULT_MIN_ROWS
    n_boot: int = DEFAULT_BOOT
    seed: int = 0

    def text(self) -> str:
        side = "below" if self.higher_is_better else "above"
        return (f"a group is flagged when its whole 95 % bootstrap interval of {self.label} lies {side} the typical "
                f"group (the size-weighted mean of the judged groups of the same kind) by more than {self.margin:g}; "
                f"groups with fewer than {self.min_rows} rows are 'too few to judge'")


def bootstrap_interval(rows: np.ndarray, metric: Metric, n_boot: int, rng: np.random.Generator,
                       ) -> tuple[float | None, float | None]:
    """Percentile 95 % interval of ``metric`` over bootstrap resamples of ``rows`` (None if undefined)."""
    values = []
    for _ in range(n_boot):
        value = metric(rows[rng.integers(0, len(rows), len(rows))])
        if value is not None and math.isfinite(value):
            values.append(value)
    if len(values) < max(10, n_boot // 2):
        return None, None
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def group_performance(
    metric: Metric,
    n_rows: int,
    groupings: Mapping[str, np.ndarray | list[Any]],
    rule: GroupRule,
    extras: Mapping[str, Metric] | None = None,
) -> dict[str, Any]:
    """The metric overall and per group of each grouping, with intervals and flags.

    ``metric(rows)`` evaluates the key metric on a subset of the ``n_rows`` evaluation rows;
    ``groupings`` maps a grouping name (``country``, ``rfm_segment``) to one label per row;
    ``extras`` are further point metrics shown beside it (e.g. mean predicted and observed rate).
    """
    rng = np.random.default_rng(rule.seed)
    everyone = np.arange(n_rows)
    overall = _finite(metric(everyone)) if n_rows else None
    lo, hi = bootstrap_interval(everyone, metric, rule.n_boot, rng) if n_rows >= rule.min_rows else (None, None)
    extras = dict(extras or {})
    result: dict[str, Any] = {
        "metric": rule.metric, "label": rule.label, "higher_is_better": rule.higher_is_better,
        "margin": rule.margin, "min_rows": rule.min_rows, "n_boot": rule.n_boot, "rule": rule.text(),
        "overall": {"n": n_rows, "value": overall, "ci_low": lo, "ci_high": hi,
                    **{name: _finite(fn(everyone)) for name, fn in extras.items()}},
        "by": {}, "reference": {}, "flagged": [],
    }
    for grouping, labels in groupings.items():
        arr = np.asarray([UNKNOWN_GROUP if (v is None or v == "") else str(v) for v in labels], dtype=object)
        if len(arr) != n_rows:
            raise ValueError(f"{grouping}: {len(arr)} labels for {n_rows} rows")
        rows_out = []
        for group in sorted(set(arr.tolist())):
            rows = np.flatnonzero(arr == group)
            value = _finite(metric(rows))
            judged = len(rows) >= rule.min_rows and value is not None
            g_lo, g_hi = bootstrap_interval(rows, metric, rule.n_boot, rng) if judged else (None, None)
            rows_out.append({"group": group, "n": len(rows), "value": value, "ci_low": g_lo, "ci_high": g_hi,
                             "judged": bool(judged and g_lo is not None), "flagged": False,
                             **{name: _finite(fn(rows)) for name, fn in extras.items()}})
        judged_rows = [r for r in rows_out if r["judged"]]
        weight = sum(r["n"] for r in judged_rows)
        reference = sum(r["n"] * r["value"] for r in judged_rows) / weight if weight else None
        result["reference"][grouping] = reference
        for row in rows_out:
            if row["judged"] and reference is not None and len(judged_rows) > 1:
                row["flagged"] = bool(row["ci_high"] < reference - rule.margin if rule.higher_is_better
                                      else row["ci_low"] > reference + rule.margin)
            if row["flagged"]:
                result["flagged"].append({"grouping": grouping, "group": row["group"], "n": row["n"],
                                          "value": row["value"], "ci_low": row["ci_low"], "ci_high": row["ci_high"]})
        rows_out.sort(key=lambda r: -r["n"])
        result["by"][grouping] = rows_out
    return result


# --- metric helpers used by the pipelines ---------------------------------------------------------


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC by the rank-sum (Mann-Whitney) formula, ties counted half; NaN with one class."""
    y = np.asarray(y, dtype=np.int64)
    s = np.asarray(score, dtype=np.float64)
    pos = int(y.sum())
    neg = int(y.size - pos)
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.size, dtype=np.float64)
    sorted_s = s[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def auc_interval(auc_value: float, positives: int, negatives: int, z: float = 1.96) -> tuple[float, float]:
    """Analytic 95 % interval of an ROC-AUC (Hanley & McNeil 1982 standard error), clipped to [0, 1]."""
    a = float(auc_value)
    q1 = a / (2 - a)
    q2 = 2 * a * a / (1 + a)
    var = (a * (1 - a) + (positives - 1) * (q1 - a * a) + (negatives - 1) * (q2 - a * a))
    var /= max(positives * negatives, 1)
    se = math.sqrt(max(var, 0.0))
    return max(0.0, a - z * se), min(1.0, a + z * se)


def proportion_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score 95 % interval of a proportion."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
