"""CLTV training as a Job (live progress on the Jobs page)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from rfm_portal.mlops.progress import JobReporter, job_task, submit_job

from . import services


@job_task(name="cltv.train")
def train_cltv_task(reporter: JobReporter, **params: Any) -> dict[str, Any]:
    """Train, score and promote a CLTV model; ``params`` are ``train_cltv_model``'s settings."""
    user = reporter.job.created_by
    mv = services.train_cltv_model(user=user, reporter=reporter, **params)
    reporter.job.model_version = mv
    reporter.job.save(update_fields=["model_version"])
    return {
        "model_version_id": mv.pk,
        "version": mv.version,
        "model": mv.metrics.get("chosen_label"),
        "customers": mv.metrics.get("n_customers"),
    }


@shared_task(name="cltv.scheduled_retrain")
def scheduled_retrain() -> int:
    """Beat entry point: queue a retrain as an ordinary Job (so it shows on the Jobs page); returns its id."""
    return submit_job(train_cltv_task, {}).pk
