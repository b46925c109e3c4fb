"""REST: GET /api/segments/ and GET /api/customers/<external_id>/rfm/."""

from __future__ import annotations

import pytest
from django.urls import reverse

from rfm_portal.customers.models import Customer
from segmentation import services


def test_segments_endpoint_with_an_api_key(trio, api_client):
    mv = services.train_segmentation()
    response = api_client.get(reverse("segmentation:api-segments"))
    assert response.status_code == 200
    data = response.json()
    assert data["model_version"]["version"] == mv.version and data["customers"] == 3 and data["k"] == 2
    segments = {s["name"]: s for s in data["segments"]}
    assert segments["Champions"]["customers"] == 1
    assert segments["Champions"]["revenue_share"] == pytest.approx(160 / 220)
    assert segments["Champions"]["action"].startswith("Reward them")
    assert segments["New"]["customers"] == 0 and segments["New"]["mean_monetary"] is None
    assert sum(c["customers"] for c in data["clusters"]) == 3
    assert {c["name"] for c in data["clusters"]} == set(mv.metrics["cluster_names"])


def test_customer_rfm_with_a_session(trio, analyst_client):
    mv = services.train_segmentation()
    response = analyst_client.get(reverse("segmentation:api-customer-rfm", kwargs={"external_id": "A"}))
    assert response.status_code == 200
    data = response.json()
    assert data["customer_id"] == "A" and data["model_version"]["id"] == mv.pk
    assert (data["recency_days"], data["frequency"], data["monetary"]) == (1, 3, "160.0000")
    assert (data["r_score"], data["f_score"], data["m_score"], data["rfm_code"]) == (5, 5, 5, "555")
    assert data["segment"] == "Champions" and data["segment_action"].startswith("Reward them")
    assert data["cluster_name"] in mv.metrics["cluster_names"]


def test_unknown_customer_is_404(trio, api_client):
    services.train_segmentation()
    response = api_client.get(reverse("segmentation:api-customer-rfm", kwargs={"external_id": "nobody"}))
    assert response.status_code == 404


def test_customer_without_a_purchase_is_404_with_a_reason(trio, api_client):
    services.train_segmentation()
    Customer.objects.create(external_id="D")
    response = api_client.get(reverse("segmentation:api-customer-rfm", kwargs={"external_id": "D"}))
    assert response.status_code == 404 and "no RFM score in segmentation v1" in response.json()["detail"]


def test_no_active_model_is_409_with_a_clear_message(trio, api_client):
    for url in (reverse("segmentation:api-segments"), reverse("segmentation:api-customer-rfm", args=["A"])):
        response = api_client.get(url)
        assert response.status_code == 409
        assert response.json()["detail"].startswith("No segmentation model is active yet")


@pytest.mark.parametrize("name,kwargs", [("api-segments", {}), ("api-customer-rfm", {"external_id": "A"})])
def test_anonymous_callers_are_refused(trio, outsider_client, name, kwargs):
    response = outsider_client.get(reverse(f"segmentation:{name}", kwargs=kwargs))
    assert response.status_code in (401, 403)


def test_schema_documents_the_endpoints(analyst_client):
    schema = analyst_client.get(reverse("api-schema"), {"format": "json"}).json()
    assert "/api/segments/" in schema["paths"] and "/api/customers/{external_id}/rfm/" in schema["paths"]
