"""Reads for the Segmentation capability: the RFM aggregate over transactions (in the database),
the active model version, its scores and the statistics stored with it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from django.db import connection
from django.db.models import (
    Count,
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    Max,
    Min,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import Abs, Coalesce, TruncDay

from rfm_portal.customers.frames import copy_frame, transaction_frame
from rfm_portal.customers.models import Customer, Transaction
from rfm_portal.mlops import selectors as mlops_selectors
from rfm_portal.mlops.models import ModelVersion
from segmentation.models import RFMScore, SegmentationReport
from segmentation.pipeline import KSearchResult, SegmentationError
from segmentation.segment_map import SEGMENT_NAMES, SEGMENTS, SegmentInfo

KIND = "segmentation"
RFM_FRAME_COLUMNS = ("customer_id", "recency_days", "frequency", "monetary", "first_purchase", "last_purchase")
_ZERO = Value(0, output_field=Transaction._meta.get_field("amount"))


# --- RFM in the database -------------------------------------------------------------------


def default_cutoff() -> dt.datetime | None:
    """The day after the last transaction, at midnight UTC (None when there are no transactions)."""
    last = Transaction.objects.aggregate(last=Max("invoiced_at"))["last"]
    if last is None:
        return None
    last = last.astimezone(dt.UTC)
    return dt.datetime.combine(last.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


def cutoff_datetime(cutoff: dt.date | dt.datetime | str) -> dt.datetime:
    """A cut-off as midnight UTC of its calendar day (the rule of ``segmentation.pipeline.rfm_table``)."""
    if isinstance(cutoff, str):
        try:
            cutoff = dt.date.fromisoformat(cutoff[:10])
        except ValueError as exc:
            raise SegmentationError(f"Cut-off {cutoff!r} is not a date (use YYYY-MM-DD).") from exc
    if isinstance(cutoff, dt.datetime):
        cutoff = (cutoff if cutoff.tzinfo else cutoff.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).date()
    return dt.datetime.combine(cutoff, dt.time(), tzinfo=dt.UTC)


def rfm_queryset(cutoff: dt.datetime) -> QuerySet:
    """One aggregate query: per customer with a purchase strictly before ``cutoff`` (midnight UTC).

    Same definitions as :func:`segmentation.pipeline.rfm_table`: purchases are rows with
    ``is_return`` false; recency = cut-off day − UTC day of the last purchase (whole days, computed
    in the database as a duration between two midnights); frequency = distinct purchase invoices;
    monetary = purchase amounts − |return amounts|; customers with only returns are left out
    (HAVING frequency > 0).
    """
    purchase = Q(is_return=False)
    return (
        Transaction.objects.filter(invoiced_at__lt=cutoff)
        .values("customer_id")
        .annotate(
            frequency=Count("invoice", distinct=True, filter=purchase),
            first_purchase=Min("invoiced_at", filter=purchase),
            last_purchase=Max("invoiced_at", filter=purchase),
            recency=ExpressionWrapper(
                Value(cutoff, output_field=DateTimeField())
                - TruncDay(Max("invoiced_at", filter=purchase), tzinfo=dt.UTC),
                output_field=DurationField(),
            ),
            monetary=Coalesce(Sum("amount", filter=purchase), _ZERO)
            - Coalesce(Sum(Abs("amount"), filter=Q(is_return=True)), _ZERO),
        )
        .filter(frequency__gt=0)
        .order_by("customer_id")
        .values_list("customer_id", "recency", "frequency", "monetary", "first_purchase", "last_purchase")
    )


def rfm_frame(cutoff: dt.date | dt.datetime | str | None = None) -> pd.DataFrame:
    """The RFM table from the database, in the column layout of ``pipeline.rfm_table``.

    ``customer_id`` is the Customer primary key. The cut-off used is in ``attrs["cutoff"]``
    (a pandas Timestamp, midnight UTC). Raises :class:`SegmentationError` when there is nothing
    to segment.
    """
    cut = default_cutoff() if cutoff is None else cutoff_datetime(cutoff)
    if cut is None:
        raise SegmentationError("There are no transactions yet, so there is nothing to segment. Import some first.")
    frame = _copy_rfm(rfm_queryset(cut))
    if frame.empty:
        raise SegmentationError(f"No customer made a purchase before the cut-off {cut.date().isoformat()}.")
    frame.attrs["cutoff"] = pd.Timestamp(cut).tz_convert("UTC")
    return frame


def _copy_rfm(queryset: QuerySet) -> pd.DataFrame:
    """Run the RFM aggregate under COPY: whole days, exact ten-thousandths, epoch microseconds."""
    if connection.vendor != "postgresql":  # the embedded SQLite: no COPY, the ORM rows
        rows = list(queryset)
        if not rows:
            return pd.DataFrame(columns=list(RFM_FRAME_COLUMNS))
        ids, recency, frequency, monetary, first, last = zip(*rows, strict=True)
        return pd.DataFrame({
            "customer_id": np.fromiter(ids, dtype=np.int64, count=len(rows)),
            "recency_days": np.fromiter((r.days for r in recency), dtype=np.int64, count=len(rows)),
            "frequency": np.fromiter(frequency, dtype=np.int64, count=len(rows)),
            "monetary": np.fromiter((float(m) for m in monetary), dtype=np.float64, count=len(rows)),
            "first_purchase": pd.to_datetime(list(first), utc=True).as_unit("ns"),
            "last_purchase": pd.to_datetime(list(last), utc=True).as_unit("ns"),
        })
    sql, params = queryset.query.sql_with_params()
    outer = (
        "SELECT customer_id, floor(extract(epoch FROM recency) / 86400)::int8, frequency, (monetary * 10000)::int8,"
        " (extract(epoch FROM first_purchase) * 1000000)::int8, (extract(epoch FROM last_purchase) * 1000000)::int8"
        f" FROM ({sql}) rfm ORDER BY customer_id"
    )
    frame = copy_frame(outer, params, {"customer_id": "int64", "recency_days": "int64", "frequency": "int64",
                                       "monetary": "int64", "first_purchase": "int64", "last_purchase": "int64"})
    frame["monetary"] = frame["monetary"].to_numpy() / 1e4
    for column in ("first_purchase", "last_purchase"):
        frame[column] = pd.to_datetime(frame[column].to_numpy() * 1000, utc=True)
    return frame


def transactions_frame(cutoff: dt.datetime | None = None) -> pd.DataFrame:
    """The raw transaction rows in the input layout of ``pipeline.rfm_table`` (for checks and benches)."""
    return transaction_frame(("customer_id", "invoice", "invoiced_at", "amount", "is_return"), before=cutoff)


# --- The active version and what was stored with it -----------------------------------------


def active_version() -> ModelVersion | None:
    return mlops_selectors.active_version(KIND)


def latest_version() -> ModelVersion | None:
    """The newest segmentation version of any status (to show a failed or running training)."""
    return mlops_selectors.latest_version(KIND)


SEGMENT_INFO: dict[str, SegmentInfo] = {s.name: s for s in SEGMENTS}


@dataclass(frozen=True)
class SegmentationSummary:
    """The statistics of one version, rebuilt from its metrics as the frames the charts take."""

    version: ModelVersion
    segments: pd.DataFrame  # pipeline.group_stats, index = segment name (SEGMENT_NAMES order)
    clusters: pd.DataFrame  # pipeline.cluster_profiles + centres, index = cluster id
    pareto: pd.DataFrame  # customer_share, revenue_share
    rf_grid: pd.DataFrame  # r_score, f_score, customers, revenue
    search: KSearchResult | None
    migration: pd.DataFrame | None  # index before, columns after
    migration_from: int | None  # the version it is compared with

    @property
    def metrics(self) -> dict[str, Any]:
        return self.version.metrics

    def segment_rows(self) -> list[dict[str, Any]]:
        """Segment table rows with the marketer's description and action, in segment order."""
        rows = []
        for name, row in self.segments.iterrows():
            info = SEGMENT_INFO[str(name)]
            rows.append({"name": name, "info": info, **_clean(row.to_dict())})
        return rows

    def cluster_rows(self) -> list[dict[str, Any]]:
        return [{"cluster": int(cid), **_clean(row.to_dict())} for cid, row in self.clusters.iterrows()]


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """NaN (an empty segment's means) as None, numpy scalars as Python values."""
    out = {}
    for key, value in row.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and np.isnan(value):
            value = None
        out[key] = value
    if out.get("customers") is not None:
        out["customers"] = int(out["customers"])  # iterrows upcasts a mixed row to float
    return out


