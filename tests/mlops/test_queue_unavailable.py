"""The broker is down (Redis on a closed port): a job is failed at once, the user told plainly, no 500."""

from __future__ import annotations

import contextlib
import time

import pytest
from django.contrib.messages import get_messages
from django.test import RequestFactory

from rfm_portal.celery import app
from rfm_portal.mlops.middleware import JobQueueUnavailableMiddleware
from rfm_portal.mlops.models import Job
from rfm_portal.mlops.progress import QUEUE_UNAVAILABLE, JobQueueUnavailable, submit_job
from tests.mlops.job_tasks import count_to

pytestmark = pytest.mark.django_db(transaction=True)

CLOSED_PORT_URL = "redis://127.0.0.1:18399/0"  # nothing listens there (the faults engineer's port range)


def _use_broker(url: str) -> None:
    # The connection and producer pools are built from broker_url on first use.
    app.conf.broker_url = url
    app._pool = None
    app.amqp._producer_pool = None


@contextlib.contextmanager
def broker_down():
    saved = app.conf.broker_url
    _use_broker(CLOSED_PORT_URL)
    try:
        yield
    finally:
        _use_broker(saved)


def test_submit_fails_the_job_at_once_and_raises(admin):
    with broker_down():
        started = time.monotonic()
        with pytest.raises(JobQueueUnavailable) as raised:
            submit_job(count_to, {"n": 2}, admin)
        elapsed = time.monotonic() - started
    job = raised.value.job
    job.refresh_from_db()
    assert job.state == Job.State.FAILED and job.error.startswith(QUEUE_UNAVAILABLE) and job.finished_at
    assert elapsed < 10, f"a down broker took {elapsed:.1f} s to notice"


def test_a_submit_inside_a_transaction_fails_the_job_on_commit_without_raising(admin):
    from django.db import transaction

    with broker_down(), transaction.atomic():
        job = submit_job(count_to, {"n": 2}, admin)
    job.refresh_from_db()
    assert job.state == Job.State.FAILED and QUEUE_UNAVAILABLE in job.error


@pytest.mark.parametrize("url,referer", [
    ("/segments/train/", "/segments/"), ("/cltv/train/", "/cltv/"), ("/churn/train/", "/churn/"),
])  # fmt: skip
def test_retrain_buttons_say_the_queue_is_unavailable(admin_client, url, referer):
    with broker_down():
        response = admin_client.post(url, {"horizon_days": 90}, HTTP_REFERER=f"http://testserver{referer}")
    assert response.status_code == 302 and response["Location"] == f"http://testserver{referer}"
    assert response["Retry-After"] == "30"
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("The job queue is unavailable" in t and "Try again" in t for t in texts), texts
    job = Job.objects.get()
    assert job.state == Job.State.FAILED
    # The page the user lands on shows the message.
    page = admin_client.get(referer)
    assert page.status_code == 200


def test_apis_answer_503_with_retry_after(admin):
    job = Job.objects.create(kind="x", state=Job.State.FAILED)
    request = RequestFactory().post("/api/imports/", HTTP_ACCEPT="application/json")
    request.user = admin
    response = JobQueueUnavailableMiddleware(lambda r: None).process_exception(
        request, JobQueueUnavailable(job, ConnectionError("refused"))
    )
    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert b"The job queue is unavailable" in response.content


def test_pending_jobs_are_not_left_after_the_broker_comes_back(admin):
    with broker_down(), contextlib.suppress(JobQueueUnavailable):
        submit_job(count_to, {"n": 2}, admin)
    assert not Job.objects.filter(state=Job.State.PENDING).exists()
