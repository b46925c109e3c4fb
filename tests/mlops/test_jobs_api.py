import pytest
from django.urls import reverse

from rfm_portal.mlops.models import Job, ModelVersion

pytestmark = pytest.mark.django_db


def test_api_key_reads_jobs_and_a_single_job(api_client, admin):
    job = Job.objects.create(kind="train_churn", state=Job.State.SUCCEEDED, progress=100, result={"auc": 0.8},
                             created_by=admin)  # fmt: skip
    listed = api_client.get(reverse("mlops:api-jobs"))
    assert listed.status_code == 200
    [row] = listed.json()
    assert row["id"] == job.pk and row["state"] == "succeeded" and row["created_by"] == "root"
    detail = api_client.get(reverse("mlops:api-job", args=[job.pk])).json()
    assert detail["result"] == {"auc": 0.8}
    assert api_client.get(reverse("mlops:api-job", args=[job.pk + 1])).status_code == 404


def test_model_versions_over_the_api(analyst_client):
    ModelVersion.objects.create(kind="cltv", version=1, status="active", metrics={"mae": 3.2})
    [row] = analyst_client.get(reverse("mlops:api-models")).json()
    assert (row["kind"], row["version"], row["status"], row["metrics"]) == ("cltv", 1, "active", {"mae": 3.2})
    assert "artifact_path" not in row  # server paths are not the integration's business


def test_api_is_read_only(api_client):
    assert api_client.post(reverse("mlops:api-jobs"), {}).status_code == 405
