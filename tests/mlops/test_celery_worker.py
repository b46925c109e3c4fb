"""Jobs run by a real Celery worker consuming from the Redis broker (as in production)."""

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from rfm_portal.celery import app
from rfm_portal.customers.models import Customer
from rfm_portal.mlops.models import Job
from rfm_portal.mlops.progress import submit_job
from rfm_portal.mlops.tasks import recompute_customer_first_seen
from tests.factories import make_transaction
from tests.mlops.job_tasks import count_to

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def worker():
    assert settings.CELERY_BROKER_URL == settings.REDIS_URL.strip() and settings.REDIS_URL.startswith("redis://")
    assert app.conf.broker_url.startswith("redis://")
    app.control.purge()  # leftovers of an interrupted run on this Redis db
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30) as running:
        yield running


def wait_until_finished(job: Job, timeout: float = 30) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.state in (Job.State.SUCCEEDED, Job.State.FAILED):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job still {job.state} after {timeout} s")


def test_worker_runs_a_submitted_task_and_updates_its_job(worker, admin):
    customer = Customer.objects.create(external_id="A")
    make_transaction(customer, "1", "2024-01-05T09:00:00", 1, "5")

    job = submit_job(recompute_customer_first_seen, {"batch_size": 1}, admin)

    job = wait_until_finished(job)
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.progress == 100 and job.result == {"customers": 1, "updated": 1}
    assert job.started_at and job.finished_at
    customer.refresh_from_db()
    assert customer.first_seen is not None


def test_worker_marks_a_failing_task_failed_with_the_error(worker):
    job = submit_job(count_to, {"n": 5, "fail_at": 4})
    job = wait_until_finished(job)
    assert job.state == Job.State.FAILED
    assert job.error == "ValueError: step 4 went wrong"
    assert job.progress == 60
