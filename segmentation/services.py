"""Segmentation training: RFM in the database → scores, segments, K-Means → registry + score rows."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any, Protocol

import numpy as np
import pandas as pd
from django.db import transaction

from rfm_portal.core.bulk_write import copy_rows
from rfm_portal.mlops.models import Job, ModelVersion
from rfm_portal.mlops.services import (
    complete_model_version,
    fail_model_version,
    promote,
    start_model_version,
    write_artifact,
)
from segmentation import selectors
from segmentation.models import RFMScore, SegmentationReport
from segmentation.pipeline import (
    DEFAULT_K_VALUES,
    MARKETER_MIN_K,
    ClusteringResult,
    SegmentationError,
    cluster_rfm,
    group_stats,
    migration_matrix,
    pareto_curve,
    pareto_share_at,
    rf_grid,
    score_rfm,
)
from segmentation.segment_map import SEGMENT_NAMES

logger = logging.getLogger(__name__)

KIND = selectors.KIND
TRANSFORM = "log1p (monetary clipped at 0) + standardise; K-Means (k-means++, fixed seed)"
PARETO_POINTS = 201
RANDOM_STATE = 0

__all__ = ["SegmentationError", "train_segmentation"]


class ProgressReporter(Protocol):
    def report(self, progress: int, message: str = "") -> None: ...


class _Silent:
    def report(self, progress: int, message: str = "") -> None:
        logger.debug("segmentation %s%% %s", progress, message)


def train_segmentation(
    *,
    cutoff: dt.date | dt.datetime | str | None = None,
    k: int | None = None,
    user: Any = None,
    reporter: ProgressReporter | None = None,
) -> ModelVersion:
    """Train, store and activate a segmentation model; returns the new active ModelVersion.

    ``cutoff``: the data cut-off day (default: the day after the last transaction); ``k``: an
    override of the automatic number of clusters. Any error marks the version failed, removes its
    score rows and re-raises; the previously active version and its scores are untouched.
    A :class:`SegmentationError` carries a message for the portal user.
    """
    progress = reporter or _Silent()
    if k is not None and int(k) < 2:
        raise SegmentationError("The number of clusters must be at least 2.")
    params = {
        "cutoff": None if cutoff is None else selectors.cutoff_datetime(cutoff).date().isoformat(),
        "k_override": None if k is None else int(k),
        "k_candidates": list(DEFAULT_K_VALUES),
        "k_floor": MARKETER_MIN_K,
        "transform": TRANSFORM,
        "random_state": RANDOM_STATE,
    }
    previous = selectors.active_version()
    mv = start_model_version(KIND, params, user=user)
    job = getattr(reporter, "job", None)
    if isinstance(job, Job):
        Job.objects.filter(pk=job.pk).update(model_version=mv)
        job.model_version = mv
    try:
        progress.report(5, "Computing recency, frequency and monetary value in the database")
        rfm = selectors.rfm_frame(cutoff)
        cut: pd.Timestamp = rfm.attrs["cutoff"]
        ModelVersion.objects.filter(pk=mv.pk).update(data_cutoff=cut.to_pydatetime())
        mv.data_cutoff = cut.to_pydatetime()
        n = len(rfm)
        progress.report(25, f"Scoring R, F, M and naming segments for {n:,} customers")
        scored = score_rfm(rfm)
        progress.report(35, "Clustering: fitting K-Means for each candidate k")
        clustering = cluster_rfm(rfm, k=None if k is None else int(k), random_state=RANDOM_STATE)
        progress.report(70, f"k = {clustering.k}; computing statistics")
        metrics, report = _metrics(scored, clustering, previous)
        progress.report(75, "Writing the model artifact")
        path, _sha = write_artifact(KIND, mv.version, _artifact(clustering, cut))
        progress.report(80, f"Storing {n:,} customer scores")
        with transaction.atomic():
            _store_scores(mv, scored, clustering)
            SegmentationReport.objects.create(model_version=mv, data=report)
        progress.report(95, "Registering and activating the model")
        complete_model_version(mv, metrics, path, model_card=_model_card(mv, metrics, cut))
        promote(mv)
    except Exception as error:
        message = str(error) if isinstance(error, SegmentationError) else f"{type(error).__name__}: {error}"
        try:
            RFMScore.objects.filter(model_version_id=mv.pk).delete()
            SegmentationReport.objects.filter(model_version_id=mv.pk).delete()
        except Exception:  # never let the clean-up hide the real error or skip marking the failure
            logger.exception("could not remove the rows of failed %s", mv)
        fail_model_version(mv, message)
        raise
    progress.report(
        100, f"Segmentation v{mv.version} is active: {metrics['customers']:,} customers, k = {metrics['k']}"
    )
    mv.refresh_from_db()
    return mv


# --- Metrics, artifact, model card ----------------------------------------------------------


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-safe records: numpy scalars to Python, NaN to None."""
    out = []
    for row in frame.to_dict(orient="records"):
        clean = {}
        for key, value in row.items():
            if isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, float) and np.isnan(value):
                value = None
            clean[str(key)] = value
        out.append(clean)
    return out


