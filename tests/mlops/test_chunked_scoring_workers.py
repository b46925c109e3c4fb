"""Batch scoring shared by real Celery worker processes (prefork, on the Redis broker), as in production.

Two workers with one process each take chunks from the queue while the process that started the run
takes them from the other end; a failing chunk fails the "score all customers" job run by a worker.
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

from churn.models import ChurnScore
from rfm_portal.celery import app
from rfm_portal.customers.models import Customer
from rfm_portal.mlops.models import Job, ScoringChunk, ScoringRun
from rfm_portal.mlops.progress import submit_job
from rfm_portal.mlops.scoring import score_all_customers, worker_name
from rfm_portal.mlops.services import clear_model_cache
from rfm_portal.mlops.tasks import score_version_task
from tests.mlops.scoring_fixtures import expected_probability, ready_version

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
BOUND = 90  # seconds for workers to start and a run to finish on a busy 2-core machine


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("scoring-artifacts")


@pytest.fixture(autouse=True)
def _artifacts_shared_with_the_workers(settings, artifacts):
    settings.ARTIFACT_ROOT = artifacts
    clear_model_cache()
    yield
    clear_model_cache()


@pytest.fixture(scope="module")
def workers(tmp_path_factory, artifacts, django_db_setup):
    """Two worker processes (concurrency 1 each) on this test database and Redis db, for the module."""
    tmp_path = tmp_path_factory.mktemp("scoring-workers")
    assert settings.CELERY_BROKER_URL.startswith("redis://")
    app.control.purge()  # leftovers of an interrupted run on this Redis db
    db = connection.settings_dict
    env = dict(os.environ, DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
               REDIS_URL=settings.REDIS_URL, ARTIFACT_ROOT=str(artifacts), PYTHONPATH=str(ROOT))
    processes = []
    for name in ("one", "two"):
        command = [sys.executable, "-m", "celery", "-A", "rfm_portal", "worker", "--pool", "prefork",
                   "--concurrency", "1", "--include", "tests.mlops.scoring_fixtures", "--hostname",
                   f"{name}@scoring-test", "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
                   "--without-heartbeat"]  # fmt: skip
        with open(tmp_path / f"{name}.log", "wb") as log:
            processes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log,
                                              start_new_session=True))
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:  # both answer a ping: they consume the queue
        replies = app.control.ping(timeout=1.0) or []
        if len(replies) >= 2:
            break
    else:
        raise AssertionError("workers did not start:\n" + "\n".join(
            (tmp_path / f"{n}.log").read_text(errors="replace")[-2000:] for n in ("one", "two")))
    yield processes
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def test_worker_processes_share_the_chunks_and_the_rows_are_those_of_one_process(workers, settings):
    Customer.objects.bulk_create([Customer(external_id=f"slow{i:03d}") for i in range(60)])
    mv = ready_version()
    run = score_all_customers(mv, chunk_size=5)
    assert run.state == ScoringRun.State.SUCCEEDED and run.chunks_total == 12
    by = list(ScoringChunk.objects.filter(run=run).values_list("worker", flat=True))
    assert len(set(by)) >= 2 and any(w != worker_name() for w in by), by
    rows = dict(ChurnScore.objects.filter(model_version=mv).values_list("customer_id", "probability"))
    assert rows == {c.pk: expected_probability(c.pk, 0.618) for c in Customer.objects.all()}

    # the same version scored again in this process alone: the same rows, none added
    single = score_all_customers(mv, {"scored_at": run.params["scored_at"]}, chunk_size=1000)
    assert single.chunks_total == 1
    assert dict(ChurnScore.objects.filter(model_version=mv).values_list("customer_id", "probability")) == rows


def test_a_failing_chunk_fails_the_score_all_customers_job_in_a_worker(workers):
    Customer.objects.bulk_create([Customer(external_id=f"c{i:03d}") for i in range(20)])
    Customer.objects.create(external_id="fail-me")
    mv = ready_version()
    job = submit_job(score_version_task, {"model_version_id": mv.pk, "chunk_size": 5})
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.state in (Job.State.SUCCEEDED, Job.State.FAILED):
            break
        time.sleep(0.2)
    assert job.state == Job.State.FAILED, job.state
    assert "ScoringFailed" in job.error and "cannot score" in job.error
    run = ScoringRun.objects.get(model_version=mv)
    assert run.state == ScoringRun.State.FAILED and run.job_id == job.pk
