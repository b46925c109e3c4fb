"""Customer2Vec training as a Job (live per-epoch progress on the Jobs page)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from rfm_portal.mlops.progress import JobReporter, job_task, submit_job

from . import services


@job_task(name="embeddings.train")
def train_embeddings_task(reporter: JobReporter, **params: Any) -> dict[str, Any]:
    """Train, index and promote a Customer2Vec model; ``params`` are ``train_embeddings_model``'s settings."""
    mv = services.train_embeddings_model(user=reporter.job.created_by, reporter=reporter, **params)
    reporter.job.model_version = mv
    reporter.job.save(update_fields=["model_version"])
    return {"model_version_id": mv.pk, "version": mv.version, "customers": mv.metrics.get("n_customers"),
            "index": mv.metrics.get("index_kind"), "recall_at_10": mv.metrics.get("index_recall_at_10")}


@shared_task(name="embeddings.scheduled_retrain")
def scheduled_retrain() -> int:
    """Beat entry point: queue a retrain as an ordinary Job (so it shows on the Jobs page); returns its id."""
    return submit_job(train_embeddings_task, {}).pk
