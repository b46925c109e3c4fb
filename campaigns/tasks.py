"""Celery tasks of the campaign planner (thin: the work is in services)."""

from __future__ import annotations

from typing import Any

from campaigns import services
from campaigns.models import Campaign
from campaigns.selectors import PLAN_JOB_KIND
from rfm_portal.mlops.progress import JobReporter, job_task


@job_task(name=PLAN_JOB_KIND)
def plan_campaign_task(reporter: JobReporter, campaign_id: int) -> dict[str, Any]:
    """Score the audience, allocate the budget, draw the holdout and store the targets, with progress."""
    campaign = Campaign.objects.get(pk=campaign_id)
    planned = services.plan_campaign(campaign, user=reporter.job.created_by, reporter=reporter)
    t = planned.plan["totals"]
    return {"campaign_id": planned.pk, "contacts": t["contacts"], "holdout": t["holdout"],
            "expected_profit": round(t["profit"], 2), "spend": round(t["spend"], 2)}
