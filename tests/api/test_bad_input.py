"""No input reaches a 500: each input measured to break an endpoint before is now a 400 (or 413/415/422) with a
JSON body naming the problem. Active models exist (conftest), so the validation is not hidden behind a 503."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from rfm_portal.core.api import UnscorableInput, check_finite_output
from rfm_portal.core.parsers import MAX_JSON_DEPTH, json_depth
from rfm_portal.customers.features import FEATURE_COLUMNS, INTEGER_FEATURES
from rfm_portal.customers.models import ImportJob
from rfm_portal.mlops import services as registry

ROW = {"frequency": 3, "recency": 20.0, "T": 40.0, "monetary_value": 35.0}
FEATURES = {name: (2 if name in INTEGER_FEATURES else 10.0) for name in FEATURE_COLUMNS} | {"return_share": 0.1}


@pytest.fixture
def models(trained_models, settings):
    settings.ARTIFACT_ROOT = trained_models.artifacts
    registry.clear_model_cache()
    return trained_models


def post_json(client, url: str, body) -> tuple[int, dict]:
    raw = body if isinstance(body, str) else json.dumps(body)
    response = client.post(url, raw, content_type="application/json")
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    return response.status_code, response.json()


def test_valid_requests_still_score(models, api_client):
    status, body = post_json(api_client, "/predict_cltv", {**ROW, "unit": "weeks", "margin": 0.5})
    assert status == 200, body
    status, body = post_json(api_client, "/predict_churn", {"features": FEATURES})
    assert status == 200, body
    hostile_id = next(iter(models.hostile))
    status, body = post_json(api_client, "/predict_churn", {"customer_id": hostile_id,
                                                            "as_of": "2024-07-01T00:00:00Z"})
    assert status == 200, body


@pytest.mark.parametrize("as_of", ["9999-12-31T00:00:00Z", "0001-01-01T00:00:00Z", "1677-09-21T00:00:00Z",
                                   "2024-02-30T00:00:00Z", "2024-07-01", "tomorrow", 20240701])
def test_as_of_out_of_range_or_malformed_is_400(models, api_client, as_of):
    status, body = post_json(api_client, "/predict_churn", {"customer_id": "x", "as_of": as_of})
    assert status == 400 and "as_of" in body, body


@pytest.mark.parametrize("change", [
    {"monetary_value": 1e308}, {"monetary_value": 1e10}, {"T": 1e300, "recency": 1.0}, {"frequency": 1e19},
    {"frequency": 10**30}, {"frequency": 2.5}, {"monetary_value": "12"}, {"frequency": True},
])
def test_cltv_huge_or_non_numbers_are_400(models, api_client, change):
    status, body = post_json(api_client, "/predict_cltv", {**ROW, **change, "unit": "weeks"})
    assert status == 400, body
    assert set(body["customers"]["0"]) == set(change) - {"recency"} or set(body["customers"]["0"]) <= set(change)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_literals_are_400(models, api_client, literal):
    raw = '{"frequency": 3, "recency": 20, "T": 40, "monetary_value": ' + literal + ', "unit": "weeks"}'
    status, body = post_json(api_client, "/predict_cltv", raw)
    assert status == 400 and literal in body["detail"], body


@pytest.mark.parametrize("margin", [False, True, "0.5", None, [0.5]])
def test_margin_is_strictly_a_number(models, api_client, margin):
    status, body = post_json(api_client, "/predict_cltv", {**ROW, "unit": "weeks", "margin": margin})
    assert status == 400 and "margin" in body, body


@pytest.mark.parametrize(("name", "value"), [("return_count", 1e19), ("frequency", 2**64), ("monetary", 1e308),
                                             ("purchases_90d", -(2**63) - 1), ("recency_days", "5")])
def test_churn_features_beyond_bounds_are_400_not_wrapped(models, api_client, name, value):
    status, body = post_json(api_client, "/predict_churn", {"features": {**FEATURES, name: value}})
    assert status == 400 and name in body["features"][0], body


@pytest.mark.parametrize(("url", "body"), [
    ("/predict_churn", {"customer_id": "x", "explian": True}),
    ("/predict_churn", {"features": FEATURES, "as_of": "2024-07-01T00:00:00Z"}),
    ("/predict_cltv", {**ROW, "unit": "weeks", "discount": 0.1}),
    ("/predict_cltv", {"customers": [{**ROW, "colour": "red"}], "unit": "weeks"}),
    ("/predict_cltv", {"customer_id": "x", "unit": "weeks"}),
])
def test_unknown_or_misplaced_keys_are_400(models, api_client, url, body):
    status, answer = post_json(api_client, url, body)
    assert status == 400, answer


def test_cross_field_rules_are_400(models, api_client):
    status, body = post_json(api_client, "/predict_cltv", {**ROW, "recency": 50.0, "unit": "weeks"})
    assert status == 400 and body["customers"]["0"]["recency"] == ["Must not exceed T."]
    twice = [{**FEATURES, "customer_id": "a"}, {**FEATURES, "customer_id": "a"}]
    status, body = post_json(api_client, "/predict_churn", {"features": twice})
    assert status == 400 and "duplicate" in body["features"][0]


@pytest.mark.parametrize("url", ["/predict_churn", "/predict_cltv"])
def test_json_nested_5000_deep_is_400(models, api_client, url):
    deep = '{"customer_ids": ' + "[" * 5000 + "]" * 5000 + "}"
    status, body = post_json(api_client, url, deep)
    assert status == 400 and body["detail"] == "JSON parse error - nested more than 32 deep.", body
    just_too_deep = '{"customer_ids": ' + "[" * 32 + "]" * 32 + "}"
    status, body = post_json(api_client, url, just_too_deep)
    assert status == 400 and body["detail"] == "JSON parse error - nested more than 32 deep.", body


def test_json_depth():
    assert json_depth({"a": [1, {"b": "[[[[{{{"}]}) == 3
    assert json_depth("[[[") == 0 and json_depth([]) == 1
    assert json_depth([{"x": 1}] * 10_000) == 2
    assert json_depth(json.loads("[" * 500 + "]" * 500)) == MAX_JSON_DEPTH + 1  # stops counting past the limit
    assert MAX_JSON_DEPTH >= 8  # the deepest real payload is 3: body > customers > row


def test_body_over_the_upload_limit_is_413(models, api_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    status, body = post_json(api_client, "/predict_cltv", {"customers": [ROW] * 50, "unit": "weeks"})
    assert status == 413 and "1,000 bytes" in body["detail"], body


def test_form_body_on_a_json_endpoint_is_415(models, api_client):
    response = api_client.post("/predict_cltv", {"customer_id": "x"}, format="multipart")
    assert response.status_code == 415 and response["Content-Type"].startswith("application/json")


def test_non_finite_model_output_is_422_not_500():
    check_finite_output(np.array([[0.1, 2.0]]), "rows")
    with pytest.raises(UnscorableInput) as raised:
        check_finite_output(np.array([[0.1, np.inf]]), "these rows")
    assert raised.value.status_code == 422 and "these rows" in str(raised.value.detail)


def test_header_only_csv_is_a_clear_400(models, api_client):
    upload = SimpleUploadedFile("empty.csv", b"InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID\n")
    response = api_client.post("/api/imports/", {"file": upload}, format="multipart")
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == ImportJob.Status.REJECTED and "no data rows" in body["message"]
    assert body["rows_inserted"] == 0


def test_malformed_multipart_is_400_json_with_a_message(models, api_client):
    response = api_client.generic("POST", "/api/imports/", b"--xyz\r\nContent-Disposition: form-data\r\n\r\n\x00",
                                  content_type="multipart/form-data; boundary=xyz")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["file"] or response.json()["detail"]
    no_boundary = api_client.generic("POST", "/api/imports/", b"garbage", content_type="multipart/form-data")
    assert no_boundary.status_code == 400 and no_boundary["Content-Type"].startswith("application/json")
    assert "boundary" in no_boundary.json()["detail"].lower()


def test_unknown_job_id_is_json_404(models, api_client):
    for job_id in ("999999", "null,null", "1e3", "٣"):
        response = api_client.get(f"/api/jobs/{job_id}/")
        assert response.status_code == 404 and response["Content-Type"].startswith("application/json"), job_id
