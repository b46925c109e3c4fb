"""The Celery task: training as a Job with progress and a result; the beat entry; the command."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from rfm_portal.mlops.models import Job, ModelVersion
from rfm_portal.mlops.progress import start_job
from uplift import tasks
from uplift.schedule import UPLIFT_BEAT_SCHEDULE


def test_task_trains_scores_and_reports_progress(generated, admin):
    job = start_job(tasks.train_uplift_task.name, {"campaign": None}, admin)
    tasks.train_uplift_task.apply(args=[job.pk])
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED and job.progress == 100, job.error
    active = ModelVersion.objects.get(kind="uplift", status=ModelVersion.Status.ACTIVE)
    assert job.result["model_version_id"] == active.pk and job.result["customers_scored"] == 1500
    assert active.trained_by == admin


def test_failed_task_marks_the_job_failed(db, admin):
    job = start_job(tasks.train_uplift_task.name, {}, admin)
    tasks.train_uplift_task.apply(args=[job.pk])
    job.refresh_from_db()
    assert job.state == Job.State.FAILED and "no campaign history" in job.error
    assert not ModelVersion.objects.filter(kind="uplift").exists()


def test_beat_entry_is_merged_into_the_schedule():
    entry = UPLIFT_BEAT_SCHEDULE["uplift-weekly-retrain"]
    assert entry["task"] == tasks.scheduled_retrain.name
    assert settings.CELERY_BEAT_SCHEDULE["uplift-weekly-retrain"] == entry


def test_command_refuses_an_unknown_campaign(generated):
    with pytest.raises(CommandError, match="no campaign named 'nope'"):
        call_command("train_uplift", "--campaign", "nope")