def summary(mv: ModelVersion) -> SegmentationSummary:
    m = SegmentationReport.objects.get(model_version=mv).data
    segments = pd.DataFrame(m["segments"]).set_index("name").reindex(list(SEGMENT_NAMES))
    segments["customers"] = segments["customers"].fillna(0).astype(np.int64)
    clusters = pd.DataFrame(m["clusters"]).set_index("cluster")
    search = None
    if m.get("k_search"):
        s = m["k_search"]
        search = KSearchResult(
            k_values=tuple(s["k_values"]),
            silhouette=tuple(np.nan if v is None else v for v in s["silhouette"]),
            inertia=tuple(s["inertia"]),
            chosen_k=s["chosen_k"],
            explanation=s["explanation"],
            sample_size=s["sample_size"],
            n_customers=s["n_customers"],
            tolerance=s["tolerance"],
            algorithm=s["algorithm"],
        )
    migration = None
    if m.get("migration"):
        mig = m["migration"]
        migration = pd.DataFrame(
            mig["counts"],
            index=pd.Index(mig["before"], name="before"),
            columns=pd.Index(mig["after"], name="after"),
        )
    return SegmentationSummary(
        version=mv,
        segments=segments,
        clusters=clusters,
        pareto=pd.DataFrame(m["pareto_curve"]),
        rf_grid=pd.DataFrame(m["rf_grid"]),
        search=search,
        migration=migration,
        migration_from=(m.get("migration") or {}).get("from_version"),
    )


