"""Celery tasks of the Churn capability (thin: the work is in services)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from churn import services
from rfm_portal.mlops.progress import JobReporter, job_task, submit_job


@job_task(name="churn.train")
def train_churn_task(reporter: JobReporter, cutoff: str | None = None, horizon_days: int = 90) -> dict[str, Any]:
    """Backtest, register both models, promote the champion and score every customer (with progress)."""
    champion, challenger = services.train_churn_model(
        cutoff=cutoff, horizon_days=horizon_days, user=reporter.job.created_by, reporter=reporter
    )
    return {
        "model_version": champion.version,
        "model_version_id": champion.pk,
        "champion": champion.metrics["model_kind"],
        "roc_auc": round(champion.metrics["roc_auc"], 4),
        "challenger_version": challenger.version,
        "challenger_roc_auc": round(challenger.metrics["roc_auc"], 4),
        "customers_scored": champion.metrics["scored_customers"],
        "data_cutoff": champion.data_cutoff.isoformat() if champion.data_cutoff else None,
    }


@shared_task(name="churn.scheduled_retrain")
def scheduled_retrain() -> int:
    """Beat entry point: queue a retrain as an ordinary Job (so it shows on the Jobs page); returns its id."""
    return submit_job(train_churn_task, {}).pk
