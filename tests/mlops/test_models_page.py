import pytest
from django.urls import reverse

from rfm_portal.mlops import services
from rfm_portal.mlops.models import ModelVersion

pytestmark = pytest.mark.django_db
Status = ModelVersion.Status


@pytest.fixture(autouse=True)
def _artifact_root(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path


@pytest.fixture
def churn_versions() -> list[ModelVersion]:
    versions = []
    for auc in (0.71, 0.78):
        mv = services.start_model_version("churn", {}, None, None)
        path, _ = services.write_artifact("churn", mv.version, {"auc": auc})
        metrics = {"roc_auc": auc, "brier": 0.1, "roc_curve": {"fpr": [0, 1], "tpr": [0, 1]}}
        versions.append(services.complete_model_version(mv, metrics, path, f"Churn model, AUC {auc}."))
    services.promote(versions[0])
    services.fail_model_version(services.start_model_version("churn", {}, None, None), "MemoryError: too big")
    return versions


def test_models_page_lists_one_compact_row_per_version_with_its_key_metrics(analyst_client, churn_versions):
    response = analyst_client.get(reverse("mlops:models"))
    assert response.status_code == 200
    [group] = response.context["active_kinds"]
    assert group.kind == "churn" and group.active.version == 1 and group.label == "Churn risk"
    rows = list(response.context["page"].object_list)
    assert [(v.version, v.status) for v in rows] == [(3, "failed"), (2, "ready"), (1, "active")]
    body = response.content.decode()
    # churn declares AUC and Brier as its key metrics; the card and the curves are on the version page
    assert "AUC <b>0.780</b>" in body and "Brier <b>0.1000</b>" in body and "MemoryError: too big" in body
    assert "Churn model, AUC 0.71." not in body and "roc_curve" not in body
    assert reverse("mlops:model-detail", args=[churn_versions[0].pk]) in body
    assert "Promote" not in body  # analysts see no admin actions


def test_admin_promotes_and_rolls_back(admin_client, churn_versions):
    v1, v2 = churn_versions
    assert "Promote" in admin_client.get(reverse("mlops:models")).content.decode()
    assert admin_client.post(reverse("mlops:model-promote", args=[v2.pk])).status_code == 302
    v1.refresh_from_db(), v2.refresh_from_db()
    assert (v1.status, v2.status) == (Status.RETIRED, Status.ACTIVE)
    assert admin_client.post(reverse("mlops:model-rollback", args=["churn"])).status_code == 302
    v1.refresh_from_db(), v2.refresh_from_db()
    assert (v1.status, v2.status) == (Status.ACTIVE, Status.READY)


def test_promoting_a_failed_version_is_refused_with_a_message(admin_client, churn_versions):
    failed = ModelVersion.objects.get(status=Status.FAILED)
    response = admin_client.post(reverse("mlops:model-promote", args=[failed.pk]), follow=True)
    assert "only a ready or retired version" in response.content.decode()
    assert ModelVersion.objects.get(status=Status.ACTIVE).version == 1


def test_analyst_cannot_promote_or_roll_back(analyst_client, churn_versions):
    v2 = churn_versions[1]
    assert analyst_client.post(reverse("mlops:model-promote", args=[v2.pk])).status_code == 403
    assert analyst_client.post(reverse("mlops:model-rollback", args=["churn"])).status_code == 403
    v2.refresh_from_db()
    assert v2.status == Status.READY


def test_empty_registry_says_so(analyst_client):
    assert "No models have been trained yet" in analyst_client.get(reverse("mlops:models")).content.decode()
