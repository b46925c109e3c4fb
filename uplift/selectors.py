"""Reads for the uplift pages, the customer panel and other apps (campaign planner): no writes."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from django.db.models import Count, Q, QuerySet, Sum

from rfm_portal.customers.models import Customer
from rfm_portal.mlops import selectors as mlops_selectors
from rfm_portal.mlops.models import Job, ModelVersion
from uplift.models import UpliftScore

KIND = "uplift"
CHALLENGER_KIND = "uplift_challenger"
TRAIN_JOB_KIND = "uplift.train"


def active_version() -> ModelVersion | None:
    return mlops_selectors.active_version(KIND)


def latest_version() -> ModelVersion | None:
    return mlops_selectors.latest_version(KIND)


def challenger_for(mv: ModelVersion) -> ModelVersion | None:
    ref = (mv.metrics or {}).get("challenger_version") or {}
    return ModelVersion.objects.filter(kind=CHALLENGER_KIND, pk=ref.get("id")).first() if ref else None


def train_jobs(limit: int = 5) -> QuerySet[Job]:
    return Job.objects.filter(kind=TRAIN_JOB_KIND).order_by("-created_at")[:limit]


def group_summary(mv: ModelVersion) -> list[dict]:
    """Per group: customers, Σ incremental revenue and Σ expected profit if all were contacted (in SQL)."""
    rows = {r["group"]: r for r in UpliftScore.objects.filter(model_version=mv).values("group").annotate(
        n=Count("id"), revenue=Sum("revenue_uplift"), profit=Sum("expected_profit"),
        contact=Count("id", filter=Q(contact=True)))}
    return [{"group": g, "label": label, "n": rows.get(g, {}).get("n", 0),
             "revenue": rows.get(g, {}).get("revenue") or 0.0, "profit": rows.get(g, {}).get("profit") or 0.0,
             "contact": rows.get(g, {}).get("contact", 0)}
            for g, label in UpliftScore.Group.choices]


@dataclass(frozen=True)
class MemberFilters:
    group: str = ""
    contact: str = ""  # "", "yes", "no"
    country: str = ""
    search: str = ""


def members(mv: ModelVersion, filters: MemberFilters) -> QuerySet[UpliftScore]:
    """Scores of ``mv``, most expected profit first (ties: larger effect), filtered."""
    qs = UpliftScore.objects.filter(model_version=mv).select_related("customer")
    if filters.group:
        qs = qs.filter(group=filters.group)
    if filters.contact in ("yes", "no"):
        qs = qs.filter(contact=filters.contact == "yes")
    if filters.country:
        qs = qs.filter(customer__country__iexact=filters.country)
    if filters.search.strip():
        qs = qs.filter(customer__external_id__istartswith=filters.search.strip())
    return qs.order_by("-expected_profit", "-uplift", "customer__external_id")


def customer_score(customer: Customer, mv: ModelVersion) -> UpliftScore | None:
    return UpliftScore.objects.filter(customer=customer, model_version=mv).first()


def score_values(mv: ModelVersion) -> QuerySet:
    """(uplift, uplift_low, uplift_high, baseline, revenue_uplift, group) of every score, for recomputation."""
    return UpliftScore.objects.filter(model_version=mv).values_list(
        "uplift", "uplift_low", "uplift_high", "baseline", "revenue_uplift", "group")


SCORE_FRAME_FIELDS = ("uplift", "uplift_low", "uplift_high", "baseline", "revenue_uplift", "group")


def scores_frame(mv: ModelVersion, customer_pks: list[int] | None = None) -> pd.DataFrame:
    """Scores of ``mv`` indexed by customer pk (columns ``SCORE_FRAME_FIELDS``), for the campaign planner.

    Many customers are read as the whole version and filtered in pandas (one sequential scan beats a huge IN)."""
    qs = UpliftScore.objects.filter(model_version=mv)
    small = customer_pks is not None and len(customer_pks) <= 20_000
    if small:
        qs = qs.filter(customer_id__in=customer_pks)
    frame = pd.DataFrame.from_records(
        list(qs.values_list("customer_id", *SCORE_FRAME_FIELDS).order_by().iterator(chunk_size=50_000)),
        columns=["customer_id", *SCORE_FRAME_FIELDS]).set_index("customer_id")
    if customer_pks is not None and not small:
        frame = frame[frame.index.isin(customer_pks)]
    return frame
