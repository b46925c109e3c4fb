"""Reads for the churn pages and the API (no writes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
from django.db.models import Q, QuerySet

from churn.models import ChurnScore
from rfm_portal.customers.models import Customer
from rfm_portal.mlops import selectors as mlops_selectors
from rfm_portal.mlops.models import Job, ModelVersion

if TYPE_CHECKING:
    from rfm_portal.customers.table import TableRows

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
# --- Actionable lists: at risk (ranked by value at risk) and win back (already gone) ------------------------

AT_RISK = "at-risk"
WIN_BACK = "win-back"
ORDERS = {
    AT_RISK: {"-value_at_risk": "Value at risk (risk × CLV), highest first", "-churn_risk": "Risk, highest first",
              "-clv_p50": "CLV, highest first", "-revenue": "Past revenue, highest first"},
    WIN_BACK: {"-revenue": "Past revenue, highest first", "-clv_p50": "CLV, highest first",
               "-last_purchase": "Most recently lost first", "-churn_risk": "Risk, highest first"},
}


def winback_threshold() -> float:
    from django.conf import settings

    return float(getattr(settings, "CHURN_WINBACK_P_ALIVE", 0.2))


def _action_customers(filters: AtRiskFilters, view: str) -> QuerySet[Customer]:
    """The list's customers (unordered): scored by the active churn model, with the customer table's columns and
    the value at risk; ``view`` at-risk: P(alive) at least the win-back threshold (or unknown), win-back: below."""
    from django.db.models import ExpressionWrapper, F, FloatField, Value

    from rfm_portal.customers.table import apply_search, customer_table, table_columns

    keys = {column.key for column in table_columns()}
    qs = customer_table({}).filter(churn_risk__isnull=False).order_by()
    has_clv = "clv_p50" in keys
    value = ExpressionWrapper(F("churn_risk") * F("clv_p50"), output_field=FloatField()) if has_clv \
        else Value(None, output_field=FloatField())
    qs = qs.annotate(value_at_risk=value)
    if "p_alive" in keys:
        threshold = winback_threshold()
        qs = qs.filter(Q(p_alive__lt=threshold) if view == WIN_BACK
                       else Q(p_alive__gte=threshold) | Q(p_alive__isnull=True))  # unknown P(alive): at risk
    elif view == WIN_BACK:
        qs = qs.none()
    if filters.band:
        qs = qs.filter(risk_band=filters.band)
    if filters.min_probability is not None:
        qs = qs.filter(churn_risk__gte=filters.min_probability)
    if filters.country:
        qs = qs.filter(country__iexact=filters.country)
    if filters.search.strip():
        qs = apply_search(qs, filters.search.strip())
    return qs


def action_order(view: str, order: str) -> str:
    orders = ORDERS.get(view, ORDERS[AT_RISK])
    return order if order in orders else next(iter(orders))


def action_list(filters: AtRiskFilters, view: str = AT_RISK, order: str = "") -> QuerySet[Customer]:
    """The at-risk (ranked by value at risk = risk × CLV P50) or win-back (by past revenue) list, one query (the
    CSV streams it); ties by risk, then customer id. A page reads ``action_rows`` instead."""
    from django.db.models import F

    order = action_order(view, order)
    field = order.lstrip("-")
    primary = F(field).desc(nulls_last=True) if order.startswith("-") else F(field).asc(nulls_last=True)
    return _action_customers(filters, view).order_by(primary, F("churn_risk").desc(), "external_id")


def action_rows(filters: AtRiskFilters, view: str = AT_RISK, order: str = "") -> TableRows:
    """``action_list``'s rows in the same order, for paging: a page reads the pks of its slice first (a narrow
    query over the scores it sorts and filters by), then those customers' full rows (``TableRows``)."""
    from django.db.models import F

    from rfm_portal.customers.table import TableRows, valued_first

    order = action_order(view, order)
    key = order.lstrip("-")
    qs = _action_customers(filters, view)
    counts = list_counts()[view] if filters == AtRiskFilters() else None
    if key == "value_at_risk":  # a product of two models' scores: no index to walk, so no split
        return TableRows([action_list(filters, view, order)], qs, counts=[counts["rows"]] if counts else None)
    return TableRows(valued_first(qs, order, then=(F("churn_risk").desc(), "external_id")), qs,
                     counts=[counts[key], counts["rows"] - counts[key]] if counts else None)


def compute_list_counts(versions: dict) -> dict:
    """Per list (at-risk, win-back) without filters: its customers, and those with a value per sort column (one
    ``COUNT(column)`` pass each). Stored as the page summary ``churn.list_counts`` with the win-back threshold
    and the time of the stored customer totals the lists join (``list_counts`` recounts when either changed)."""
    from django.db.models import Count

    from rfm_portal.customers.table import without_jit
    from rfm_portal.dashboard.models import PageSummary

    out: dict = {}
    with without_jit():
        for view, orders in ORDERS.items():
            keys = [order.lstrip("-") for order in orders]
            counts = _action_customers(AtRiskFilters(), view).aggregate(
                rows=Count("pk"), **{f"valued_{key}": Count(key) for key in keys})
            out[view] = {"rows": counts["rows"], **{key: counts[f"valued_{key}"] for key in keys}}
    totals = PageSummary.objects.filter(name="customer_totals").values_list("computed_at", flat=True).first()
    return {**out, "threshold": winback_threshold(), "totals_at": totals.isoformat() if totals else None}


def list_counts() -> dict:
    """The stored counts of the unfiltered lists, recounted if the totals or the win-back threshold changed."""
    from rfm_portal.dashboard import summaries
    from rfm_portal.dashboard.models import PageSummary

    summaries.ensure_customer_totals()
    totals = PageSummary.objects.filter(name="customer_totals").values_list("computed_at", flat=True).first()
    counts = summaries.get("churn.list_counts")
    if (totals is None or counts.get("totals_at") != totals.isoformat()
            or counts.get("threshold") != winback_threshold()):
        counts = summaries.refresh("churn.list_counts")
    return counts


def scores_for(mv: ModelVersion, customers: list[Customer]) -> dict[int, ChurnScore]:
    """The churn scores (drivers, features) of one page of customers, in one query."""
    return {s.customer_id: s for s in ChurnScore.objects.filter(model_version=mv, customer__in=customers)}
