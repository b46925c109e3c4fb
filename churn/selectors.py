"""Reads for the churn pages and the API (no writes)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from django.db.models import Q, QuerySet

from churn.models import ChurnScore
from rfm_portal.customers.models import Customer
from rfm_portal.mlops import selectors as mlops_selectors
from rfm_portal.mlops.models import Job, ModelVersion

KIND = "churn"
CHALLENGER_KIND = "churn_challenger"
TRAIN_JOB_KIND = "churn.train"


def active_version() -> ModelVersion | None:
    return mlops_selectors.active_version(KIND)


def latest_version() -> ModelVersion | None:
    return mlops_selectors.latest_version(KIND)


def challenger_for(mv: ModelVersion) -> ModelVersion | None:
    """The challenger registered by the same training run as ``mv``."""
    ref = (mv.metrics or {}).get("challenger_version") or {}
    return ModelVersion.objects.filter(kind=CHALLENGER_KIND, pk=ref.get("id")).first() if ref else None


def train_jobs(limit: int = 5) -> QuerySet[Job]:
    return Job.objects.filter(kind=TRAIN_JOB_KIND).order_by("-created_at")[:limit]


@dataclass(frozen=True)
class AtRiskFilters:
    band: str = ""
    min_probability: float | None = None
    country: str = ""
    search: str = ""


def at_risk(mv: ModelVersion, filters: AtRiskFilters) -> QuerySet[ChurnScore]:
    """Scores of ``mv``, riskiest first, filtered by band, minimum probability, country and id search."""
    qs = ChurnScore.objects.filter(model_version=mv).select_related("customer")
    if filters.band:
        qs = qs.filter(risk_band=filters.band)
    if filters.min_probability is not None:
        qs = qs.filter(probability__gte=filters.min_probability)
    if filters.country:
        qs = qs.filter(customer__country__iexact=filters.country)
    search = filters.search.strip()
    if search:
        qs = qs.filter(Q(customer__external_id__istartswith=search))
    return qs.order_by("-probability", "customer__external_id")


def countries(mv: ModelVersion) -> list[str]:
    return list(
        Customer.objects.filter(churn_scores__model_version=mv).exclude(country="")
        .values_list("country", flat=True).distinct().order_by("country")
    )


def score_probabilities(mv: ModelVersion) -> list[float]:
    return list(ChurnScore.objects.filter(model_version=mv).values_list("probability", flat=True))


def score_sample(mv: ModelVersion, size: int = 1000) -> list[ChurnScore]:
    """A deterministic spread of ``size`` scores (every n-th by customer id) for global SHAP."""
    ids = list(ChurnScore.objects.filter(model_version=mv).order_by("customer_id").values_list("pk", flat=True))
    step = max(1, len(ids) // size)
    return list(ChurnScore.objects.filter(pk__in=ids[::step][:size]).select_related("customer"))


def top_scores(mv: ModelVersion, n: int = 10) -> list[ChurnScore]:
    return list(ChurnScore.objects.filter(model_version=mv).select_related("customer").order_by("-probability")[:n])


def risk_spread(mv: ModelVersion, n: int = 10) -> list[ChurnScore]:
    """``n`` customers spread evenly over the risk ranking (riskiest first), for the decision plot."""
    ids = list(ChurnScore.objects.filter(model_version=mv).order_by("-probability", "customer_id")
               .values_list("pk", flat=True))
    if not ids:
        return []
    picks = sorted({round(i * (len(ids) - 1) / max(n - 1, 1)) for i in range(min(n, len(ids)))})
    chosen = [ids[i] for i in picks]
    by_pk = {s.pk: s for s in ChurnScore.objects.filter(pk__in=chosen).select_related("customer")}
    return [by_pk[pk] for pk in chosen]


def customer_score(customer: Customer, mv: ModelVersion) -> ChurnScore | None:
    return ChurnScore.objects.filter(customer=customer, model_version=mv).first()


def probabilities_frame(mv: ModelVersion) -> pd.Series:
    """customer pk → churn probability under ``mv`` (for the campaign planner's audience and naive rule)."""
    rows = list(ChurnScore.objects.filter(model_version=mv).values_list("customer_id", "probability").order_by()
                .iterator(chunk_size=50_000))
    return pd.Series([r[1] for r in rows], index=pd.Index([r[0] for r in rows], name="customer_id"),
                     dtype=float, name="churn_risk")
