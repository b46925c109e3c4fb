"""Celery tasks of the Segmentation capability (thin: the work is in services)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from rfm_portal.mlops.progress import JobReporter, job_task, submit_job
from segmentation import services


@job_task(name="segmentation.train")
def train_segmentation_task(reporter: JobReporter, cutoff: str | None = None, k: int | None = None) -> dict[str, Any]:
    """Train, store and activate a segmentation model; the Job shows each step and the result."""
    mv = services.train_segmentation(cutoff=cutoff, k=k, user=reporter.job.created_by, reporter=reporter)
    return {
        "model_version": mv.version,
        "model_version_id": mv.pk,
        "customers": mv.metrics["customers"],
        "k": mv.metrics["k"],
        "data_cutoff": mv.data_cutoff.date().isoformat() if mv.data_cutoff else None,
    }


@shared_task(name="segmentation.scheduled_retrain")
def scheduled_retrain() -> int:
    """Beat entry point: queue a retrain as an ordinary Job (so it shows on the Jobs page); returns its id."""
    return submit_job(train_segmentation_task, {}).pk
