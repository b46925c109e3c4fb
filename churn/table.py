"""Churn's columns and filters in the customer table (registered from ChurnConfig.ready).

"Risk rising" compares a customer's risk under the active churn version with the previous usable
version (the newest earlier version that finished training): rising = up by RISING_BY or more.
"""

from __future__ import annotations

from typing import Any

from django.db.models import CharField, F, FloatField, QuerySet, Value

from churn import selectors
from churn.models import ChurnScore
from rfm_portal.customers.table import (
    TableColumn,
    TableContribution,
    TableFilter,
    choice_list,
    flag,
    join_version,
    number,
)
from rfm_portal.mlops.models import ModelVersion

RISING_BY = 0.05  # 5 percentage points: smaller moves are retraining noise, not news
BANDS = dict(ChurnScore.Band.choices)


def previous_version(active: ModelVersion | None) -> ModelVersion | None:
    if active is None:
        return None
    return (ModelVersion.objects.filter(kind=selectors.KIND, version__lt=active.version)
            .exclude(status__in=[ModelVersion.Status.TRAINING, ModelVersion.Status.FAILED])
            .order_by("-version").first())


def annotate(qs: QuerySet) -> QuerySet:
    active = selectors.active_version()
    qs = join_version(qs, "churn_scores", active, {
        "churn_risk": ("probability", FloatField()), "risk_band": ("risk_band", CharField())})
    previous = previous_version(active)
    if previous is None:
        return qs.annotate(risk_change=Value(None, output_field=FloatField()))
    qs = join_version(qs, "churn_scores", previous, {"previous_risk": ("probability", FloatField())},
                      alias="churn_scores_prev")
    return qs.annotate(risk_change=F("churn_risk") - F("previous_risk"))


def _scores(version: ModelVersion | None = None) -> QuerySet[ChurnScore]:
    return ChurnScore.objects.filter(model_version=version or selectors.active_version())


def rising_customer_ids() -> QuerySet:
    """Customer pks whose risk rose by RISING_BY or more since the previous version (none without one)."""
    active = selectors.active_version()
    previous = previous_version(active)
    if previous is None:
        return _scores(active).none().values("customer_id")
    # a join on the previous version's score (hash join), not a per-row subquery
    return (_scores(active).filter(customer__churn_scores__model_version=previous,
                                   customer__churn_scores__probability__lte=F("probability") - RISING_BY)
            .values("customer_id"))


def _apply_rising(qs: QuerySet, value: Any) -> QuerySet:
    return qs.filter(pk__in=rising_customer_ids())


def _apply_bands(qs: QuerySet, value: Any) -> QuerySet:
    return qs.filter(pk__in=_scores().filter(risk_band__in=value).values("customer_id"))


def _apply_min_risk(qs: QuerySet, value: Any) -> QuerySet:
    return qs.filter(pk__in=_scores().filter(probability__gte=value).values("customer_id"))


CONTRIBUTION = TableContribution(
    order=30, name="churn", annotate=annotate,
    columns=[
        TableColumn("churn_risk", "Churn risk", kind="risk", extra=(("risk_band", "Risk band"),),
                    help="Probability of no purchase in the churn model's horizon, with its band; the arrow shows "
                         f"the change since the previous churn model (rising = up {RISING_BY:.0%} points or more)."),
        TableColumn("risk_change", "Risk change", kind="delta", highlight_above=RISING_BY,
                    help="Risk now minus risk under the previous churn model version."),
    ],
    filters=[
        TableFilter("risk_bands", "Risk band is one of", "choices", apply=_apply_bands,
                    validate=choice_list(lambda: list(BANDS)), choices=lambda: list(BANDS.items())),
        TableFilter("min_risk", "Churn risk at least (0–1)", "number", apply=_apply_min_risk, validate=number(0, 1)),
        TableFilter("risk_rising", "Risk rising", "flag", apply=_apply_rising, validate=flag,
                    help=f"Risk up {RISING_BY:.0%} points or more since the previous churn model."),
    ],
)
