"""CLTV's columns and filters in the customer table (registered from CltvConfig.ready)."""

from __future__ import annotations

from typing import Any

from django.db.models import FloatField, QuerySet

from cltv import selectors
from cltv.models import CLTVScore
from rfm_portal.customers.table import TableColumn, TableContribution, TableFilter, join_version, number


def annotate(qs: QuerySet) -> QuerySet:
    return join_version(qs, "cltv_scores", selectors.active_version(), {
        "clv_p50": ("clv_p50", FloatField()), "clv_p10": ("clv_p10", FloatField()),
        "clv_p90": ("clv_p90", FloatField()), "p_alive": ("p_alive", FloatField())})


def _scores() -> QuerySet[CLTVScore]:
    return CLTVScore.objects.filter(model_version=selectors.active_version())


def _apply_min_clv(qs: QuerySet, value: Any) -> QuerySet:
    return qs.filter(pk__in=_scores().filter(clv_p50__gte=value).values("customer_id"))


def _apply_min_p_alive(qs: QuerySet, value: Any) -> QuerySet:
    return qs.filter(pk__in=_scores().filter(p_alive__gte=value).values("customer_id"))


CONTRIBUTION = TableContribution(
    order=20, name="cltv", annotate=annotate,
    columns=[
        TableColumn("clv_p50", "CLV", kind="interval", extra=(("clv_p10", "CLV P10"), ("clv_p90", "CLV P90")),
                    help="Customer lifetime value over the model's horizon: the middle estimate (P50), "
                         "with an 80 % range (P10–P90) underneath."),
        TableColumn("p_alive", "Still active", kind="percent",
                    help="P(alive): the CLTV model's probability that the customer has not silently left."),
    ],
    filters=[
        TableFilter("min_clv", "CLV (P50) at least", "number", apply=_apply_min_clv, validate=number(low=-1e12)),
        TableFilter("min_p_alive", "Still active at least (0–1)", "number", apply=_apply_min_p_alive,
                    validate=number(0, 1)),
    ],
)