def _metrics(
    scored: pd.DataFrame, clustering: ClusteringResult, previous: ModelVersion | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(headline metrics for the registry, the detailed report behind the pages)."""
    segments = group_stats(scored, scored["segment"])
    for col in ("r_score", "f_score", "m_score"):
        segments[f"mean_{col}"] = scored.groupby(scored["segment"], observed=False)[col].mean()
    segments = segments.reset_index().rename(columns={"group": "name"})
    segment_records = _records(segments)
    profiles = clustering.profiles.reset_index()
    curve = (
        pareto_curve(scored["monetary"], max_points=PARETO_POINTS)
        if scored["monetary"].clip(lower=0).sum() > 0
        else None
    )
    search = clustering.search.to_dict() if clustering.search is not None else None
    migration = _migration(scored, previous)
    metrics: dict[str, Any] = {
        "customers": len(scored),
        "k": clustering.k,
        "k_explanation": clustering.explanation,
        "silhouette_by_k": dict(zip(map(str, search["k_values"]), search["silhouette"], strict=True)) if search else {},
        "inertia_by_k": (
            {str(k): round(v, 1) for k, v in zip(search["k_values"], search["inertia"], strict=True)} if search else {}
        ),
        "total_revenue": round(float(scored["monetary"].sum()), 2),
        "segment_counts": {str(r["name"]): int(r["customers"]) for r in segment_records},
        "revenue_shares": {
            str(r["name"]): None if r["revenue_share"] is None else round(r["revenue_share"], 4)
            for r in segment_records
        },
        "pareto_top20_share": pareto_share_at(curve, 0.2) if curve is not None else None,
        "cluster_names": list(clustering.names),
        "migration_from_version": migration["from_version"] if migration else None,
        "customers_moved_segment": migration["moved"] if migration else None,
    }
    report: dict[str, Any] = {
        "segments": segment_records,
        "clusters": _records(profiles),
        "pareto_curve": _records(curve) if curve is not None else [],
        "rf_grid": _records(rf_grid(scored)),
        "k_search": search,
        "migration": migration,
    }
    return metrics, report


def _migration(scored: pd.DataFrame, previous: ModelVersion | None) -> dict[str, Any] | None:
    """Segment migration from the version active before this run (None for the first run)."""
    if previous is None:
        return None
    before = selectors.version_segments(previous)
    after = pd.Series(np.asarray(scored["segment"], dtype=object), index=scored["customer_id"].to_numpy())
    matrix = migration_matrix(before, after)
    return {
        "from_version": previous.version,
        "before": [str(v) for v in matrix.index],
        "after": [str(v) for v in matrix.columns],
        "counts": matrix.to_numpy(dtype=np.int64).tolist(),
        "moved": int(sum(matrix.at[b, a] for b in matrix.index for a in matrix.columns if b != a)),
    }


def _artifact(clustering: ClusteringResult, cutoff: pd.Timestamp) -> dict[str, Any]:
    """What scoring a new customer needs: the transform, centres and names (no per-customer arrays)."""
    search = clustering.search
    slim_search = dataclasses.replace(search, labels={}, centers={}) if search is not None else None
    slim = dataclasses.replace(clustering, labels=np.empty(0, dtype=np.int32), search=slim_search)
    return {"clustering": slim, "cutoff": cutoff.isoformat(), "segment_names": list(SEGMENT_NAMES)}


def _model_card(mv: ModelVersion, metrics: dict[str, Any], cutoff: pd.Timestamp) -> str:
    top = metrics["pareto_top20_share"]
    biggest = max(metrics["segment_counts"].items(), key=lambda item: item[1])
    return "\n".join(
        [
            f"RFM segmentation v{mv.version}",
            "",
            "What it is: recency, frequency and monetary value per customer, quintile scores R/F/M (1-5), a named "
            "segment from the documented R x FM rule map, and K-Means clusters on the same three values.",
            f"Data cut-off: {cutoff.date().isoformat()} 00:00 UTC (transactions strictly before it). "
            f"{metrics['customers']:,} customers with at least one purchase; customers with only returns are left out.",
            "Definitions: recency = days from the last purchase day to the cut-off day; frequency = distinct purchase "
            "invoices; monetary = purchases minus returns (net revenue).",
            "Scores: rank-based quintiles (ties share a score; all-equal values score 3); the customers with the "
            "fewest orders (often the one-time buyers) score F = 1. Segment = grid cell of R and "
            "FM = ceil((F + M) / 2); every customer gets exactly one segment.",
            f"Clusters: {TRANSFORM}. {metrics['k_explanation']}",
            "Cluster names: low/mid/high level of each cluster's median recency, frequency and monetary value among "
            "all customers (e.g. 'Lapsed big spenders'); recency words also follow the calendar (median last purchase "
            "over 365 days ago: lapsed/lost; over 90 days: never recent). Ids are ordered by mean monetary value "
            "(0 = highest).",
            f"Largest segment: {biggest[0]} ({biggest[1]:,} customers)."
            + (f" The top 20% of customers bring {top:.0%} of net revenue." if top is not None else ""),
            "Limitations: quintiles are relative to this customer base and cut-off, so a score is not comparable "
            "across data sets; RFM ignores what customers buy, margins and acquisition channel; K-Means assumes "
            "roughly spherical groups in the transformed space and the silhouette rule favours few clusters (hence "
            "the floor of 4 groups); one-off buyers dominate frequency ties. Use it to prioritise, not to predict.",
        ]
    )


# --- Score rows -----------------------------------------------------------------------------


def _score_columns(mv: ModelVersion, scored: pd.DataFrame, clustering: ClusteringResult) -> dict[str, list]:
    names = np.asarray(clustering.names, dtype=object)
    n = len(scored)
    return {
        "model_version_id": [mv.pk] * n,
        "customer_id": scored["customer_id"].astype(np.int64).tolist(),
        "recency_days": scored["recency_days"].astype(np.int64).tolist(),
        "frequency": scored["frequency"].astype(np.int64).tolist(),
        "monetary": [f"{v:.4f}" for v in scored["monetary"].to_numpy(dtype=np.float64)],  # as the ORM rounds
        "first_purchase": pd.DatetimeIndex(scored["first_purchase"]).to_pydatetime().tolist(),
        "last_purchase": pd.DatetimeIndex(scored["last_purchase"]).to_pydatetime().tolist(),
        "r_score": scored["r_score"].astype(np.int64).tolist(),
        "f_score": scored["f_score"].astype(np.int64).tolist(),
        "m_score": scored["m_score"].astype(np.int64).tolist(),
        "rfm_code": scored["rfm_code"].astype(str).tolist(),
        "segment": np.asarray(scored["segment"], dtype=object).tolist(),
        "cluster": clustering.labels.astype(np.int64).tolist(),
        "cluster_name": names[clustering.labels].tolist(),
    }


def _store_scores(mv: ModelVersion, scored: pd.DataFrame, clustering: ClusteringResult) -> int:
    """Write one RFMScore per customer (binary COPY on PostgreSQL, bulk_create elsewhere).

    Not chunked over workers like the other models' scores: R/F/M scores are quintile ranks among
    all customers and the clusters are the fit's own labels, so scoring *is* the fit; what is left
    is this write, about a second per 100k rows by COPY.
    """
    return copy_rows(RFMScore, _score_columns(mv, scored, clustering))
