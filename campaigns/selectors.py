"""Reads for the campaign pages and API (no writes)."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet

from campaigns import pipeline
from campaigns.models import Campaign, CampaignAuditLog, CampaignTarget, MessageTemplate
from rfm_portal.customers.models import Customer
from rfm_portal.mlops.models import Job

PLAN_JOB_KIND = "campaigns.plan"


def campaign_list(status: str = "") -> QuerySet[Campaign]:
    qs = Campaign.objects.select_related("created_by", "audience", "reviewed_by")
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-created_at", "-id")


def campaign_get(pk: int) -> Campaign | None:
    return Campaign.objects.select_related("created_by", "audience", "template", "reviewed_by", "plan_job"
                                           ).filter(pk=pk).first()


def ranked_campaigns() -> list[dict[str, Any]]:
    """Campaigns with a plan that are not yet sent, by expected incremental profit then ROI."""
    rows = []
    for c in Campaign.objects.filter(planned_at__isnull=False, status__in=[
            Campaign.Status.DRAFT, Campaign.Status.SUBMITTED, Campaign.Status.APPROVED]):
        t = c.plan.get("totals", {})
        # What is expected from the customers actually contacted (the holdout is selected but not contacted).
        rows.append({"campaign": c, "name": c.name, "profit": t.get("contact_profit", t.get("profit", 0.0)),
                     "spend": t.get("contact_spend", t.get("spend", 0.0)), "contacts": t.get("contacts", 0)})
    return pipeline.rank_campaigns(rows)


def audit_log(campaign: Campaign) -> QuerySet[CampaignAuditLog]:
    return campaign.audit_log.select_related("user").order_by("-at", "-id")


def targets(campaign: Campaign, arm: str = CampaignTarget.Arm.CONTACT) -> QuerySet[CampaignTarget]:
    return (CampaignTarget.objects.filter(campaign=campaign, arm=arm).select_related("customer")
            .order_by("-expected_profit", "id"))


def target_page(campaign: Campaign, arm: str = CampaignTarget.Arm.CONTACT) -> QuerySet[CampaignTarget]:
    """Targets in a stable order for the paged API (by id)."""
    return CampaignTarget.objects.filter(campaign=campaign, arm=arm).select_related("customer").order_by("id")


def arm_counts(campaign: Campaign) -> dict[str, int]:
    return dict(CampaignTarget.objects.filter(campaign=campaign).values_list("arm").annotate(n=Count("id")))


def customer_targets(customer: Customer) -> QuerySet[CampaignTarget]:
    return customer.campaign_targets.select_related("campaign").order_by("-campaign__created_at")[:10]


def templates() -> QuerySet[MessageTemplate]:
    return MessageTemplate.objects.order_by("goal", "segment", "name")


def template_get(pk: int) -> MessageTemplate | None:
    return MessageTemplate.objects.filter(pk=pk).first()


def plan_jobs(campaign: Campaign) -> QuerySet[Job]:
    return Job.objects.filter(kind=PLAN_JOB_KIND, params__campaign_id=campaign.pk).order_by("-created_at")[:3]


def status_counts() -> dict[str, int]:
    return dict(Campaign.objects.values_list("status").annotate(n=Count("id")))


def search_customers(query: str, limit: int = 10) -> QuerySet[Customer]:
    return Customer.objects.filter(Q(external_id__istartswith=query.strip())).order_by("external_id")[:limit]
