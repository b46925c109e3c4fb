"""The Celery task updates its Job: progress, result, link to the model version, or the error."""

from __future__ import annotations

from rfm_portal.customers.models import Customer
from rfm_portal.mlops.models import Job, ModelVersion
from rfm_portal.mlops.progress import start_job
from segmentation.tasks import scheduled_retrain, train_segmentation_task
from tests.factories import make_transaction


def test_task_trains_and_records_the_result_on_its_job(trio, admin):
    job = start_job(train_segmentation_task.name, {"k": 2, "cutoff": None}, admin)

    train_segmentation_task.apply(args=[job.pk])

    job.refresh_from_db()
    mv = ModelVersion.objects.get(kind="segmentation")
    assert job.state == Job.State.SUCCEEDED and job.progress == 100, job.error
    assert job.model_version == mv and mv.status == ModelVersion.Status.ACTIVE and mv.trained_by == admin
    assert job.result == {
        "model_version": 1, "model_version_id": mv.pk, "customers": 3, "k": 2, "data_cutoff": "2024-03-21",
    }  # fmt: skip


def test_task_on_degenerate_data_fails_the_job_with_the_users_message(db):
    for external_id in "PQ":
        make_transaction(Customer.objects.create(external_id=external_id), external_id, "2024-01-01T10:00", 1, "5")
    job = start_job(train_segmentation_task.name, {})

    train_segmentation_task.apply(args=[job.pk])

    job.refresh_from_db()
    assert job.state == Job.State.FAILED
    assert job.error == "SegmentationError: Only 2 customer(s) have purchases; at least 3 are needed for this step."
    assert job.model_version.status == ModelVersion.Status.FAILED


def test_scheduled_retrain_queues_an_ordinary_job(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job_id = scheduled_retrain.apply().get()
    job = Job.objects.get(pk=job_id)
    assert job.kind == "segmentation.train" and job.state == Job.State.PENDING and len(callbacks) == 1
