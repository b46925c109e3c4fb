"""The reaper and the task wrapper's claim: dead jobs are failed with their training version, never re-run."""

from datetime import timedelta

import pytest
from django.utils import timezone

from rfm_portal.mlops.models import Job, ModelVersion
from rfm_portal.mlops.progress import reap_stale_jobs, start_job
from tests.mlops.job_tasks import CALLS, count_to

pytestmark = pytest.mark.django_db

State = Job.State


@pytest.fixture
def short_thresholds(settings):
    settings.JOB_STALE_AFTER_SECONDS = 60
    settings.JOB_PENDING_TIMEOUT_SECONDS = 600


def running_job(beat_age: float, **fields) -> Job:
    now = timezone.now()
    job = start_job("tests.mlops.count_to", {"n": 2})
    Job.objects.filter(pk=job.pk).update(
        state=State.RUNNING,
        started_at=now - timedelta(seconds=beat_age + 1),
        heartbeat_at=now - timedelta(seconds=beat_age),
        **fields,
    )
    job.refresh_from_db()
    return job


def test_a_silent_running_job_is_failed_with_its_training_version_and_the_active_one_kept(short_thresholds):
    active = ModelVersion.objects.create(kind="churn", version=1, status=ModelVersion.Status.ACTIVE)
    training = ModelVersion.objects.create(kind="churn", version=2, status=ModelVersion.Status.TRAINING)
    dead = running_job(beat_age=61, model_version=training, progress=15)
    alive = running_job(beat_age=5)

    counts = reap_stale_jobs()

    assert counts == {"running": 1, "pending": 0, "model_versions": 0}
    dead.refresh_from_db(), alive.refresh_from_db(), training.refresh_from_db(), active.refresh_from_db()
    assert dead.state == State.FAILED and "worker running this job stopped" in dead.error and dead.finished_at
    assert training.status == ModelVersion.Status.FAILED and "stopped" in training.error
    assert active.status == ModelVersion.Status.ACTIVE
    assert alive.state == State.RUNNING
    assert reap_stale_jobs() == {"running": 0, "pending": 0, "model_versions": 0}  # idempotent


def test_a_job_no_worker_took_is_failed_after_the_pending_timeout(short_thresholds):
    old = start_job("tests.mlops.count_to")
    Job.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(seconds=601))
    recent = start_job("tests.mlops.count_to")

    assert reap_stale_jobs()["pending"] == 1

    old.refresh_from_db(), recent.refresh_from_db()
    assert old.state == State.FAILED and "No worker picked this job up within 10 minutes" in old.error
    assert recent.state == State.PENDING


def test_an_orphaned_training_version_beyond_the_time_limit_is_failed(short_thresholds, settings):
    settings.CELERY_TASK_TIME_LIMIT = 100
    orphan = ModelVersion.objects.create(kind="cltv", version=1, status=ModelVersion.Status.TRAINING)
    ModelVersion.objects.filter(pk=orphan.pk).update(created_at=timezone.now() - timedelta(seconds=161))
    young = ModelVersion.objects.create(kind="cltv", version=2, status=ModelVersion.Status.TRAINING)

    assert reap_stale_jobs()["model_versions"] == 1
    orphan.refresh_from_db(), young.refresh_from_db()
    assert orphan.status == ModelVersion.Status.FAILED and young.status == ModelVersion.Status.TRAINING


def test_a_redelivered_message_for_a_failed_job_does_not_run_it_again():
    job = start_job("tests.mlops.count_to", {"n": 2})
    Job.objects.filter(pk=job.pk).update(state=State.FAILED, error="worker died")
    CALLS.clear()
    count_to.apply(args=[job.pk])
    assert CALLS == []
    job.refresh_from_db()
    assert job.state == State.FAILED and job.error == "worker died"


def test_a_redelivered_message_while_a_live_worker_runs_the_job_does_nothing(settings):
    settings.JOB_STALE_AFTER_SECONDS = 60
    job = running_job(beat_age=1)
    CALLS.clear()
    count_to.apply(args=[job.pk])
    assert CALLS == []
    assert Job.objects.get(pk=job.pk).state == State.RUNNING


def test_a_redelivered_message_for_a_dead_run_fails_the_job_instead_of_running_it_twice(settings):
    settings.JOB_STALE_AFTER_SECONDS = 60
    training = ModelVersion.objects.create(kind="churn", version=1, status=ModelVersion.Status.TRAINING)
    job = running_job(beat_age=120, model_version=training)
    CALLS.clear()
    count_to.apply(args=[job.pk])
    assert CALLS == []
    job.refresh_from_db(), training.refresh_from_db()
    assert job.state == State.FAILED and training.status == ModelVersion.Status.FAILED


def test_a_job_links_the_version_it_starts_training(admin):
    from tests.mlops.job_tasks import train_slowly

    job = start_job(train_slowly.name, {"kind": "tests-link", "seconds": 0})
    assert train_slowly.apply(args=[job.pk]).successful()
    job.refresh_from_db()
    assert job.model_version is not None and job.model_version.kind == "tests-link"
    assert job.heartbeat_at is not None


def test_the_reaper_runs_on_beat():
    from django.conf import settings

    entry = settings.CELERY_BEAT_SCHEDULE["mlops-reap-stale-jobs"]
    assert entry["task"] == "mlops.reap_stale_jobs"
    assert 0 < entry["schedule"] <= settings.JOB_STALE_AFTER_SECONDS
