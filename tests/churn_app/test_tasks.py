"""The Celery task: training as a Job with progress and a result; the beat entry."""

from __future__ import annotations

from churn import tasks
from churn.schedule import CHURN_BEAT_SCHEDULE
from rfm_portal.mlops.models import Job, ModelVersion
from rfm_portal.mlops.progress import start_job


def test_task_trains_scores_and_reports_progress(generated, admin):
    job = start_job(tasks.train_churn_task.name, {"cutoff": None, "horizon_days": 90}, admin)
    tasks.train_churn_task.apply(args=[job.pk])
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED and job.progress == 100
    active = ModelVersion.objects.get(kind="churn", status=ModelVersion.Status.ACTIVE)
    assert job.result["model_version_id"] == active.pk and job.result["customers_scored"] == 800
    assert active.trained_by == admin


def test_failed_task_marks_the_job_failed(db, admin):
    job = start_job(tasks.train_churn_task.name, {}, admin)
    tasks.train_churn_task.apply(args=[job.pk])
    job.refresh_from_db()
    assert job.state == Job.State.FAILED and "no transactions" in job.error
    assert not ModelVersion.objects.filter(kind="churn", status=ModelVersion.Status.ACTIVE).exists()


def test_beat_entry_names_the_scheduled_task():
    entry = CHURN_BEAT_SCHEDULE["churn-weekly-retrain"]
    assert entry["task"] == tasks.scheduled_retrain.name
