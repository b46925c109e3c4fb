"""The Models page pages its rows; a version page renders the model card (safely) and its figures."""

import pytest
from django.urls import reverse

from rfm_portal.mlops import services
from rfm_portal.mlops.kinds import key_metrics
from rfm_portal.mlops.models import ModelVersion

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _artifact_root(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path


def _version(kind: str, metrics: dict, card: str = "") -> ModelVersion:
    mv = services.start_model_version(kind, {"horizon_days": 90}, None, None)
    path, _ = services.write_artifact(kind, mv.version, {"x": 1})
    return services.complete_model_version(mv, metrics, path, card)


def test_version_page_renders_the_model_card_as_markdown_with_html_escaped(analyst_client):
    card = "# Uplift model\n\n**Qini** 0.12\n\n<script>alert(1)</script>\n\n[bad](javascript:alert(1))"
    mv = _version("uplift", {"qini": 0.12, "auuc": 0.5, "curve": [1, 2, 3]})
    ModelVersion.objects.filter(pk=mv.pk).update(model_card=card)  # a card with hostile markup, as stored
    response = analyst_client.get(reverse("mlops:model-detail", args=[mv.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "<h1>Uplift model</h1>" in body and "<strong>Qini</strong>" in body
    assert "<script>alert(1)" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert 'href="javascript:' not in body
    assert "Uplift v1" in body  # an unregistered kind is still named in words


def test_unregistered_kind_falls_back_to_its_first_plain_numbers():
    shown = key_metrics("embeddings", {"curve": [1, 2], "dims": 64, "recall_at_10": 0.8312, "flag": True, "n": 5})
    assert [(m.label, m.text) for m in shown] == [("Dims", "64"), ("Recall at 10", "0.831"), ("N", "5")]


def test_models_page_is_paged_and_filters_by_kind(analyst_client):
    for i in range(30):
        _version("segmentation", {"k": 4, "silhouette_by_k": {"4": 0.41}, "customers": 1000 + i})
    _version("cltv", {"chosen_label": "BG/NBD", "holdout_aggregate_error": -0.031, "holdout_rmse": 1.234})
    first = analyst_client.get(reverse("mlops:models"))
    assert len(first.context["page"].object_list) == 25 and first.context["page"].paginator.count == 31
    body = first.content.decode()
    assert "Holdout error <b>-3.1%</b>" in body and "Silhouette <b>0.410</b>" in body
    assert "Clusters (k) <b>4</b>" in body
    second = analyst_client.get(reverse("mlops:models"), {"page": 2})
    assert len(second.context["page"].object_list) == 6
    only = analyst_client.get(reverse("mlops:models"), {"kind": "cltv"})
    assert [mv.kind for mv in only.context["page"].object_list] == ["cltv"]


def test_unknown_version_is_a_404(analyst_client):
    assert analyst_client.get(reverse("mlops:model-detail", args=[999999])).status_code == 404