# --- Scores ---------------------------------------------------------------------------------


def score_list(
    mv: ModelVersion, *, segment: str = "", cluster: int | None = None, search: str = ""
) -> QuerySet[RFMScore]:
    """Scores of one version, optionally one segment or cluster, customer id starting with ``search``.

    Ordered by monetary value, highest first.
    """
    qs = RFMScore.objects.filter(model_version=mv).select_related("customer")
    if segment:
        qs = qs.filter(segment=segment)
    if cluster is not None:
        qs = qs.filter(cluster=cluster)
    search = search.strip()
    if search:
        qs = qs.filter(customer__external_id__istartswith=search)
    return qs.order_by(F("monetary").desc(), "customer__external_id")


def compute_choices(versions: dict[str, ModelVersion | None]) -> dict[str, Any]:
    """The segment names and (cluster, name) pairs the active segmentation gave customers (stored as the page
    summary ``segmentation.choices``, for the filter forms)."""
    mv = versions.get(KIND)
    if mv is None:
        return {"segments": [], "clusters": []}
    scores = RFMScore.objects.filter(model_version=mv).order_by()
    return {"segments": sorted(scores.values_list("segment", flat=True).distinct()),
            "clusters": sorted(scores.values_list("cluster", "cluster_name").distinct())}


def choices() -> tuple[list[str], list[tuple[int, str]]]:
    """(segment names, [(cluster, name)]) of the active segmentation, sorted; empty without one."""
    from rfm_portal.dashboard import summaries

    stored = summaries.get("segmentation.choices")
    return stored["segments"], [(int(c), str(name)) for c, name in stored["clusters"]]


def customer_score(customer: Customer, mv: ModelVersion | None = None) -> RFMScore | None:
    mv = mv or active_version()
    if mv is None:
        return None
    return RFMScore.objects.filter(model_version=mv, customer=customer).select_related("model_version").first()


def version_segments(mv: ModelVersion) -> pd.Series:
    """customer id → segment name of one version (for migration between runs)."""
    rows = list(RFMScore.objects.filter(model_version=mv).values_list("customer_id", "segment"))
    ids = [r[0] for r in rows]
    return pd.Series([r[1] for r in rows], index=pd.Index(ids, name="customer_id"), dtype=object, name="segment")


def score_counts(mv: ModelVersion) -> dict[str, int]:
    """Stored score rows per segment (a check that the table matches the metrics)."""
    return dict(RFMScore.objects.filter(model_version=mv).values_list("segment").annotate(n=Count("id")))


def segment_frame(mv: ModelVersion) -> pd.DataFrame:
    """customer pk → segment, cluster, cluster_name under ``mv`` (the campaign planner's audience and summary)."""
    rows = RFMScore.objects.filter(model_version=mv).values_list("customer_id", "segment", "cluster",
                                                                 "cluster_name").order_by()
    return pd.DataFrame.from_records(list(rows.iterator(chunk_size=50_000)),
                                     columns=["customer_id", "segment", "cluster", "cluster_name"]
                                     ).set_index("customer_id")
