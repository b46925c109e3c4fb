"""Large uploads: kept on disk, imported by a background Job with progress; atomic and idempotent as ever."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile

from rfm_portal.customers import services
from rfm_portal.customers.models import ImportJob, Transaction
from rfm_portal.customers.tasks import import_file_task
from rfm_portal.mlops.models import Job
from rfm_portal.mlops.progress import fail_dead_job
from tests.mlops.test_queue_unavailable import broker_down

pytestmark = pytest.mark.django_db(transaction=True)

RETAIL = Path(__file__).parent / "files" / "online_retail_sample.csv"
URL = "/api/imports/"


@pytest.fixture(autouse=True)
def background_for_every_upload(settings, tmp_path):
    settings.IMPORT_BACKGROUND_THRESHOLD_BYTES = 100  # the sample file (~1 kB) counts as large here
    settings.IMPORT_SPOOL_DIR = tmp_path / "spool"
    return settings.IMPORT_SPOOL_DIR


def upload() -> SimpleUploadedFile:
    return SimpleUploadedFile("retail.csv", RETAIL.read_bytes(), content_type="text/csv")


def run_job(job_id: int) -> Job:
    with contextlib.suppress(Exception):  # a rejected import fails its job: checked by the caller
        import_file_task.apply(args=[job_id])
    return Job.objects.get(pk=job_id)


def test_api_answers_202_and_the_job_imports_with_progress(api_client, background_for_every_upload, monkeypatch):
    # Progress after every chunk (of 2 rows here): reported on a connection of its own, since the
    # import's connection is inside its transaction (reporting on it once hung the import).
    monkeypatch.setattr(services, "IMPORT_CHUNK_ROWS", 2)
    response = api_client.post(URL, {"file": upload(), "skip_invalid": "true"}, format="multipart")

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "pending" and body["job"] and response["Location"] == f"/api/jobs/{body['job']}/"
    assert Transaction.objects.count() == 0
    assert len(list(background_for_every_upload.iterdir())) == 1  # on disk, waiting for a worker

    job = run_job(body["job"])
    assert job.state == Job.State.SUCCEEDED and job.progress == 100, job.error
    assert job.result["rows_inserted"] == 8 and job.result["rows_rejected"] == 1
    imported = ImportJob.objects.get(pk=body["id"])
    assert (imported.status, imported.rows_inserted, imported.rows_rejected) == ("succeeded", 8, 1)
    assert "Imported through api-key:" in imported.message
    assert Transaction.objects.count() == 8
    assert list(background_for_every_upload.iterdir()) == []  # the stored file is removed

    # Redelivered message: nothing runs twice. The same file again: nothing added.
    import_file_task.apply(args=[job.pk])
    again = api_client.post(URL, {"file": upload(), "skip_invalid": "true"}, format="multipart").json()
    run_job(again["job"])
    second = ImportJob.objects.get(pk=again["id"])
    assert (second.status, second.rows_inserted, second.rows_duplicate) == ("succeeded", 0, 8)
    assert Transaction.objects.count() == 8


def test_a_file_with_invalid_rows_imports_nothing_and_fails_its_job(api_client):
    body = api_client.post(URL, {"file": upload()}, format="multipart").json()
    job = run_job(body["job"])
    imported = ImportJob.objects.get(pk=body["id"])
    assert imported.status == "rejected" and imported.errors == [{"line": 6, "reason": "no customer id"}]
    assert job.state == Job.State.FAILED and "1 of 9 rows are invalid, so nothing was imported" in job.error
    assert Transaction.objects.count() == 0


def test_the_upload_page_queues_a_large_file_and_shows_its_progress(admin_client):
    response = admin_client.post("/imports/upload/", {"file": upload(), "kind": "transactions", "skip_invalid": "on"})
    imported = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/imports/{imported.pk}/"
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("queued for import in the background" in t and f"job #{imported.job_id}" in t for t in texts)
    page = admin_client.get(f"/imports/{imported.pk}/").content.decode()
    assert "Importing in the background" in page and 'http-equiv="refresh"' in page

    run_job(imported.job_id)
    page = admin_client.get(f"/imports/{imported.pk}/").content.decode()
    assert "Succeeded" in page and "Importing in the background" not in page


def test_broker_down_answers_503_and_records_the_import_as_failed(api_client, background_for_every_upload):
    with broker_down():
        response = api_client.post(URL, {"file": upload(), "skip_invalid": "true"}, format="multipart")
    assert response.status_code == 503 and response["Retry-After"] == "30"
    body = response.json()
    assert "The job queue is unavailable" in body["detail"]
    assert body["import_job"]["status"] == "failed" and "upload the file again" in body["import_job"]["message"]
    assert list(background_for_every_upload.iterdir()) == []


def test_an_import_whose_worker_died_is_marked_failed(api_client):
    body = api_client.post(URL, {"file": upload(), "skip_invalid": "true"}, format="multipart").json()
    fail_dead_job(Job.objects.get(pk=body["job"]), "The worker running this job stopped.")
    imported = ImportJob.objects.get(pk=body["id"])
    assert imported.status == "failed" and "The background import stopped" in imported.message
    assert Transaction.objects.count() == 0
