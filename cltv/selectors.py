"""Reads for the CLTV pages, API and customer panel."""

from __future__ import annotations

from typing import Any

import pandas as pd

from rfm_portal.customers.models import Customer
from rfm_portal.mlops import selectors as mlops_selectors
from rfm_portal.mlops.models import ModelVersion

from .models import CLTVScore

KIND = "cltv"
SCORE_FIELDS = (
    "customer_id", "customer__external_id", "first_purchase", "frequency", "recency", "T", "monetary", "p_alive",
    "expected_purchases_30d", "expected_purchases_90d", "expected_purchases_365d", "expected_aov",
    "clv", "clv_p10", "clv_p50", "clv_p90",
)  # fmt: skip


def active_version() -> ModelVersion | None:
    return mlops_selectors.active_version(KIND)


def latest_version() -> ModelVersion | None:
    return mlops_selectors.latest_version(KIND)


def scores_frame(mv: ModelVersion) -> pd.DataFrame:
    """All score rows of a version as a frame (external id as ``external_id``)."""
    rows = CLTVScore.objects.filter(model_version=mv).values_list(*SCORE_FIELDS).order_by()
    frame = pd.DataFrame.from_records(list(rows.iterator(chunk_size=20_000)), columns=list(SCORE_FIELDS))
    return frame.rename(columns={"customer__external_id": "external_id"})


def scores_for_external_ids(mv: ModelVersion, external_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Stored score rows (as dicts of ``SCORE_FIELDS``) of the given customers, by external id."""
    rows = (
        CLTVScore.objects.filter(model_version=mv, customer__external_id__in=external_ids)
        .values(*SCORE_FIELDS)
        .order_by()
    )
    return {row["customer__external_id"]: row for row in rows}


def customer_ids_by_external(external_ids: list[str]) -> dict[str, int]:
    return dict(Customer.objects.filter(external_id__in=external_ids).values_list("external_id", "pk"))


def customer_score(customer: Customer, mv: ModelVersion) -> CLTVScore | None:
    return CLTVScore.objects.filter(customer=customer, model_version=mv).first()


def value_frame(mv: ModelVersion) -> pd.DataFrame:
    """customer pk → clv, p_alive under ``mv`` (the campaign planner's audience filters)."""
    rows = CLTVScore.objects.filter(model_version=mv).values_list("customer_id", "clv", "p_alive").order_by()
    return pd.DataFrame.from_records(list(rows.iterator(chunk_size=50_000)),
                                     columns=["customer_id", "clv", "p_alive"]).set_index("customer_id")
