"""The pure math of the Segmentation capability: RFM, quintile scores, named segments, K-Means.

No Django here: DataFrames and arrays in, DataFrames, arrays and small dataclasses out. Every
function is vectorised (no per-customer Python loops) and deterministic. Problems with the
input that a user can fix or must be told about raise :class:`SegmentationError`, a
``ValueError`` whose message is written for the portal user.

Pipeline
--------
1. :func:`rfm_table` — recency / frequency / monetary per customer as of a cut-off date
   (pandas reference; production computes the same aggregate in PostgreSQL).
2. :func:`score_rfm` — quintile scores R, F, M in 1–5 (:func:`quintile_scores`) and the named
   segment from the rule map in :mod:`segmentation.segment_map`.
3. :class:`RFMTransform`, :func:`search_k`, :func:`cluster_rfm` — K-Means on log1p +
   standardised RFM with a search over k, an automatic choice of k, value-ordered cluster ids
   and rule-based cluster names (:func:`cluster_profiles`).
4. :func:`group_stats`, :func:`pareto_curve`, :func:`rf_grid`, :func:`migration_matrix` — the
   statistics behind the portal's tables and charts (:mod:`segmentation.charts`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.metrics import silhouette_score
from threadpoolctl import threadpool_limits

from segmentation.segment_map import SEGMENT_NAMES, assign_segments, fm_score

__all__ = [
    "DEFAULT_K_VALUES",
    "FEATURES",
    "GONE_LABEL",
    "LEVEL_NAMES",
    "NEUTRAL_SCORE",
    "NEW_LABEL",
    "ClusteringResult",
    "KSearchResult",
    "RFMTransform",
    "SegmentationError",
    "cluster_name",
    "cluster_profiles",
    "cluster_rfm",
    "fit_kmeans",
    "group_stats",
    "migration_matrix",
    "pareto_curve",
    "pareto_share_at",
    "quintile_scores",
    "rf_grid",
    "rfm_table",
    "score_rfm",
    "search_k",
]

FEATURES: tuple[str, str, str] = ("recency_days", "frequency", "monetary")
RFM_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "recency_days",
    "frequency",
    "monetary",
    "first_purchase",
    "last_purchase",
)
TRANSACTION_COLUMNS: tuple[str, ...] = ("customer_id", "invoice", "invoiced_at", "amount", "is_return")
NEUTRAL_SCORE = 3
DEFAULT_K_VALUES: tuple[int, ...] = tuple(range(2, 11))
# A marketer's floor: fewer than 4 groups is too coarse to act on (silhouette alone often picks
# k = 2: "buyers" and "everyone else"). Smaller k wins only when its silhouette is clearly better.
MARKETER_MIN_K = 4
CLEAR_SILHOUETTE_MARGIN = 0.10
NEW_LABEL = "(new)"
GONE_LABEL = "(gone)"
_DAY_NS = 86_400 * 10**9


class SegmentationError(ValueError):
    """The input cannot be segmented as asked; ``str(error)`` is a message for the portal user."""


# --------------------------------------------------------------------------------------------
# 1. RFM table
# --------------------------------------------------------------------------------------------


def _utc_ns(values: pd.Series) -> np.ndarray:
    """Timestamps as int64 nanoseconds since the epoch, UTC. Naive timestamps are taken as UTC."""
    if not pd.api.types.is_datetime64_any_dtype(values):
        raise SegmentationError("Column 'invoiced_at' must hold timestamps (datetime64).")
    if values.dt.tz is None:
        values = values.dt.tz_localize("UTC")
    return values.dt.tz_convert("UTC").dt.as_unit("ns").array.asi8


def _cutoff_day(cutoff: Any) -> pd.Timestamp:
    """The cut-off as midnight UTC of its calendar day (a time of day is dropped)."""
    try:
        ts = pd.Timestamp(cutoff)
    except (TypeError, ValueError) as exc:
        raise SegmentationError(f"Cut-off {cutoff!r} is not a date.") from exc
    if ts is pd.NaT:
        raise SegmentationError("Cut-off date is missing.")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.normalize().as_unit("ns")


def _encode(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense codes 0..m-1 in sorted order of the distinct values, and those values.

    Integer ids in a compact range (the usual database keys) are encoded by direct addressing in
    O(n) — several times faster than hashing 20,000,000 rows; anything else uses
    ``pd.factorize(sort=True)``. Integral floats (ids read from a CSV with blanks) count as integers.
    """
    if values.size and values.dtype.kind in "iuf":
        as_int = values
        if values.dtype.kind == "f":
            as_int = values.astype(np.int64)
            if not np.array_equal(as_int, values):
                as_int = None  # type: ignore[assignment]
        if as_int is not None:
            lo, hi = int(as_int.min()), int(as_int.max())
            span = hi - lo + 1
            if span <= max(4 * values.size, 1 << 20):
                offset = (as_int - lo).astype(np.intp)
                present = np.zeros(span, dtype=bool)
                present[offset] = True
                lookup = np.cumsum(present, dtype=np.intp) - 1
                uniques = (np.flatnonzero(present) + lo).astype(values.dtype)
                return lookup[offset], uniques
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.intp), np.asarray(uniques)


