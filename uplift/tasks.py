"""Celery tasks of the Uplift capability (thin: the work is in services)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from rfm_portal.mlops.progress import JobReporter, job_task, submit_job
from uplift import services


@job_task(name="uplift.train")
def train_uplift_task(reporter: JobReporter, campaign: str | None = None) -> dict[str, Any]:
    """Fit both learners on a campaign, register both, promote the better and score every customer."""
    versions = services.train_uplift_model(campaign=campaign, user=reporter.job.created_by, reporter=reporter)
    champion = versions[0]
    return {
        "model_version": champion.version,
        "model_version_id": champion.pk,
        "learner": champion.metrics["learner"],
        "qini": round(champion.metrics["qini"], 5),
        "challenger_version": versions[1].version if len(versions) > 1 else None,
        "campaign": champion.metrics["campaign"]["campaign"],
        "customers_scored": champion.metrics["scored_customers"],
    }


@shared_task(name="uplift.scheduled_retrain")
def scheduled_retrain() -> int:
    """Beat entry point: queue a retrain as an ordinary Job (shown on the Jobs page); returns its id."""
    return submit_job(train_uplift_task, {}).pk
