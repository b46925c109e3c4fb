"""The Celery job wrapping train_cltv_model: progress, result, link to the version."""

from __future__ import annotations

import pytest

from cltv.tasks import train_cltv_task
from rfm_portal.mlops.models import Job, ModelVersion
from rfm_portal.mlops.progress import start_job

from .conftest import Trained

pytestmark = pytest.mark.django_db


def test_the_job_trains_and_promotes_with_progress(trained: Trained, monkeypatch) -> None:
    seen: list[tuple[int, str]] = []
    from rfm_portal.mlops import progress

    original = progress.JobReporter.report

    def spy(self, pct: int, message: str = "") -> None:
        seen.append((pct, message))
        original(self, pct, message)

    monkeypatch.setattr(progress.JobReporter, "report", spy)
    job = start_job(train_cltv_task.name, {"observation_end": "2024-07-01", "n_draws": 20})
    assert train_cltv_task.apply(args=[job.pk]).successful()
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.error
    mv = ModelVersion.objects.get(pk=job.result["model_version_id"])
    assert mv.status == ModelVersion.Status.ACTIVE and job.model_version_id == mv.pk and mv.version > trained.mv.version
    assert [p for p, _ in seen] == sorted(p for p, _ in seen) and len(seen) >= 6
    assert any("Scoring" in m for _, m in seen)


def test_a_failing_job_is_marked_failed(trained: Trained) -> None:
    job = start_job(train_cltv_task.name, {"observation_end": "2000-01-01"})
    train_cltv_task.apply(args=[job.pk])
    job.refresh_from_db()
    assert job.state == Job.State.FAILED and "no transactions" in job.error
    assert ModelVersion.objects.get(kind="cltv", status=ModelVersion.Status.ACTIVE).pk == trained.mv.pk


def test_the_management_command_trains_synchronously(trained: Trained) -> None:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("train_cltv", "--observation-end", "2024-07-01", "--margin", "0.4", stdout=out)
    mv = ModelVersion.objects.get(kind="cltv", status=ModelVersion.Status.ACTIVE)
    assert mv.version > trained.mv.version and mv.params["margin"] == 0.4
    assert f"CLTV v{mv.version} active" in out.getvalue()


def test_weekly_retrain_is_scheduled_and_queues_an_ordinary_job(db, settings, django_capture_on_commit_callbacks):
    from cltv.tasks import scheduled_retrain

    entry = settings.CELERY_BEAT_SCHEDULE["cltv-weekly-retrain"]
    assert entry["task"] == scheduled_retrain.name
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job_id = scheduled_retrain.apply().get()
    job = Job.objects.get(pk=job_id)
    assert job.kind == train_cltv_task.name and job.state == Job.State.PENDING and len(callbacks) == 1
