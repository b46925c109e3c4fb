"""The one per-customer feature definition shared by training, batch scoring and online scoring.

Pure pandas/numpy (no Django): ``services`` read ``Transaction``/``Customer`` rows into frames and
call :func:`build_features`; the online endpoints validate a raw payload with
:func:`features_from_payload`. Both produce the same columns, dtypes and order, so a model never
sees a feature computed two different ways (no training/serving skew).

Input frames
------------
``transactions``: customer_id (str), invoice (str), invoiced_at (datetime64[ns, UTC]),
amount (float; negative or positive for returns — the sign is ignored for returns),
quantity (int), is_return (bool), category (str, may be empty or missing).
``customers`` (optional): customer_id, country, first_seen, and optionally ``p_alive`` (a CLTV
model's P(alive), which the caller must have computed *as of the same cut-off*).

Point-in-time rule: only rows with ``invoiced_at < cutoff`` are read (strictly before); nothing at
or after the cut-off can leak in. A customer is featurised when they have at least one purchase
invoice (an invoice with non-return rows) before the cut-off; return-only customers are skipped.
``first_seen`` counts only when it is before the cut-off.

A *purchase invoice* is the set of non-return rows sharing an invoice number; its time is its
earliest row and its value the sum of its rows' amounts. A *return invoice* is the same over
return rows, valued at the absolute amount.

Features (unit; A = actionable: a marketer can move it with a campaign, D = derived: it moves
with the actionable ones but is not a lever itself, N = not actionable: history or identity)
-----------------------------------------------------------------------------------------------
recency_days          days      A  cut-off minus the last purchase invoice time.
frequency             count     A  distinct purchase invoices.
monetary              currency  A  net revenue: gross purchase value minus returned value.
tenure_days           days      N  cut-off minus the first purchase (or first_seen, if earlier).
avg_order_value       currency  D  gross purchase value / frequency.
ipt_mean_days         days      D  mean days between consecutive purchase invoices; for a
                                   one-invoice customer the gap is censored and the observed
                                   lower bound ``tenure_days`` is used.
ipt_std_days          days      D  population std (ddof=0) of those gaps; 0 with < 2 gaps.
gap_ratio             ratio     A  recency_days / max(ipt_mean_days, 1): > 1 means "overdue".
                                   Moves with recency (a new purchase resets it to 0).
purchases_90d         count     A  purchase invoices in [cut-off − 90 d, cut-off).
spend_90d             currency  A  gross purchase value in that window.
purchases_trend       count     A  purchases_90d minus purchase invoices in [cut-off − 180 d,
                                   cut-off − 90 d) (the recent trend in orders).
spend_trend           currency  A  spend_90d minus gross value in the previous 90 days.
return_count          count     N  distinct return invoices.
return_share          fraction  N  returned value / gross purchase value, clipped to [0, 1].
category_count        count     N  distinct non-empty categories bought.
p_alive               prob.     N  optional, copied from ``customers['p_alive']`` (CLTV).

Context (not model inputs): ``country`` (N) when ``customers`` is given — a high-cardinality
label kept for display and filtering, not fed to the churn models.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

NS_PER_DAY: float = 86_400e9
WINDOW_DAYS: int = 90

FEATURE_COLUMNS: tuple[str, ...] = (
    "recency_days",
    "frequency",
    "monetary",
    "tenure_days",
    "avg_order_value",
    "ipt_mean_days",
    "ipt_std_days",
    "gap_ratio",
    "purchases_90d",
    "spend_90d",
    "purchases_trend",
    "spend_trend",
    "return_count",
    "return_share",
    "category_count",
)
OPTIONAL_FEATURES: tuple[str, ...] = ("p_alive",)
CONTEXT_COLUMNS: tuple[str, ...] = ("country",)
INTEGER_FEATURES: frozenset[str] = frozenset(
    {"frequency", "purchases_90d", "purchases_trend", "return_count", "category_count"}
)
ACTIONABLE_FEATURES: tuple[str, ...] = (
    "recency_days", "gap_ratio", "frequency", "monetary",
    "purchases_90d", "spend_90d", "purchases_trend", "spend_trend",
)
DERIVED_FEATURES: tuple[str, ...] = ("avg_order_value", "ipt_mean_days", "ipt_std_days")
NON_ACTIONABLE_FEATURES: tuple[str, ...] = (
    "tenure_days", "return_count", "return_share", "category_count", "p_alive", "country",
)

FEATURE_DOCS: dict[str, dict[str, str]] = {
    "recency_days": {"unit": "days", "kind": "actionable", "label": "Days since last purchase"},
    "frequency": {"unit": "orders", "kind": "actionable", "label": "Orders"},
    "monetary": {"unit": "currency", "kind": "actionable", "label": "Net revenue"},
    "tenure_days": {"unit": "days", "kind": "not actionable", "label": "Customer age"},
    "avg_order_value": {"unit": "currency", "kind": "derived", "label": "Average order value"},
    "ipt_mean_days": {"unit": "days", "kind": "derived", "label": "Mean days between orders"},
    "ipt_std_days": {"unit": "days", "kind": "derived", "label": "Std of days between orders"},
    "gap_ratio": {"unit": "ratio", "kind": "actionable", "label": "Recency / usual gap"},
    "purchases_90d": {"unit": "orders", "kind": "actionable", "label": "Orders in last 90 days"},
    "spend_90d": {"unit": "currency", "kind": "actionable", "label": "Spend in last 90 days"},
    "purchases_trend": {"unit": "orders", "kind": "actionable", "label": "Orders: last 90 d minus previous 90 d"},
    "spend_trend": {"unit": "currency", "kind": "actionable", "label": "Spend: last 90 d minus previous 90 d"},
    "return_count": {"unit": "returns", "kind": "not actionable", "label": "Returns"},
    "return_share": {"unit": "fraction", "kind": "not actionable", "label": "Share of value returned"},
    "category_count": {"unit": "categories", "kind": "not actionable", "label": "Categories bought"},
    "p_alive": {"unit": "probability", "kind": "not actionable", "label": "P(alive) from CLTV"},
    "country": {"unit": "", "kind": "not actionable", "label": "Country"},
}

_REQUIRED_TX: tuple[str, ...] = ("customer_id", "invoice", "invoiced_at", "amount", "is_return")


class FeatureError(ValueError):
    """Bad input to the feature builders (missing columns, invalid payload values)."""


# ---------------------------------------------------------------------------------------------
# batch: transactions → features
# ---------------------------------------------------------------------------------------------


def _utc_timestamp(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _as_utc_ns(series: pd.Series) -> np.ndarray:
    """Datetime series (tz-aware or naive = UTC) → int64 nanoseconds since the epoch."""
    s = series
    if not isinstance(s.dtype, pd.DatetimeTZDtype):
        s = pd.to_datetime(s, utc=True)
    return s.dt.tz_convert("UTC").dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view("int64")


def _group_ends(codes_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) offsets of runs of equal codes in a sorted code array."""
    change = np.flatnonzero(np.diff(codes_sorted)) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [codes_sorted.size]))
    return starts, ends


