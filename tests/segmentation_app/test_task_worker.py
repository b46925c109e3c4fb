"""The retrain job submitted from the Segments page runs on a real Celery worker (Redis broker)."""

from __future__ import annotations

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.urls import reverse

from rfm_portal.celery import app
from rfm_portal.mlops.models import Job, ModelVersion

pytestmark = pytest.mark.django_db(transaction=True)


def wait_until_finished(job: Job, timeout: float) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.state in (Job.State.SUCCEEDED, Job.State.FAILED):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job still {job.state} after {timeout} s")


@pytest.fixture
def worker():
    app.control.purge()
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30) as running:
        yield running


def test_retrain_from_the_page_is_run_by_the_worker(trio, admin_client, worker):
    response = admin_client.post(reverse("segmentation:train"), {"k": "2"})
    assert response.status_code == 302

    job = wait_until_finished(Job.objects.get(kind="segmentation.train"), timeout=60)

    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.result["k"] == 2 and job.result["customers"] == 3
    assert job.model_version.status == ModelVersion.Status.ACTIVE
    html = admin_client.get(reverse("segmentation:overview")).content.decode()
    assert 'data-model-version="1"' in html
