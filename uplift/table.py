"""Uplift's column and filter in the customer table (registered from UpliftConfig.ready)."""

from __future__ import annotations

from typing import Any

from django.db.models import CharField, QuerySet

from rfm_portal.customers.table import TableColumn, TableContribution, TableFilter, choice_list, join_version
from uplift import selectors
from uplift.models import UpliftScore

GROUPS = dict(UpliftScore.Group.choices)


def annotate(qs: QuerySet) -> QuerySet:
    return join_version(qs, "uplift_scores", selectors.active_version(),
                        {"uplift_group": ("group", CharField())})


def _apply_groups(qs: QuerySet, value: Any) -> QuerySet:
    scores = UpliftScore.objects.filter(model_version=selectors.active_version(), group__in=value)
    return qs.filter(pk__in=scores.values("customer_id"))


CONTRIBUTION = TableContribution(
    order=40, name="uplift", annotate=annotate,
    columns=[TableColumn("uplift_group", "Uplift group", kind="choice", choices=GROUPS,
                         help="What contacting the customer would change: persuadables buy because of it, "
                              "sure things buy anyway, lost causes don't, sleeping dogs buy less.")],
    filters=[TableFilter("uplift_groups", "Uplift group is one of", "choices", apply=_apply_groups,
                         validate=choice_list(lambda: list(GROUPS)), choices=lambda: list(GROUPS.items()))],
)