def _distinct_invoices_per_customer(cust_codes: np.ndarray, invoices: np.ndarray, n: int) -> np.ndarray:
    """Number of distinct invoices per customer code (purchase rows only).

    Usually every invoice belongs to one customer; then the count is a bincount of each
    invoice's customer (checked exactly with per-invoice min/max customer). Otherwise the
    (customer, invoice) pairs are de-duplicated by sorting.
    """
    inv_codes, inv_uniques = _encode(invoices)
    m = len(inv_uniques)
    if m == 0:
        return np.zeros(n, dtype=np.int64)
    lo = np.full(m, n, dtype=np.intp)
    hi = np.full(m, -1, dtype=np.intp)
    np.minimum.at(lo, inv_codes, cust_codes)
    np.maximum.at(hi, inv_codes, cust_codes)
    if np.array_equal(lo, hi):
        return np.bincount(lo, minlength=n).astype(np.int64)
    keys = np.sort(cust_codes.astype(np.int64) * m + inv_codes)
    first_of_pair = np.concatenate(([True], keys[1:] != keys[:-1]))
    return np.bincount(keys[first_of_pair] // m, minlength=n).astype(np.int64)


def rfm_table(
    transactions: pd.DataFrame, cutoff: dt.date | dt.datetime | str | pd.Timestamp | None = None
) -> pd.DataFrame:
    """Recency, frequency and monetary value per customer as of a cut-off date.

    Input columns: ``customer_id``, ``invoice``, ``invoiced_at`` (datetime64[ns, UTC]; naive
    is read as UTC), ``amount`` (float), ``is_return`` (bool). Extra columns are ignored and
    the input is not modified.

    Rules:

    * **Cut-off.** A calendar day, taken as midnight UTC (a time of day is dropped). Only rows
      strictly before it count ("as of the start of the cut-off day"). Default: the day after
      the last transaction, so the whole history counts. The value used is returned in
      ``result.attrs["cutoff"]``.
    * **Rows without a customer id** (anonymous tills, e.g. in Online Retail) are ignored.
    * **Purchases** are rows with ``is_return`` false; **returns** are rows with it true.
    * **recency_days** = cut-off day − calendar day (UTC) of the last purchase, in whole days.
      With the default cut-off the most recent customers have recency 1.
    * **frequency** = number of distinct invoices among the customer's purchase rows (an
      invoice with several lines is one purchase; returns never count).
    * **monetary** = net revenue after returns = sum of purchase amounts − sum of |return
      amounts|. Returns reduce revenue whatever the source's sign convention (the portal stores
      them negative). It can be negative when a customer returns goods bought before the
      window; it is kept as is here (:class:`RFMTransform` clips it at 0 before the log).
    * **first_purchase / last_purchase** = first and last purchase timestamp (UTC).
    * **Customers with only returns** before the cut-off are **excluded**: without a purchase
      they have no recency or frequency, and their returns refer to purchases outside the data.
      Their returns therefore do not enter any revenue total computed from this table.

    Output: one row per customer sorted by ``customer_id`` with columns ``customer_id,
    recency_days (int64), frequency (int64), monetary (float64), first_purchase,
    last_purchase (datetime64[ns, UTC])``.

    Raises :class:`SegmentationError` when columns are missing or no customer has a purchase
    before the cut-off.
    """
    missing = [c for c in TRANSACTION_COLUMNS if c not in transactions.columns]
    if missing:
        raise SegmentationError(f"Transactions are missing the column(s): {', '.join(missing)}.")

    customer = transactions["customer_id"]
    t_ns = _utc_ns(transactions["invoiced_at"])
    keep = customer.notna().to_numpy()
    if not keep.any():
        raise SegmentationError("There are no transactions with a customer id, so there is nothing to segment.")

    if cutoff is None:
        cut = pd.Timestamp(int(t_ns[keep].max()), unit="ns", tz="UTC").normalize() + pd.Timedelta(days=1)
    else:
        cut = _cutoff_day(cutoff)
    cut_ns = cut.value
    keep &= t_ns < cut_ns

    is_return = transactions["is_return"].to_numpy(dtype=bool, na_value=False)
    purchase = keep & ~is_return
    if not purchase.any():
        raise SegmentationError(f"No customer made a purchase before the cut-off {cut.date().isoformat()}.")

    # Every row kept (the usual case): slices are views, boolean masks would copy 20M rows.
    sel: slice | np.ndarray = slice(None) if keep.all() else keep
    # Customers are indexed by their position among the customers with any kept row.
    codes, uniques = _encode(customer.to_numpy()[sel])
    n = len(uniques)
    amount = transactions["amount"].to_numpy(dtype=np.float64, na_value=np.nan)[sel]
    if np.isnan(amount).any():
        raise SegmentationError("Some transactions have no amount; fix the import before segmenting.")
    signed = np.where(is_return[sel], -np.abs(amount), amount)
    monetary = np.bincount(codes, weights=signed, minlength=n)

    p_codes = codes[purchase[sel]]
    p_t = t_ns[purchase]
    first_all = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    last_all = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(first_all, p_codes, p_t)
    np.maximum.at(last_all, p_codes, p_t)
    frequency = _distinct_invoices_per_customer(p_codes, transactions["invoice"].to_numpy()[purchase], n)

    has_purchase = np.flatnonzero(np.bincount(p_codes, minlength=n) > 0)
    first_ns = first_all[has_purchase]
    last_ns = last_all[has_purchase]
    table = pd.DataFrame(
        {
            "customer_id": uniques[has_purchase],
            "recency_days": (cut_ns // _DAY_NS - last_ns // _DAY_NS).astype(np.int64),
            "frequency": frequency[has_purchase].astype(np.int64),
            "monetary": monetary[has_purchase],
            "first_purchase": pd.to_datetime(first_ns, unit="ns", utc=True),
            "last_purchase": pd.to_datetime(last_ns, unit="ns", utc=True),
        }
    )
    table.attrs["cutoff"] = cut
    return table


# --------------------------------------------------------------------------------------------
# 2. Quintile scores and named segments
# --------------------------------------------------------------------------------------------


def quintile_scores(
    values: np.ndarray | pd.Series | Sequence[float], *, reverse: bool = False, lowest_is_one: bool = False
) -> np.ndarray:
    """Rank-based quintile scores 1–5 (5 = highest value, or lowest when ``reverse``).

    Rule: with ``rank`` the *average* rank of each value (ties share the mean of their ranks,
    1 = smallest) among ``n`` values, the mid-rank percentile is ``p = (rank − ½) / n`` and the
    score is ``floor(5·p) + 1``. Because average ranks are multiples of ½ the score is computed
    exactly in integers as ``(5·(2·rank − 1)) // (2·n) + 1``.

    Consequences (all tested):

    * equal raw values always get equal scores, and scores are monotone in the raw values;
    * all-equal values get the neutral score 3 (p = ½), and so does a single customer;
    * with five distinct values the scores are 1, 2, 3, 4, 5; with two, 2 and 4; with four,
      1, 2, 4, 5 — small sets spread symmetrically around 3 instead of being forced to 1 and 5;
    * a value shared by a big block of customers gets the score of the block's middle (e.g. if
      60 % bought once, all of them get F = 2 and nobody gets F = 1).

    ``reverse=True`` is used for recency: the smallest number of days (most recent) scores 5.

    ``lowest_is_one=True`` (used for frequency): the block of customers at the lowest value scores
    1, everyone else as above. Order counts are heavily tied (often half the customers bought
    once); with mid-ranks those one-time buyers would all get F = 2 and nobody F = 1, leaving the
    New and Promising segments empty. The rule keeps scores monotone and equal values equal;
    all-equal values still get the neutral 3.
    Raises :class:`SegmentationError` on missing values.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError("quintile_scores expects a one-dimensional array")
    n = x.size
    if n == 0:
        return np.empty(0, dtype=np.int8)
    if np.isnan(x).any():
        raise SegmentationError("Cannot score customers with missing R, F or M values.")
    ranks = rankdata(-x if reverse else x, method="average")
    twice = np.rint(2.0 * ranks).astype(np.int64)
    scores = ((5 * (twice - 1)) // (2 * n) + 1).astype(np.int8)
    if lowest_is_one and x.min() != x.max():
        scores[x == (x.max() if reverse else x.min())] = 1
    return scores


def score_rfm(rfm: pd.DataFrame) -> pd.DataFrame:
    """R, F, M quintile scores and the named segment for every customer of an RFM table.

    Returns a copy of ``rfm`` with ``r_score`` (from recency, reversed: recent = 5),
    ``f_score``, ``m_score`` (int8, 1–5, see :func:`quintile_scores`), ``fm_score``
    (``ceil((F + M) / 2)``), ``rfm_code`` (e.g. ``"545"``) and ``segment`` (a Categorical over
    :data:`segmentation.segment_map.SEGMENT_NAMES`; exactly one per customer, from the
    R × FM grid documented in :mod:`segmentation.segment_map`).

    Raises :class:`SegmentationError` on an empty table or missing columns.
    """
    _check_rfm(rfm, min_customers=1)
    out = rfm.copy()
    out["r_score"] = quintile_scores(rfm["recency_days"], reverse=True)
    out["f_score"] = quintile_scores(rfm["frequency"], lowest_is_one=True)  # one-time buyers reach F = 1
    out["m_score"] = quintile_scores(rfm["monetary"])
    out["fm_score"] = fm_score(out["f_score"], out["m_score"]).astype(np.int8)
    digits = out["r_score"].astype(np.int64) * 100 + out["f_score"].astype(np.int64) * 10 + out["m_score"]
    out["rfm_code"] = digits.astype(str)
    out["segment"] = assign_segments(out["r_score"], out["f_score"], out["m_score"])
    return out


def _check_rfm(rfm: pd.DataFrame, *, min_customers: int) -> None:
    missing = [c for c in FEATURES if c not in rfm.columns]
    if missing:
        raise SegmentationError(f"The RFM table is missing the column(s): {', '.join(missing)}.")
    if len(rfm) < min_customers:
        if len(rfm) == 0:
            raise SegmentationError("There are no customers to segment.")
        raise SegmentationError(
            f"Only {len(rfm)} customer(s) have purchases; at least {min_customers} are needed for this step."
        )
    if rfm[list(FEATURES)].isna().to_numpy().any():
        raise SegmentationError("Some customers have missing R, F or M values.")


# --------------------------------------------------------------------------------------------
# 3. K-Means
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RFMTransform:
    """The feature transform for K-Means: ``z = (log1p(x) − mean) / scale`` per column.

    Columns are ``recency_days, frequency, monetary`` in that order. Monetary is clipped at 0
    before the log (net-negative customers count as zero spend). log1p tames the long right
    tails of all three so that a few big spenders do not own a cluster each; standardising
    gives the three dimensions equal weight. ``scale`` is the population standard deviation;
    a constant column gets scale 1 (it then contributes nothing to distances).
    The fitted parameters are kept so new customers can be assigned with the same transform.
    """

    mean: tuple[float, float, float]
    scale: tuple[float, float, float]

    @staticmethod
    def log_features(rfm: pd.DataFrame) -> np.ndarray:
        """``log1p`` of recency, frequency and monetary (clipped at 0): an (n, 3) float array."""
        raw = rfm[list(FEATURES)].to_numpy(dtype=np.float64)
        raw[:, 2] = np.clip(raw[:, 2], 0.0, None)
        raw[:, :2] = np.clip(raw[:, :2], 0.0, None)
        return np.log1p(raw)

    @classmethod
    def fit(cls, rfm: pd.DataFrame) -> RFMTransform:
        logged = cls.log_features(rfm)
        mean = logged.mean(axis=0)
        std = logged.std(axis=0)
        scale = np.where(std > 1e-12, std, 1.0)
        return cls(tuple(float(v) for v in mean), tuple(float(v) for v in scale))  # type: ignore[arg-type]

    def transform(self, rfm: pd.DataFrame) -> np.ndarray:
        return (self.log_features(rfm) - np.asarray(self.mean)) / np.asarray(self.scale)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Back to original units (recency days, invoices, money); monetary ≥ 0 by construction."""
        return np.expm1(np.asarray(z, dtype=np.float64) * np.asarray(self.scale) + np.asarray(self.mean))


@dataclass(frozen=True)
class KSearchResult:
    """Diagnostics of the search over k and the automatic choice.

    ``silhouette[i]`` and ``inertia[i]`` belong to ``k_values[i]``; silhouette is computed on a
    seeded sample of ``sample_size`` customers (all of them when the data are small), inertia
    on all customers. Each candidate is fitted on ``fit_rows`` customers: all of them up to the
    search sample size, else a seeded sample (the chosen k is then refitted on every customer).
    ``labels`` holds the raw K-Means labels per k (before value ordering) of a search on all rows, so
    the chosen fit is not recomputed; ``seconds`` the wall time per k (fit + silhouette).
    """

    k_values: tuple[int, ...]
    silhouette: tuple[float, ...]
    inertia: tuple[float, ...]
    chosen_k: int
    explanation: str
    sample_size: int
    n_customers: int
    tolerance: float
    algorithm: str
    labels: dict[int, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    centers: dict[int, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    seconds: tuple[float, ...] = field(default=(), repr=False, compare=False)
    fit_rows: int = 0

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "k": self.k_values,
                "silhouette": self.silhouette,
                "inertia": self.inertia,
                "chosen": [k == self.chosen_k for k in self.k_values],
                "seconds": list(self.seconds) if self.seconds else [np.nan] * len(self.k_values),
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (for ``ModelVersion.metrics``)."""
        return {
            "k_values": list(self.k_values),
            "silhouette": [None if np.isnan(s) else round(float(s), 6) for s in self.silhouette],
            "inertia": [float(i) for i in self.inertia],
            "chosen_k": self.chosen_k,
            "explanation": self.explanation,
            "sample_size": self.sample_size,
            "n_customers": self.n_customers,
            "tolerance": self.tolerance,
            "algorithm": self.algorithm,
        }


MINIBATCH_THRESHOLD = 5_000_000
# Above this many customers the search over k fits each candidate on a seeded sample of this size;
# bench/sampled_decisions_bench.py shows the chosen k is the one a search on every row picks.
SEARCH_SAMPLE = 50_000
LARGE_N = 200_000
SINGLE_THREAD_MAX = 50_000


def _estimator(k: int, n: int, random_state: int, minibatch_threshold: int) -> KMeans | MiniBatchKMeans:
    """The K-Means estimator for ``n`` rows, always with a fixed ``random_state`` and ``n_init``.

    * ``n ≤ 200,000``: exact Lloyd K-Means, k-means++ init, ``n_init=10``.
    * ``200,000 < n ≤ minibatch_threshold`` (default 5,000,000): exact Lloyd K-Means with
      ``n_init=3``. On three standardised features a Lloyd pass over 1,000,000 rows takes tens
      of milliseconds and converges in a few dozen passes. Measured on the 1M-customer bench
      (2 CPUs, two runs, quiet and shared): Lloyd k=3 (n_init=3) 2.8–4 s; MiniBatchKMeans k=3
      12–26 s with batch 4,096 (its many small steps dominate) and 4–11 s with batch 65,536,
      with no better inertia (+0.01 % / +0.03 %). So MiniBatchKMeans is not used at this size.
    * above ``minibatch_threshold``: MiniBatchKMeans (batch 65,536, ``n_init=3``; labels and
      inertia computed on all rows), where Lloyd's full passes start to dominate.
    """
    if n > minibatch_threshold:
        return MiniBatchKMeans(n_clusters=k, n_init=3, batch_size=65_536, random_state=random_state)
    return KMeans(n_clusters=k, n_init=10 if n <= LARGE_N else 3, random_state=random_state)


def _threads(n: int) -> AbstractContextManager[Any]:
    """Small inputs run single-threaded: OpenMP start-up and spin-waiting cost more than they save
    there, and badly so on a busy machine (measured: 1,200 customers 12 s → 1 s)."""
    return threadpool_limits(limits=1) if n <= SINGLE_THREAD_MAX else nullcontext()


def _distinct_rows(x: np.ndarray, cap: int) -> int:
    """Number of distinct rows of ``x``, exact below ``cap``; at or above ``cap`` it may stop early
    (checking only the first rows) and return any number ≥ ``cap``."""
    if len(x) > 50 * cap:
        head = pd.DataFrame(x[: 50 * cap]).drop_duplicates().shape[0]
        if head >= cap:
            return head
    return pd.DataFrame(x).drop_duplicates().shape[0]


def _feasible_k_max(x: np.ndarray, wanted: int) -> int:
    """The largest usable k: at most the number of distinct customer profiles and n − 1
    (silhouette needs at least one cluster with two members)."""
    return min(_distinct_rows(x, wanted + 1), len(x) - 1)


def _sample_index(n: int, size: int, random_state: int) -> np.ndarray:
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n, size=size, replace=False))


def fit_kmeans(
    x: np.ndarray, k: int, *, random_state: int = 0, minibatch_threshold: int = MINIBATCH_THRESHOLD
) -> KMeans | MiniBatchKMeans:
    """Fit K-Means with the deterministic settings of :func:`_estimator` on a transformed matrix."""
    with _threads(len(x)):
        return _estimator(k, len(x), random_state, minibatch_threshold).fit(x)


def _choose_k(
    k_values: Sequence[int],
    silhouette: Sequence[float],
    tolerance: float,
    min_k: int = MARKETER_MIN_K,
    clear_margin: float = CLEAR_SILHOUETTE_MARGIN,
) -> tuple[int, str]:
    """Rule: the marketer's floor first — only k ≥ ``min_k`` compete, unless the best k below the
    floor beats them by at least ``clear_margin`` silhouette (the data clearly have fewer groups)
    or no k ≥ ``min_k`` is usable. Within the competing k, :func:`_best_k`."""
    sil = np.asarray(silhouette, dtype=float)
    ks = list(k_values)
    above = [i for i, k in enumerate(ks) if k >= min_k and not np.isnan(sil[i])]
    below = [i for i, k in enumerate(ks) if k < min_k and not np.isnan(sil[i])]
    if not above or not below:
        chosen, text = _best_k(ks, sil, tolerance)
        if not above and below and min_k > min(ks):
            text += f" These customers support no usable k ≥ {min_k}, so the usual floor of {min_k} groups was lifted."
        return chosen, text
    chosen, text = _best_k([ks[i] for i in above], sil[above], tolerance)
    best_below = max(below, key=lambda i: sil[i])
    best_above_s = float(np.nanmax(sil[above]))
    if sil[best_below] >= best_above_s + clear_margin:
        small, small_text = _best_k([ks[i] for i in below], sil[below], tolerance)
        return small, (
            f"{small_text} The usual floor of {min_k} groups was not applied: the data clearly have fewer groups "
            f"(silhouette {sil[best_below]:.3f} at k = {ks[best_below]} vs at most {best_above_s:.3f} "
            f"for k ≥ {min_k}, a margin of {clear_margin:g} or more)."
        )
    return chosen, (
        f"{text} Fewer than {min_k} groups are too coarse for campaigns, so smaller k only win with a clearly "
        f"better silhouette (by {clear_margin:g}); the best below the floor, {sil[best_below]:.3f} at "
        f"k = {ks[best_below]}, is not."
    )


def _best_k(k_values: Sequence[int], silhouette: Sequence[float], tolerance: float) -> tuple[int, str]:
    """Rule: the highest silhouette wins; any k within ``tolerance`` of the best counts as a tie
    and the smallest such k is chosen (fewer clusters are easier to act on)."""
    sil = np.asarray(silhouette, dtype=float)
    valid = ~np.isnan(sil)
    if not valid.any():
        raise SegmentationError("No candidate number of clusters gave a usable silhouette score.")
    best_i = int(np.nanargmax(sil))
    best_k, best_s = k_values[best_i], float(sil[best_i])
    near = [k for k, s in zip(k_values, sil, strict=True) if not np.isnan(s) and s >= best_s - tolerance]
    chosen = min(near)
    span = f"k = {min(k_values)}–{max(k_values)}" if len(k_values) > 1 else f"k = {k_values[0]}"
    if chosen == best_k:
        text = f"k = {chosen} chosen automatically: it has the highest silhouette ({best_s:.3f}) among {span}."
    else:
        chosen_s = float(sil[list(k_values).index(chosen)])
        text = (
            f"k = {chosen} chosen automatically: its silhouette ({chosen_s:.3f}) is within {tolerance:g} of the best "
            f"({best_s:.3f} at k = {best_k}) among {span}, and fewer clusters are easier to act on."
        )
    return chosen, text


def search_k(
    x: np.ndarray,
    k_values: Iterable[int] = DEFAULT_K_VALUES,
    *,
    random_state: int = 0,
    silhouette_sample: int = 10_000,
    tolerance: float = 0.01,
    minibatch_threshold: int = MINIBATCH_THRESHOLD,
    min_k: int = MARKETER_MIN_K,
    search_sample: int = SEARCH_SAMPLE,
) -> KSearchResult:
    """Fit K-Means for each k and choose one.

    * Each candidate k is fitted on all rows of the transformed matrix ``x`` — or, above
      ``search_sample`` rows, on one seeded sample of that size — with fixed ``random_state`` and
      ``n_init`` (see :func:`fit_kmeans`); its inertia (within-cluster sum of squares, for the
      elbow plot) is on all rows.
    * Silhouette is computed on one seeded random sample of at most ``silhouette_sample`` rows,
      the same sample for every k (exact silhouette is quadratic in n).
    * Choice (:func:`_choose_k`): among k ≥ ``min_k`` (a marketer's floor, unless a smaller k is
      clearly better), the highest silhouette; near-ties within ``tolerance`` go to the smaller k.
    * Candidates are limited to ``2 ≤ k ≤ min(distinct profiles, n − 1)``; the explanation
      says so when the range was cut.

    Raises :class:`SegmentationError` when fewer than two distinct customer profiles exist or no
    candidate remains.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    wanted = sorted({int(k) for k in k_values})
    if not wanted or wanted[0] < 2:
        raise SegmentationError("Candidate numbers of clusters must be at least 2.")
    if n < 3:
        raise SegmentationError(f"Clustering needs at least 3 customers; there are {n}.")
    k_max = _feasible_k_max(x, wanted[-1])
    if k_max < 2:
        raise SegmentationError(
            "All customers have the same recency, frequency and monetary value, so there are no groups to find."
        )
    ks = [k for k in wanted if k <= k_max]
    if not ks:
        raise SegmentationError(
            f"These customers support at most k = {k_max} clusters, fewer than the smallest candidate k = {wanted[0]}."
        )

    fit_index = _sample_index(n, search_sample, random_state + 1)
    x_fit = x[fit_index] if len(fit_index) < n else x
    sample = _sample_index(n, silhouette_sample, random_state)
    xs = x[sample]
    sils: list[float] = []
    inertias: list[float] = []
    labels: dict[int, np.ndarray] = {}
    centers: dict[int, np.ndarray] = {}
    algorithm = ""
    seconds: list[float] = []
    for k in ks:
        started = time.perf_counter()
        model = fit_kmeans(x_fit, k, random_state=random_state, minibatch_threshold=minibatch_threshold)
        centers[k] = model.cluster_centers_
        algorithm = f"{type(model).__name__} (n_init={model.n_init})"
        if x_fit is x:
            labels[k] = model.labels_.astype(np.int32)
            inertias.append(float(model.inertia_))
            ls = labels[k][sample]
        else:  # sampled fit: inertia on every row (one pass), silhouette labels by nearest centre
            with _threads(n):
                inertias.append(float(-model.score(x)))
            ls = model.predict(xs).astype(np.int32)
        n_lab = len(np.unique(ls))
        with _threads(len(xs)):
            sils.append(float(silhouette_score(xs, ls)) if 2 <= n_lab <= len(xs) - 1 else float("nan"))
        seconds.append(time.perf_counter() - started)

    chosen, text = _choose_k(ks, sils, tolerance, min_k=min_k)
    if len(ks) < len(wanted):
        text += (
            f" Larger k were skipped: these customers support at most k = {k_max} (every cluster needs its own"
            " R/F/M profile, and there must be fewer clusters than customers)."
        )
    return KSearchResult(
        k_values=tuple(ks),
        silhouette=tuple(sils),
        inertia=tuple(inertias),
        chosen_k=chosen,
        explanation=text,
        sample_size=len(sample),
        n_customers=n,
        tolerance=tolerance,
        algorithm=algorithm,
        labels=labels,
        centers=centers,
        seconds=tuple(seconds),
        fit_rows=len(x_fit),
    )


# ---- cluster ordering and names -------------------------------------------------------------

LEVEL_NAMES: tuple[str, str, str] = ("low", "mid", "high")
# Recency words are tied to absolute days as well as to percentiles, so a name never contradicts the
# calendar: a cluster whose median customer last bought over a year ago is lapsed/lost ("low") even if
# most customers are older still; over 90 days ago it is never "recent" ("high"); within 30 days it is
# never lapsed.
RECENCY_LAPSED_DAYS = 365
RECENCY_RECENT_DAYS = 90
RECENCY_ACTIVE_DAYS = 30

_NAME_TABLE: dict[tuple[str, str, str], str] = {
    # (recency level, frequency level, monetary level) -> name. Levels are "bigger is better"
    # positions, so recency "high" means recent.
    ("high", "high", "high"): "High-value loyal",
    ("high", "high", "mid"): "Loyal mid-value",
    ("high", "high", "low"): "Loyal low-spend",
    ("high", "mid", "high"): "Active big spenders",
    ("high", "mid", "mid"): "Active mid-value",
    ("high", "mid", "low"): "Active low-spend",
    ("high", "low", "high"): "New big spenders",
    ("high", "low", "mid"): "New mid-value",
    ("high", "low", "low"): "New low-spend",
    ("mid", "high", "high"): "Cooling high-value loyal",
    ("mid", "high", "mid"): "Cooling loyal mid-value",
    ("mid", "high", "low"): "Cooling loyal low-spend",
    ("mid", "mid", "high"): "Occasional big spenders",
    ("mid", "mid", "mid"): "Occasional mid-value",
    ("mid", "mid", "low"): "Occasional low-spend",
    ("mid", "low", "high"): "One-off big spenders",
    ("mid", "low", "mid"): "One-off mid-value",
    ("mid", "low", "low"): "One-off low-spend",
    ("low", "high", "high"): "Lapsed high-value loyal",
    ("low", "high", "mid"): "Lapsed loyal mid-value",
    ("low", "high", "low"): "Lapsed loyal low-spend",
    ("low", "mid", "high"): "Lapsed big spenders",
    ("low", "mid", "mid"): "Lapsed mid-value",
    ("low", "mid", "low"): "Lapsed low-spend",
    ("low", "low", "high"): "Lost one-off big spenders",
    ("low", "low", "mid"): "Lost one-off mid-value",
    ("low", "low", "low"): "Lost one-off low-spend",
}


def cluster_name(r_level: str, f_level: str, m_level: str) -> str:
    """The base name of a cluster from its three levels (each ``low``/``mid``/``high``, bigger
    is better, so recency ``high`` = recent). All 27 combinations have distinct names:

    * recency high → "New …" (low F), "Active …" (mid F) or "… loyal" (high F);
    * recency mid → "One-off …", "Occasional …" or "Cooling … loyal …";
    * recency low → "Lost one-off …", "Lapsed …" or "Lapsed … loyal …";
    * spend words: high → "big spenders"/"high-value", mid → "mid-value", low → "low-spend".
    """
    return _NAME_TABLE[(r_level, f_level, m_level)]


def _positions(values: np.ndarray, population: np.ndarray) -> np.ndarray:
    """Mid-rank percentile of each value within the population: ``(#less + ½·#equal) / n``."""
    pop = np.sort(population)
    lo = np.searchsorted(pop, values, side="left")
    hi = np.searchsorted(pop, values, side="right")
    return (lo + 0.5 * (hi - lo)) / len(pop)


def _levels(position: np.ndarray, value: np.ndarray, population: np.ndarray, *, higher_is_better: bool) -> np.ndarray:
    """low/mid/high: position < ⅓ → low, > ⅔ → high, else mid; a value at the population's worst
    (best) end is always low (high) even when a tie block pushes its mid-rank percentile inward
    (e.g. one-time buyers when most customers bought once). A constant dimension is mid."""
    if population.min() == population.max():
        return np.full(len(position), "mid", dtype=object)
    level = np.where(position < 1 / 3, 0, np.where(position > 2 / 3, 2, 1))
    worst, best = (population.min(), population.max()) if higher_is_better else (population.max(), population.min())
    level = np.where(value == worst, 0, level)
    level = np.where(value == best, 2, level)
    return np.asarray(LEVEL_NAMES, dtype=object)[level]


def cluster_profiles(rfm: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    """Statistics, positions, levels and a unique name for each cluster label.

    Columns: :func:`group_stats` columns plus ``r_position``, ``f_position``, ``m_position`` in
    [0, 1] — the mid-rank percentile of the cluster's **median** (original units) among all
    customers, recency inverted (``1 − percentile``) so that bigger is better on every axis —
    ``r_level``, ``f_level``, ``m_level`` (see :func:`_levels`), and ``name``.

    Recency levels are also held to absolute days (``RECENCY_*_DAYS``): median over 365 days → low,
    over 90 days → at most mid, within 30 days → at least mid.

    Naming rule: :func:`cluster_name` of the three levels. Medians and rank positions move
    little when a few customers are added or removed, so names are stable under small changes
    of the data (tested by dropping 2 % of customers). When several clusters get the same base
    name, they are suffixed " #1", " #2", … in ascending label order (labels from
    :func:`cluster_rfm` are ordered by descending mean monetary value, so #1 is the
    higher-value one).
    """
    labels = np.asarray(labels)
    stats = group_stats(rfm, labels)
    pops = {c: rfm[c].to_numpy(dtype=np.float64) for c in FEATURES}
    medians = {c: stats[f"median_{c}"].to_numpy(dtype=np.float64) for c in FEATURES}
    r_pos = 1.0 - _positions(medians["recency_days"], pops["recency_days"])
    f_pos = _positions(medians["frequency"], pops["frequency"])
    m_pos = _positions(medians["monetary"], pops["monetary"])
    stats["r_position"], stats["f_position"], stats["m_position"] = r_pos, f_pos, m_pos
    r_level = _levels(r_pos, medians["recency_days"], pops["recency_days"], higher_is_better=False)
    days = medians["recency_days"]
    r_level = np.where(days > RECENCY_LAPSED_DAYS, "low", r_level)
    r_level = np.where((days > RECENCY_RECENT_DAYS) & (r_level == "high"), "mid", r_level)
    r_level = np.where((days <= RECENCY_ACTIVE_DAYS) & (r_level == "low"), "mid", r_level)
    stats["r_level"] = r_level.astype(object)
    stats["f_level"] = _levels(f_pos, medians["frequency"], pops["frequency"], higher_is_better=True)
    stats["m_level"] = _levels(m_pos, medians["monetary"], pops["monetary"], higher_is_better=True)
    base = pd.Series(
        [_NAME_TABLE[key] for key in zip(stats["r_level"], stats["f_level"], stats["m_level"], strict=True)],
        index=stats.index,
    )
    dup_count = base.groupby(base).transform("size")
    rank = base.groupby(base).cumcount() + 1
    stats["name"] = np.where(dup_count > 1, base + " #" + rank.astype(str), base)
    stats.index.name = "cluster"
    return stats


@dataclass(frozen=True)
class ClusteringResult:
    """A fitted, value-ordered clustering of customers.

    ``labels[i]`` is the cluster id (0 = highest mean monetary value) of ``rfm`` row ``i``;
    ``names[c]`` the name of cluster ``c``; ``centers`` the cluster centres in transformed
    space in the same order; ``profiles`` one row per cluster (see :func:`cluster_profiles`)
    with the centre in original units added (``center_recency_days`` …).
    """

    k: int
    labels: np.ndarray
    names: tuple[str, ...]
    centers: np.ndarray
    profiles: pd.DataFrame
    transform: RFMTransform
    explanation: str
    search: KSearchResult | None
    random_state: int

    def predict(self, rfm: pd.DataFrame) -> np.ndarray:
        """Cluster ids for (new) customers: nearest centre in the fitted transformed space."""
        z = self.transform.transform(rfm)
        d2 = ((z[:, None, :] - self.centers[None, :, :]) ** 2).sum(axis=2)
        return d2.argmin(axis=1).astype(np.int32)

    def assignments(self, customer_ids: Sequence[Any] | pd.Series) -> pd.DataFrame:
        """``customer_id, cluster, cluster_name`` for the fitted rows."""
        return pd.DataFrame(
            {
                "customer_id": np.asarray(customer_ids),
                "cluster": self.labels,
                "cluster_name": pd.Categorical.from_codes(self.labels, categories=list(self.names)),
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly parameters and metrics (for ``ModelVersion.params`` / ``metrics``)."""
        return {
            "k": self.k,
            "names": list(self.names),
            "centers": self.centers.tolist(),
            "transform": {
                "features": list(FEATURES),
                "mean": list(self.transform.mean),
                "scale": list(self.transform.scale),
            },
            "explanation": self.explanation,
            "random_state": self.random_state,
            "search": self.search.to_dict() if self.search is not None else None,
        }


def _value_order(rfm: pd.DataFrame, raw_labels: np.ndarray, k: int, centers: np.ndarray) -> np.ndarray:
    """Relabelling ``new_id[raw]``: clusters sorted by descending mean monetary, then descending
    mean frequency, ascending mean recency, then centre coordinates (full determinism)."""
    counts = np.bincount(raw_labels, minlength=k).astype(np.float64)
    safe = np.where(counts > 0, counts, 1.0)

    def mean(col: str) -> np.ndarray:
        return np.bincount(raw_labels, weights=rfm[col].to_numpy(dtype=np.float64), minlength=k) / safe

    keys = [centers[:, j] for j in reversed(range(centers.shape[1]))]
    keys += [mean("recency_days"), -mean("frequency"), -mean("monetary")]
    order = np.lexsort(keys)  # last key is primary
    new_id = np.empty(k, dtype=np.int32)
    new_id[order] = np.arange(k, dtype=np.int32)
    return new_id


def cluster_rfm(
    rfm: pd.DataFrame,
    k: int | None = None,
    *,
    k_values: Iterable[int] = DEFAULT_K_VALUES,
    search: bool = True,
    random_state: int = 0,
    silhouette_sample: int = 10_000,
    tolerance: float = 0.01,
    minibatch_threshold: int = MINIBATCH_THRESHOLD,
    min_k: int = MARKETER_MIN_K,
    search_sample: int = SEARCH_SAMPLE,
) -> ClusteringResult:
    """K-Means segmentation of an RFM table, with automatic or overridden k.

    Steps: :class:`RFMTransform` (log1p, monetary clipped at 0, standardise) → :func:`search_k`
    over ``k_values`` (unless ``search=False`` with an explicit ``k``) → the chosen (or the
    override) k → clusters relabelled by descending mean monetary value so ids are stable
    across retrains (:func:`_value_order`) → :func:`cluster_profiles` names.

    ``k`` overrides the automatic choice; the search still runs (for the diagnostics chart)
    unless ``search=False``. The explanation says which rule picked k.

    Raises :class:`SegmentationError` for fewer than 3 customers, all-identical customers
    (no k ≥ 2 can be found) or an override k that the data cannot support.
    """
    _check_rfm(rfm, min_customers=3)
    transform = RFMTransform.fit(rfm)
    x = transform.transform(rfm)

    result: KSearchResult | None = None
    if k is None or search:
        result = search_k(
            x,
            k_values,
            random_state=random_state,
            silhouette_sample=silhouette_sample,
            tolerance=tolerance,
            minibatch_threshold=minibatch_threshold,
            min_k=min_k,
            search_sample=search_sample,
        )
    if k is None:
        assert result is not None
        chosen, explanation = result.chosen_k, result.explanation
    else:
        chosen = int(k)
        if chosen < 2:
            raise SegmentationError("The number of clusters must be at least 2.")
        if result is None or chosen not in result.labels:
            k_max = _feasible_k_max(x, chosen)
            if chosen > k_max:
                raise SegmentationError(
                    f"k = {chosen} clusters were asked for, but these customers support at most k = {k_max} "
                    "(every cluster needs its own R/F/M profile, and there must be fewer clusters than customers)."
                )
        explanation = f"k = {chosen} set by the user."
        if result is not None:
            explanation += f" For comparison, the automatic rule: {result.explanation}"

    if result is not None and chosen in result.labels:
        raw, raw_centers = result.labels[chosen], result.centers[chosen]
    else:
        model = fit_kmeans(x, chosen, random_state=random_state, minibatch_threshold=minibatch_threshold)
        raw, raw_centers = model.labels_.astype(np.int32), model.cluster_centers_

    new_id = _value_order(rfm, raw, chosen, raw_centers)
    labels = new_id[raw]
    centers = np.empty_like(raw_centers)
    centers[new_id] = raw_centers
    profiles = cluster_profiles(rfm, labels)
    original = transform.inverse(centers)
    present = profiles.index.to_numpy()
    for j, col in enumerate(FEATURES):
        profiles[f"center_{col}"] = original[present, j]
    names_by_label = dict(zip(present.tolist(), profiles["name"], strict=True))
    names = tuple(names_by_label.get(c, f"Empty cluster {c}") for c in range(chosen))
    return ClusteringResult(
        k=chosen,
        labels=labels,
        names=names,
        centers=centers,
        profiles=profiles,
        transform=transform,
        explanation=explanation,
        search=result,
        random_state=random_state,
    )


# --------------------------------------------------------------------------------------------
# 4. Statistics
# --------------------------------------------------------------------------------------------


def group_stats(rfm: pd.DataFrame, groups: np.ndarray | pd.Series | pd.Categorical) -> pd.DataFrame:
    """Per-group size, revenue and R/F/M summaries for segments or clusters.

    ``groups`` has one label per ``rfm`` row (matched by position). For a Categorical (e.g. ``segment``) every
    category appears, empty ones with zero counts, in category order; otherwise the groups
    present, sorted. Columns: ``customers, customer_share, revenue, revenue_share,
    mean_/median_recency_days, mean_/median_frequency, mean_/median_monetary``.

    Revenue is the sum of net ``monetary``; ``revenue_share`` divides by the total over all
    customers and is NaN when that total is not positive. Shares of groups can be negative for
    a group whose returns exceed its purchases.
    """
    if len(groups) != len(rfm):
        raise ValueError("groups must have one label per RFM row")
    values = groups.array if isinstance(groups, pd.Series) else groups  # positional, keeps a Categorical
    key = pd.Series(values, index=rfm.index, name="group")
    observed = not isinstance(key.dtype, pd.CategoricalDtype)
    frame = rfm[list(FEATURES)].copy()
    grouped = frame.groupby(key, observed=observed, sort=True)
    agg = grouped.agg(["mean", "median"])
    agg.columns = [f"{stat}_{col}" for col, stat in agg.columns]
    out = pd.DataFrame(index=agg.index)
    out["customers"] = grouped.size().astype(np.int64)
    total_n = len(rfm)
    out["customer_share"] = out["customers"] / total_n if total_n else np.nan
    out["revenue"] = grouped["monetary"].sum().astype(np.float64)
    total_rev = float(rfm["monetary"].sum())
    out["revenue_share"] = out["revenue"] / total_rev if total_rev > 0 else np.nan
    for col in FEATURES:
        out[f"mean_{col}"] = agg[f"mean_{col}"]
        out[f"median_{col}"] = agg[f"median_{col}"]
    out.index.name = "group"
    return out


def pareto_curve(monetary: np.ndarray | pd.Series, *, max_points: int = 1001) -> pd.DataFrame:
    """The revenue Pareto (Lorenz-type) curve: cumulative share of revenue vs share of customers.

    Customers are sorted by monetary value, biggest first; net-negative customers count as 0
    (their refunds concern purchases outside the window), so the curve is non-decreasing,
    concave, starts at (0, 0) and ends at (1, 1). For large inputs the curve is thinned to at
    most ``max_points`` points by evenly spaced customer positions (endpoints kept); a thinned
    concave polyline stays concave. Columns: ``customer_share``, ``revenue_share``.

    Raises :class:`SegmentationError` when there are no customers or no positive revenue.
    """
    m = np.clip(np.asarray(monetary, dtype=np.float64), 0.0, None)
    n = m.size
    if n == 0:
        raise SegmentationError("There are no customers, so there is no revenue curve.")
    total = m.sum()
    if not total > 0:
        raise SegmentationError("Customers have no positive net revenue, so there is no revenue curve.")
    cum = np.concatenate(([0.0], np.cumsum(np.sort(m)[::-1]))) / total
    cum[-1] = 1.0
    pos = np.arange(n + 1)
    if n + 1 > max_points:
        pos = np.unique(np.rint(np.linspace(0, n, max(max_points, 2))).astype(np.int64))
    return pd.DataFrame({"customer_share": pos / n, "revenue_share": np.minimum(cum[pos], 1.0)})


def pareto_share_at(curve: pd.DataFrame, customer_share: float = 0.2) -> float:
    """Share of revenue brought by the top ``customer_share`` of customers (linear interpolation)."""
    return float(np.interp(customer_share, curve["customer_share"], curve["revenue_share"]))


def rf_grid(scored: pd.DataFrame) -> pd.DataFrame:
    """Customers and revenue in each of the 25 (R, F) score cells, empty cells included.

    Input: the output of :func:`score_rfm`. Columns: ``r_score, f_score, customers, revenue``,
    25 rows ordered by R then F.
    """
    for col in ("r_score", "f_score", "monetary"):
        if col not in scored.columns:
            raise SegmentationError(f"The scored table is missing the column {col!r}.")
    cell = (scored["r_score"].to_numpy(dtype=np.int64) - 1) * 5 + scored["f_score"].to_numpy(dtype=np.int64) - 1
    counts = np.bincount(cell, minlength=25)
    revenue = np.bincount(cell, weights=scored["monetary"].to_numpy(dtype=np.float64), minlength=25)
    r, f = np.divmod(np.arange(25), 5)
    return pd.DataFrame({"r_score": r + 1, "f_score": f + 1, "customers": counts.astype(np.int64), "revenue": revenue})


def _label_order(*series: pd.Series) -> list[Any]:
    """Category order for migration axes: the segment order for known segment names, then the
    categories of categorical inputs, then any other labels sorted as strings."""
    seen: list[Any] = []
    for s in series:
        cats = list(s.cat.categories) if isinstance(s.dtype, pd.CategoricalDtype) else []
        for c in cats:
            if c not in seen:
                seen.append(c)
    present = set().union(*(set(pd.unique(s.dropna())) for s in series))
    extra = sorted((p for p in present if p not in seen), key=str)
    ordered = seen + extra
    rank = {name: i for i, name in enumerate(SEGMENT_NAMES)}
    known = [c for c in ordered if c in rank]
    if len(known) == len(ordered):
        ordered = sorted(ordered, key=lambda c: rank[c])
    return ordered


def migration_matrix(before: pd.Series, after: pd.Series, *, include_empty: bool = False) -> pd.DataFrame:
    """Counts of customers moving from segment to segment between two runs.

    ``before`` and ``after`` map customer id (index) → segment or cluster name. Rows are the
    earlier labels plus :data:`NEW_LABEL` (customers only in the later run), columns the later
    labels plus :data:`GONE_LABEL` (customers only in the earlier run); the cell
    (:data:`NEW_LABEL`, :data:`GONE_LABEL`) is always 0. The matrix sums to the number of
    distinct customers in either run. Labels present in neither run are dropped unless
    ``include_empty`` (then all categories of categorical inputs are kept).

    Raises :class:`SegmentationError` if a customer appears twice in one run.
    """
    for name, s in (("earlier", before), ("later", after)):
        if s.index.has_duplicates:
            raise SegmentationError(f"The {name} run lists some customers more than once.")
    joined = pd.concat([before.rename("before"), after.rename("after")], axis=1, join="outer")
    labels = _label_order(before, after)
    if not include_empty:
        used = set(pd.unique(before.dropna())) | set(pd.unique(after.dropna()))
        labels = [c for c in labels if c in used]
    row_cats = [*labels, NEW_LABEL]
    col_cats = [*labels, GONE_LABEL]
    b = pd.Categorical(joined["before"].astype(object).where(joined["before"].notna(), NEW_LABEL), categories=row_cats)
    a = pd.Categorical(joined["after"].astype(object).where(joined["after"].notna(), GONE_LABEL), categories=col_cats)
    codes = b.codes.astype(np.int64) * len(col_cats) + a.codes
    counts = np.bincount(codes, minlength=len(row_cats) * len(col_cats)).reshape(len(row_cats), len(col_cats))
    return pd.DataFrame(
        counts.astype(np.int64),
        index=pd.Index(row_cats, name="before"),
        columns=pd.Index(col_cats, name="after"),
    )
