"""POST /predict_cltv: by id, by payload, validation, limits, auth, model swap, no model."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from cltv.models import CLTVScore
from rfm_portal.mlops import services as registry
from rfm_portal.mlops.models import ModelVersion

from .conftest import Trained

URL = "/predict_cltv"
ROW = {"frequency": 3, "recency": 20.0, "T": 40.0, "monetary_value": 35.0}
OUT = {"p_alive", "expected_purchases_30d", "expected_purchases_90d", "expected_purchases_365d", "expected_aov",
       "clv", "clv_p10", "clv_p50", "clv_p90"}  # fmt: skip

pytestmark = pytest.mark.django_db


def post(client, body, **kw):
    return (
        client.post(URL, body, format="json", **kw)
        if isinstance(client, APIClient)
        else client.post(URL, body, content_type="application/json", **kw)
    )


def test_single_payload_with_api_key(trained: Trained, api_client: APIClient) -> None:
    response = post(api_client, {**ROW, "unit": "weeks"})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["model_version"] == trained.mv.version and body["unit"] == "W"
    (row,) = body["results"]
    assert OUT <= set(row) and row["source"] == "payload"
    assert 0 <= row["p_alive"] <= 1 and row["clv"] >= 0
    assert row["clv_p10"] <= row["clv_p50"] <= row["clv_p90"]


def test_units_are_converted(trained: Trained, api_client: APIClient) -> None:
    weeks = post(api_client, {"customers": [ROW], "unit": "weeks"}).json()["results"][0]
    days_row = {**ROW, "recency": ROW["recency"] * 7, "T": ROW["T"] * 7}
    days = post(api_client, {"customers": [days_row], "unit": "days"}).json()["results"][0]
    for key in OUT:
        assert days[key] == pytest.approx(weeks[key], rel=1e-6, abs=1e-6), key


def test_by_customer_id_returns_the_stored_scores(trained: Trained, analyst_client: Client) -> None:
    stored = CLTVScore.objects.filter(model_version=trained.mv).select_related("customer").order_by("-clv")[:3]
    ids = [s.customer.external_id for s in stored]
    body = post(analyst_client, {"customer_ids": [*ids, "nobody"]}).json()
    assert [r["customer_id"] for r in body["results"]] == ids and body["not_found"] == ["nobody"]
    for score, row in zip(stored, body["results"], strict=True):
        assert row["source"] == "stored" and row["clv"] == pytest.approx(score.clv)
    one = post(analyst_client, {"customer_id": ids[0]}).json()["results"][0]
    assert one["clv"] == pytest.approx(stored[0].clv)


def test_by_customer_id_with_other_settings_rescored(trained: Trained, api_client: APIClient) -> None:
    score = CLTVScore.objects.filter(model_version=trained.mv).select_related("customer").order_by("-clv").first()
    body = post(api_client, {"customer_id": score.customer.external_id, "margin": 0.5}).json()
    row = body["results"][0]
    assert row["source"] == "stored_history" and body["margin"] == 0.5
    assert row["clv"] == pytest.approx(0.5 * score.clv, rel=1e-6)
    assert row["p_alive"] == pytest.approx(score.p_alive, rel=1e-9)


def test_an_unscored_customer_is_recomputed_from_transactions(trained: Trained, api_client: APIClient) -> None:
    score = CLTVScore.objects.filter(model_version=trained.mv, frequency__gt=2).select_related("customer").first()
    ext = score.customer.external_id
    score.delete()  # as if the customer had been imported after training (rolled back after the test)
    row = post(api_client, {"customer_id": ext}).json()["results"][0]
    assert row["source"] == "recomputed"
    assert row["p_alive"] == pytest.approx(score.p_alive, rel=1e-9)
    assert row["clv"] == pytest.approx(score.clv, rel=1e-9)


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"customers": [{**ROW, "frequency": -1}], "unit": "weeks"}, ("customers", "0", "frequency")),
        ({"customers": [ROW, {**ROW, "frequency": 2.5}], "unit": "weeks"}, ("customers", "1", "frequency")),
        ({"customers": [{**ROW, "recency": 50.0}], "unit": "weeks"}, ("customers", "0", "recency")),
        ({"customers": [{**ROW, "monetary_value": -3}], "unit": "weeks"}, ("customers", "0", "monetary_value")),
        (
            {"customers": [{"frequency": 1, "recency": 1, "T": 2}], "unit": "weeks"},
            ("customers", "0", "monetary_value"),
        ),
        ({"customers": [{**ROW, "T": "abc"}], "unit": "weeks"}, ("customers", "0", "T")),
        ({"customers": [{**ROW, "frequency": 0}], "unit": "weeks"}, ("customers", "0", "recency")),
        ({"customers": [ROW]}, ("unit",)),
        ({**ROW, "unit": "months"}, ("unit",)),
        ({"customers": [ROW], "unit": "weeks", "margin": -1}, ("margin",)),
        ({}, ("non_field_errors",)),
        ({"customer_id": "1", "customers": [ROW], "unit": "weeks"}, ("non_field_errors",)),
    ],
)
def test_bad_payloads_are_400_with_field_errors(trained: Trained, api_client: APIClient, body, path) -> None:
    response = post(api_client, body)
    assert response.status_code == 400, response.json()
    node = response.json()
    for key in path:
        assert key in node, (path, response.json())
        node = node[key]
    assert node


def test_batches_up_to_10000_rows(trained: Trained, api_client: APIClient) -> None:
    rows = [{**ROW, "frequency": i % 10, "recency": float(i % 10) * 3, "T": 40.0} for i in range(10_000)]
    response = post(api_client, {"customers": rows, "unit": "weeks"})
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 10_000 and min(r["clv"] for r in results) >= 0
    too_many = post(api_client, {"customers": [*rows, ROW], "unit": "weeks"})
    assert too_many.status_code == 400 and "customers" in too_many.json()
    ids = post(api_client, {"customer_ids": [str(i) for i in range(10_001)]})
    assert ids.status_code == 400 and "customer_ids" in ids.json()


def test_anonymous_is_refused(trained: Trained) -> None:
    response = APIClient().post(URL, {**ROW, "unit": "weeks"}, format="json")
    assert response.status_code in (401, 403)
    bad_key = APIClient(HTTP_AUTHORIZATION="Api-Key nope.nope")
    assert bad_key.post(URL, {**ROW, "unit": "weeks"}, format="json").status_code in (401, 403)


@pytest.mark.parametrize("state", ["revoked", "expired"])
def test_revoked_and_expired_keys_are_refused(trained: Trained, state: str) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from rfm_portal.accounts import services as account_services

    created = account_services.api_key_create(name=f"{state} key")
    if state == "revoked":
        account_services.api_key_revoke(api_key=created.api_key)
    else:
        created.api_key.expires_at = timezone.now() - timedelta(minutes=1)
        created.api_key.save(update_fields=["expires_at"])
    client = APIClient(HTTP_AUTHORIZATION=f"Api-Key {created.raw_key}")
    assert client.post(URL, {**ROW, "unit": "weeks"}, format="json").status_code in (401, 403)


def test_the_model_is_swapped_after_a_promotion(trained: Trained, api_client: APIClient) -> None:
    first = post(api_client, {**ROW, "unit": "weeks"}).json()
    bundle = registry.load_active("cltv")
    assert registry.load_active("cltv") is bundle  # cached per process
    # a second version with different parameters, promoted through the registry
    import dataclasses

    changed = dataclasses.replace(bundle, params={k: v * 1.5 for k, v in bundle.params.items()})
    mv = registry.start_model_version("cltv", {"clv_horizon_days": 365})
    path, _ = registry.write_artifact("cltv", mv.version, changed)
    registry.complete_model_version(mv, {}, path)
    registry.promote(mv)
    second = post(api_client, {**ROW, "unit": "weeks"}).json()
    assert second["model_version"] == mv.version != first["model_version"]
    assert second["results"][0]["p_alive"] != pytest.approx(first["results"][0]["p_alive"])
    assert registry.load_active("cltv").params == changed.params
    registry.rollback("cltv")
    assert post(api_client, {**ROW, "unit": "weeks"}).json()["model_version"] == first["model_version"]


def test_no_active_model_is_503(trained: Trained, api_client: APIClient) -> None:
    ModelVersion.objects.filter(kind="cltv").update(status=ModelVersion.Status.RETIRED)  # rolled back after
    response = post(api_client, {**ROW, "unit": "weeks"})
    assert response.status_code == 503 and "No active CLTV model" in response.json()["detail"]


def test_in_the_openapi_schema(analyst_client: Client) -> None:
    schema = analyst_client.get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    assert "/predict_cltv" in schema and "predict_cltv" in schema


def test_purchase_horizon_by_id_and_its_units(trained: Trained, api_client: APIClient) -> None:
    score = CLTVScore.objects.filter(model_version=trained.mv, frequency__gt=0).select_related("customer").first()
    ext = score.customer.external_id
    response = post(api_client, {"customer_id": ext, "purchase_horizon": 90})
    assert response.status_code == 200, response.json()
    (row,) = response.json()["results"]
    assert row["source"] == "stored_history" and response.json()["purchase_horizon_days"] == 90
    assert row["expected_purchases"] == pytest.approx(score.expected_purchases_90d, rel=1e-6)
    weeks = post(api_client, {"customer_id": ext, "purchase_horizon": 10, "purchase_horizon_unit": "weeks"}).json()
    days = post(api_client, {"customer_id": ext, "purchase_horizon": 70}).json()
    assert weeks["results"][0]["expected_purchases"] == pytest.approx(days["results"][0]["expected_purchases"])
    without = post(api_client, {"customer_id": ext}).json()["results"][0]
    assert "expected_purchases" not in without and without["source"] == "stored"


def test_purchase_horizon_is_validated(trained: Trained, api_client: APIClient) -> None:
    assert post(api_client, {**ROW, "unit": "weeks", "purchase_horizon": -1}).status_code == 400
    bad = post(api_client, {**ROW, "unit": "weeks", "purchase_horizon_unit": "weeks"})
    assert bad.status_code == 400 and "purchase_horizon" in bad.json()