def empty_features(with_p_alive: bool = False, with_country: bool = False) -> pd.DataFrame:
    """An empty feature frame with the canonical columns and dtypes."""
    cols: dict[str, pd.Series] = {}
    for name in FEATURE_COLUMNS:
        cols[name] = pd.Series([], dtype="int64" if name in INTEGER_FEATURES else "float64")
    if with_p_alive:
        cols["p_alive"] = pd.Series([], dtype="float64")
    if with_country:
        cols["country"] = pd.Series([], dtype="object")
    frame = pd.DataFrame(cols)
    frame.index = pd.Index([], dtype="object", name="customer_id")
    return frame


def build_features(
    transactions: pd.DataFrame,
    cutoff: pd.Timestamp,
    customers: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per-customer features as of ``cutoff`` from transactions strictly before it.

    Returns a frame indexed by ``customer_id`` (sorted), columns :data:`FEATURE_COLUMNS`
    (+ ``p_alive`` when ``customers`` has it, + ``country`` when ``customers`` is given). No NaN
    in the feature columns. Fully vectorised (factorised codes, sorts and bincounts).
    """
    missing = [c for c in _REQUIRED_TX if c not in transactions.columns]
    if missing:
        raise FeatureError(f"transactions lack column(s): {', '.join(missing)}")
    cut = _utc_timestamp(cutoff)
    cut_ns = cut.value
    with_p_alive = customers is not None and "p_alive" in customers.columns
    with_country = customers is not None

    t_all = _as_utc_ns(transactions["invoiced_at"])
    keep = t_all < cut_ns
    if not keep.any():
        return empty_features(with_p_alive, with_country)
    t = t_all[keep]
    # Series-level factorize: categorical / integer id columns take pandas' fast path
    cust_codes, cust_ids = pd.factorize(transactions["customer_id"][keep])
    cust_ids = np.asarray(cust_ids, dtype=object)
    n_cust = len(cust_ids)
    inv_codes, inv_ids = pd.factorize(transactions["invoice"][keep])
    amount = transactions["amount"].to_numpy(dtype="float64")[keep]
    is_ret = transactions["is_return"].to_numpy(dtype=bool)[keep]

    # --- invoice level: one key per (customer, invoice, kind)
    key = (cust_codes.astype(np.int64) * len(inv_ids) + inv_codes) * 2 + is_ret
    key_codes, key_uniques = pd.factorize(key)
    n_keys = len(key_uniques)
    inv_value = np.bincount(key_codes, weights=np.where(is_ret, np.abs(amount), amount), minlength=n_keys)
    inv_time = np.full(n_keys, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(inv_time, key_codes, t)
    inv_cust = (key_uniques // 2 // len(inv_ids)).astype(np.int64)
    inv_is_ret = (key_uniques % 2).astype(bool)

    # --- returns
    ret_cust = inv_cust[inv_is_ret]
    return_count = np.bincount(ret_cust, minlength=n_cust)
    returned_value = np.bincount(ret_cust, weights=inv_value[inv_is_ret], minlength=n_cust)

    # --- purchases, sorted by (customer, time)
    p_cust = inv_cust[~inv_is_ret]
    p_time = inv_time[~inv_is_ret]
    p_value = inv_value[~inv_is_ret]
    order = np.lexsort((p_time, p_cust))
    p_cust, p_time, p_value = p_cust[order], p_time[order], p_value[order]
    frequency = np.bincount(p_cust, minlength=n_cust)
    gross = np.bincount(p_cust, weights=p_value, minlength=n_cust)
    has_purchase = frequency > 0
    first_t = np.zeros(n_cust, dtype=np.int64)
    last_t = np.zeros(n_cust, dtype=np.int64)
    if p_cust.size:
        starts, ends = _group_ends(p_cust)
        groups = p_cust[starts]
        first_t[groups] = p_time[starts]
        last_t[groups] = p_time[ends - 1]

    # inter-purchase gaps (days) within customer
    same = np.zeros(p_cust.size, dtype=bool)
    same[1:] = p_cust[1:] == p_cust[:-1]
    gaps = np.diff(p_time, prepend=p_time[:1]).astype(np.float64) / NS_PER_DAY
    g_cust = p_cust[same]
    g = gaps[same]
    n_gaps = np.bincount(g_cust, minlength=n_cust).astype(np.float64)
    g_sum = np.bincount(g_cust, weights=g, minlength=n_cust)
    with np.errstate(invalid="ignore", divide="ignore"):
        g_mean = np.where(n_gaps > 0, g_sum / np.maximum(n_gaps, 1), np.nan)
    dev = g - g_mean[g_cust]
    g_var = np.bincount(g_cust, weights=dev * dev, minlength=n_cust) / np.maximum(n_gaps, 1)

    # recent windows
    w_ns = WINDOW_DAYS * 86_400 * 10**9
    in_last = p_time >= cut_ns - w_ns
    in_prev = (p_time >= cut_ns - 2 * w_ns) & ~in_last
    purchases_90d = np.bincount(p_cust[in_last], minlength=n_cust)
    spend_90d = np.bincount(p_cust[in_last], weights=p_value[in_last], minlength=n_cust)
    purchases_prev = np.bincount(p_cust[in_prev], minlength=n_cust)
    spend_prev = np.bincount(p_cust[in_prev], weights=p_value[in_prev], minlength=n_cust)

    # category breadth over purchase rows
    if "category" in transactions.columns:
        cat_codes, cat_ids = pd.factorize(transactions["category"][keep])  # missing → -1
        named = np.array([isinstance(c, str) and c.strip() != "" for c in cat_ids], dtype=bool)
        cat_ok = ~is_ret & (cat_codes >= 0)
        cat_ok[cat_ok] = named[cat_codes[cat_ok]]
        n_cat = max(len(cat_ids), 1)
        pair = cust_codes[cat_ok].astype(np.int64) * n_cat + cat_codes[cat_ok]
        if n_cust * n_cat <= 50_000_000:  # dense presence table: O(rows), no hashing
            seen = np.zeros(n_cust * n_cat, dtype=bool)
            seen[pair] = True
            category_count = seen.reshape(n_cust, n_cat).sum(axis=1)
        else:
            category_count = np.bincount(pd.unique(pair) // n_cat, minlength=n_cust)
    else:
        category_count = np.zeros(n_cust, dtype=np.int64)

    # tenure: first purchase, or first_seen from the customer table when earlier and before cut-off
    first_ns = first_t.astype(np.float64)
    country = None
    p_alive = None
    if customers is not None:
        cust_frame = customers.drop_duplicates("customer_id").set_index("customer_id")
        aligned = cust_frame.reindex(pd.Index(cust_ids))
        if "first_seen" in aligned.columns:
            fs = pd.to_datetime(aligned["first_seen"], utc=True)
            fs_ns = fs.dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view("int64").astype(np.float64)
            valid = fs.notna().to_numpy() & (fs_ns < cut_ns)
            first_ns = np.where(valid, np.minimum(first_ns, fs_ns), first_ns)
        if "country" in aligned.columns:
            country = aligned["country"].fillna("").astype(str).to_numpy(dtype=object)
        else:
            country = np.full(n_cust, "", dtype=object)
        if with_p_alive:
            p_alive = aligned["p_alive"].to_numpy(dtype=np.float64)

    recency = (cut_ns - last_t) / NS_PER_DAY
    tenure = (cut_ns - first_ns) / NS_PER_DAY
    ipt_mean = np.where(n_gaps > 0, g_mean, tenure)
    ipt_std = np.where(n_gaps > 1, np.sqrt(np.maximum(g_var, 0.0)), 0.0)
    safe_freq = np.maximum(frequency, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return_share = np.where(gross > 0, np.clip(returned_value / np.where(gross > 0, gross, 1.0), 0.0, 1.0), 0.0)

    data = {
        "recency_days": recency,
        "frequency": frequency.astype(np.int64),
        "monetary": gross - returned_value,
        "tenure_days": tenure,
        "avg_order_value": gross / safe_freq,
        "ipt_mean_days": ipt_mean,
        "ipt_std_days": ipt_std,
        "gap_ratio": recency / np.maximum(ipt_mean, 1.0),
        "purchases_90d": purchases_90d.astype(np.int64),
        # float even when no purchase falls in a window (np.bincount of nothing returns int64 zeros)
        "spend_90d": spend_90d.astype(np.float64),
        "purchases_trend": (purchases_90d - purchases_prev).astype(np.int64),
        "spend_trend": (spend_90d - spend_prev).astype(np.float64),
        "return_count": return_count.astype(np.int64),
        "return_share": return_share,
        "category_count": category_count.astype(np.int64),
    }
    if p_alive is not None:
        data["p_alive"] = p_alive
    if country is not None:
        data["country"] = country
    frame = pd.DataFrame(data, index=pd.Index(np.asarray(cust_ids, dtype=object), name="customer_id"))
    frame = frame.loc[has_purchase]
    return frame.sort_index(kind="stable")


# ---------------------------------------------------------------------------------------------
# feature algebra: "k purchases now"
# ---------------------------------------------------------------------------------------------


def apply_purchases(
    features: pd.DataFrame,
    n_purchases: int | np.ndarray,
    order_value: float | np.ndarray | None = None,
) -> pd.DataFrame:
    """The features as they would be right after ``n_purchases`` new purchases at the cut-off.

    Exactly what :func:`build_features` returns if ``n_purchases`` purchase invoices of
    ``order_value`` each (default: the customer's ``avg_order_value``) are added just before the
    cut-off: recency → 0, frequency/90-day counts and trends + k, spend + k·value, and the gap
    statistics updated in closed form (one new gap = the old recency, then k − 1 gaps of 0).
    """
    k = np.broadcast_to(np.asarray(n_purchases, dtype=np.int64), (len(features),))
    out = features.copy()
    aov = features["avg_order_value"].to_numpy(np.float64)
    value = aov if order_value is None else np.broadcast_to(np.asarray(order_value, np.float64), (len(features),))
    freq = features["frequency"].to_numpy(np.int64)
    rec = features["recency_days"].to_numpy(np.float64)
    tenure = features["tenure_days"].to_numpy(np.float64)
    n_old = np.maximum(freq - 1, 0).astype(np.float64)
    mean_old = np.where(n_old > 0, features["ipt_mean_days"].to_numpy(np.float64), 0.0)
    m2_old = np.where(n_old > 1, features["ipt_std_days"].to_numpy(np.float64) ** 2 * n_old, 0.0)
    moved = k > 0
    # add gap = rec, then (k - 1) zeros — Chan et al. parallel mean/M2 merge
    n_new = n_old + k
    add_mean = np.where(k > 0, rec / np.maximum(k, 1), 0.0)
    add_m2 = np.where(k > 0, rec * rec - k * add_mean * add_mean, 0.0)
    delta = add_mean - mean_old
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_new = np.where(n_new > 0, (n_old * mean_old + k * add_mean) / np.maximum(n_new, 1), 0.0)
        m2_new = m2_old + add_m2 + delta * delta * n_old * k / np.maximum(n_new, 1)
    gross_old = aov * freq
    gross_new = gross_old + k * value
    ipt_mean = np.where(n_new > 0, mean_new, tenure)
    ipt_std = np.where(n_new > 1, np.sqrt(np.maximum(m2_new / np.maximum(n_new, 1), 0.0)), 0.0)
    returned = features["return_share"].to_numpy(np.float64) * gross_old
    out["recency_days"] = np.where(moved, 0.0, rec)
    out["frequency"] = freq + k
    out["monetary"] = features["monetary"].to_numpy(np.float64) + k * value
    out["avg_order_value"] = gross_new / np.maximum(freq + k, 1)
    out["ipt_mean_days"] = np.where(moved, ipt_mean, features["ipt_mean_days"].to_numpy(np.float64))
    out["ipt_std_days"] = np.where(moved, ipt_std, features["ipt_std_days"].to_numpy(np.float64))
    new_mean = out["ipt_mean_days"].to_numpy(np.float64)
    out["gap_ratio"] = out["recency_days"].to_numpy(np.float64) / np.maximum(new_mean, 1.0)
    out["purchases_90d"] = features["purchases_90d"].to_numpy(np.int64) + k
    out["spend_90d"] = features["spend_90d"].to_numpy(np.float64) + k * value
    out["purchases_trend"] = features["purchases_trend"].to_numpy(np.int64) + k
    out["spend_trend"] = features["spend_trend"].to_numpy(np.float64) + k * value
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.clip(returned / np.where(gross_new > 0, gross_new, 1.0), 0.0, 1.0)
        out["return_share"] = np.where(gross_new > 0, share, 0.0)
    return out


# ---------------------------------------------------------------------------------------------
# online: raw payload → features
# ---------------------------------------------------------------------------------------------

_NON_NEGATIVE: frozenset[str] = frozenset(
    {"recency_days", "frequency", "tenure_days", "avg_order_value", "ipt_mean_days", "ipt_std_days",
     "gap_ratio", "purchases_90d", "spend_90d", "return_count", "return_share", "category_count"}
)


def _check_number(name: str, value: Any, where: str) -> float:
    if isinstance(value, bool) or value is None:
        raise FeatureError(f"{where}: {name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FeatureError(f"{where}: {name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise FeatureError(f"{where}: {name} must be finite, got {value!r}")
    if name in _NON_NEGATIVE and number < 0:
        raise FeatureError(f"{where}: {name} must be ≥ 0, got {number}")
    if name in INTEGER_FEATURES and number != round(number):
        raise FeatureError(f"{where}: {name} must be a whole number, got {number}")
    if name in ("return_share", "p_alive") and number > 1:
        raise FeatureError(f"{where}: {name} must be within [0, 1], got {number}")
    return number


def features_from_payload(payload: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Validate a raw feature payload (one dict or a list of dicts) into a feature frame.

    Each record carries every column of :data:`FEATURE_COLUMNS`; ``p_alive`` (all records or
    none), ``country`` and ``customer_id`` are optional (rows without an id are indexed
    ``payload-<i>``). Unknown keys, missing keys, non-numbers, negatives where a count/duration is
    expected, fractions outside [0, 1], fractional counts and ``frequency < 1`` raise
    :class:`FeatureError` naming the record and field. The result has the same columns, order and
    dtypes as :func:`build_features`.
    """
    records = [payload] if isinstance(payload, Mapping) else list(payload)
    if not records:
        raise FeatureError("payload is empty")
    allowed = set(FEATURE_COLUMNS) | set(OPTIONAL_FEATURES) | set(CONTEXT_COLUMNS) | {"customer_id"}
    has_p_alive = {("p_alive" in r) for r in records if isinstance(r, Mapping)}
    has_country = any(isinstance(r, Mapping) and "country" in r for r in records)
    if len(has_p_alive) > 1:
        raise FeatureError("p_alive must be given for every record or for none")
    with_p_alive = has_p_alive == {True}
    columns: dict[str, list[float]] = {name: [] for name in FEATURE_COLUMNS}
    if with_p_alive:
        columns["p_alive"] = []
    ids: list[str] = []
    countries: list[str] = []
    for i, record in enumerate(records):
        where = f"record {i}"
        if not isinstance(record, Mapping):
            raise FeatureError(f"{where}: must be an object, got {type(record).__name__}")
        unknown = sorted(set(record) - allowed)
        if unknown:
            raise FeatureError(f"{where}: unknown field(s): {', '.join(unknown)}")
        absent = [name for name in FEATURE_COLUMNS if name not in record]
        if absent:
            raise FeatureError(f"{where}: missing field(s): {', '.join(absent)}")
        for name in columns:
            columns[name].append(_check_number(name, record[name], where))
        if columns["frequency"][-1] < 1:
            raise FeatureError(f"{where}: frequency must be ≥ 1 (a scored customer has bought at least once)")
        ids.append(str(record.get("customer_id", f"payload-{i}")))
        country = record.get("country", "")
        countries.append("" if country is None else str(country))
    data: dict[str, Any] = {}
    for name, values in columns.items():
        arr = np.asarray(values, dtype=np.float64)
        data[name] = arr.astype(np.int64) if name in INTEGER_FEATURES else arr
    if has_country:
        data["country"] = np.asarray(countries, dtype=object)
    frame = pd.DataFrame(data, index=pd.Index(np.asarray(ids, dtype=object), name="customer_id"))
    if frame.index.has_duplicates:
        raise FeatureError("payload has duplicate customer_id values")
    return frame


def features_to_payload(features: pd.DataFrame) -> list[dict[str, Any]]:
    """Feature frame → list of JSON-able records (the inverse of :func:`features_from_payload`)."""
    cols = [c for c in (*FEATURE_COLUMNS, *OPTIONAL_FEATURES, *CONTEXT_COLUMNS) if c in features.columns]
    out: list[dict[str, Any]] = []
    for cid, row in zip(features.index, features[cols].itertuples(index=False, name=None), strict=True):
        rec: dict[str, Any] = {"customer_id": str(cid)}
        for name, value in zip(cols, row, strict=True):
            if name in CONTEXT_COLUMNS:
                rec[name] = value
            elif name in INTEGER_FEATURES:
                rec[name] = int(value)
            else:
                rec[name] = float(value)
        out.append(rec)
    return out


def build_features_at(
    transactions: pd.DataFrame,
    cutoffs: pd.Series,
    customers: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Features of each customer as of *their own* cut-off (``cutoffs``: customer_id → timestamp).

    Customers are grouped by cut-off and :func:`build_features` runs once per distinct cut-off on
    those customers' transactions only, so a campaign sent on one day (the usual case) costs one
    vectorised pass, and a campaign sent over many days costs one pass per send day. Same columns
    and rules as :func:`build_features` (strictly before the cut-off); customers with no purchase
    before their cut-off are absent. Indexed by customer_id, sorted.
    """
    if cutoffs.empty:
        return empty_features(customers is not None and "p_alive" in customers.columns, customers is not None)
    cut = pd.to_datetime(cutoffs, utc=True)
    tx_ids = transactions["customer_id"]
    frames = []
    for when, ids in cut.groupby(cut).groups.items():
        wanted = pd.Index(ids)
        mask = tx_ids.isin(wanted).to_numpy()
        cust = None if customers is None else customers[customers["customer_id"].isin(wanted)]
        frames.append(build_features(transactions.loc[mask], pd.Timestamp(when), cust))
    out = pd.concat(frames) if len(frames) > 1 else frames[0]
    return out.sort_index(kind="stable")
