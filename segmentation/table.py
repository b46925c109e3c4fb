"""Segmentation's columns and filters in the customer table (registered from SegmentationConfig.ready)."""

from __future__ import annotations

from typing import Any

from django.db.models import CharField, IntegerField, QuerySet

from rfm_portal.customers.table import TableColumn, TableContribution, TableFilter, choice_list, join_version
from segmentation import selectors
from segmentation.models import RFMScore
from segmentation.segment_map import SEGMENT_NAMES


def annotate(qs: QuerySet) -> QuerySet:
    return join_version(qs, "rfm_scores", selectors.active_version(), {
        "segment": ("segment", CharField()), "cluster": ("cluster", IntegerField()),
        "cluster_name": ("cluster_name", CharField())})


def _scores() -> QuerySet[RFMScore]:
    return RFMScore.objects.filter(model_version=selectors.active_version())


def _cluster_choices() -> list[tuple[str, str]]:
    return [(str(cluster), f"{cluster} · {name}") for cluster, name in selectors.choices()[1]]


def _apply_segments(qs: QuerySet, value: Any) -> QuerySet:
    return qs.filter(pk__in=_scores().filter(segment__in=value).values("customer_id"))


def _apply_clusters(qs: QuerySet, value: Any) -> QuerySet:
    return qs.filter(pk__in=_scores().filter(cluster__in=[int(v) for v in value]).values("customer_id"))


def _validate_clusters(value: Any) -> list[str]:
    values = choice_list()(value)
    if not all(v.isdigit() for v in values):
        from rfm_portal.customers.audiences import AudienceError

        raise AudienceError("Clusters are numbers (0 = the most valuable cluster).")
    return values


CONTRIBUTION = TableContribution(
    order=10, name="segmentation", annotate=annotate,
    columns=[
        TableColumn("segment", "Segment", help="Named RFM segment of the active segmentation."),
        TableColumn("cluster", "Cluster", kind="cluster",
                    help="K-Means cluster (0 = highest mean spend) and its name."),
    ],
    filters=[
        TableFilter("segments", "Segment is one of", "choices", apply=_apply_segments,
                    validate=choice_list(lambda: SEGMENT_NAMES), choices=lambda: [(s, s) for s in SEGMENT_NAMES]),
        TableFilter("clusters", "Cluster is one of", "choices", apply=_apply_clusters,
                    validate=_validate_clusters, choices=_cluster_choices),
    ],
)
