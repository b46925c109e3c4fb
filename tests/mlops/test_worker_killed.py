"""kill -9 of a whole Celery worker (prefork, on the Redis broker) in the middle of a training job.

A second worker, started afterwards with its embedded beat, reaps the job: failed within a
bounded time (a short stale threshold here, via the environment), its training version
failed, the active version untouched. The figures are printed for docs/benchmarks.md.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from rfm_portal.celery import app
from rfm_portal.mlops.models import Job, ModelVersion
from rfm_portal.mlops.progress import submit_job
from tests.mlops.job_tasks import train_slowly

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
STALE_AFTER = 3
BOUND = 45  # seconds from SIGKILL to the job failed, worker start-up included


def worker_env() -> dict[str, str]:
    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        JOB_HEARTBEAT_SECONDS="0.5",
        JOB_STALE_AFTER_SECONDS=str(STALE_AFTER),
        JOB_REAPER_INTERVAL_SECONDS="1",
        PYTHONPATH=str(ROOT),
    )
    return env


def start_worker(tmp_path: Path, name: str, beat: bool) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "celery", "-A", "rfm_portal", "worker", "--pool", "prefork", "--concurrency", "1",
        "--include", "tests.mlops.job_tasks", "--hostname", f"{name}@faults-test", "--loglevel", "WARNING",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    if beat:
        command += ["--beat", "--schedule", str(tmp_path / "beat-schedule")]
    with open(tmp_path / f"{name}.log", "wb") as log:  # the child keeps its own copy of the descriptor
        # Its own session, so the whole worker (parent and pool children) can be killed at once.
        return subprocess.Popen(command, cwd=ROOT, env=worker_env(), stdout=log, stderr=log, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def wait_for(predicate, timeout: float, what: str, logs: Path) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.1)
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(logs.glob("*.log")))
    raise AssertionError(f"{what} not seen within {timeout} s\n{tails}")


def test_sigkill_of_the_worker_mid_training_fails_the_job_and_its_version_within_bounded_time(tmp_path):
    app.control.purge()
    active = ModelVersion.objects.create(kind="tests-slow", version=1, status=ModelVersion.Status.ACTIVE)
    job = submit_job(train_slowly, {"kind": "tests-slow", "seconds": 120})

    first = start_worker(tmp_path, "first", beat=False)
    second = None
    try:

        def training() -> bool:
            job.refresh_from_db()
            return job.state == Job.State.RUNNING and job.progress == 15

        wait_for(training, 60, "the job running", tmp_path)
        training_version = ModelVersion.objects.get(kind="tests-slow", version=2)
        assert training_version.status == ModelVersion.Status.TRAINING
        job.refresh_from_db()
        assert job.model_version_id == training_version.pk

        os.killpg(first.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        first.wait(timeout=10)

        second = start_worker(tmp_path, "second", beat=True)

        def failed() -> bool:
            job.refresh_from_db()
            return job.state == Job.State.FAILED

        wait_for(failed, BOUND, "the job failed", tmp_path)
        elapsed = time.monotonic() - killed_at
        print(f"\nSIGKILL -> job failed in {elapsed:.1f} s (stale threshold {STALE_AFTER} s, reaper every 1 s)")
    finally:
        stop(first)
        if second is not None:
            stop(second)
        app.control.purge()

    assert "worker running this job stopped" in job.error
    training_version.refresh_from_db(), active.refresh_from_db()
    assert training_version.status == ModelVersion.Status.FAILED
    assert active.status == ModelVersion.Status.ACTIVE
    assert ModelVersion.objects.filter(kind="tests-slow").count() == 2  # never started again
