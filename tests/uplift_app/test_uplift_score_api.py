"""POST /uplift_score: by id (same as the stored scores), batch, payload, profit inputs, strict validation, auth."""

from __future__ import annotations

import pytest

from rfm_portal.customers.features import FEATURE_COLUMNS
from rfm_portal.mlops.services import clear_model_cache, promote
from uplift import api
from uplift.models import UpliftScore

URL = "/uplift_score"


def _record(**overrides) -> dict:
    rec = {
        "recency_days": 120.0, "frequency": 3, "monetary": 150.0, "tenure_days": 400.0, "avg_order_value": 50.0,
        "ipt_mean_days": 60.0, "ipt_std_days": 20.0, "gap_ratio": 2.0, "purchases_90d": 0, "spend_90d": 0.0,
        "purchases_trend": -1, "spend_trend": -50.0, "return_count": 0, "return_share": 0.0, "category_count": 2,
    }
    rec.update(overrides)
    return rec


def test_by_id_batch_and_payload(trained, api_client):
    champion, _ = trained
    scores = list(UpliftScore.objects.filter(model_version=champion).select_related("customer")
                  .order_by("customer__external_id")[:30])
    ids = [s.customer.external_id for s in scores]
    r = api_client.post(URL, {"customer_ids": [*ids, "nobody"]}, format="json")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["model_version"] == {"kind": "uplift", "version": champion.version, "id": champion.pk,
                                     "learner": champion.metrics["learner"]}
    assert body["count"] == 30 and [x["customer_id"] for x in body["results"]] == ids
    assert body["unscored"] == [{"customer_id": "nobody", "reason": "unknown customer"}]
    assert body["as_of"].startswith(champion.data_cutoff.date().isoformat())
    for s, res in zip(scores, body["results"], strict=True):  # no training/serving skew
        assert res["uplift"] == pytest.approx(s.uplift) and res["group"] == s.group
        assert res["uplift_low"] <= res["uplift"] <= res["uplift_high"]
        assert res["expected_profit"] == pytest.approx(s.expected_profit)
        assert res["recommendation"] == ("contact" if s.contact else "dont_contact") and res["reason"]
    # profit inputs change profit (not the effect); a huge contact cost makes nobody worth contacting
    r2 = api_client.post(URL, {"customer_ids": ids, "contact_cost": 10_000}, format="json").json()
    assert r2["profit_inputs"]["contact_cost"] == 10_000
    assert all(x["recommendation"] == "dont_contact" for x in r2["results"])
    assert [x["uplift"] for x in r2["results"]] == [x["uplift"] for x in body["results"]]
    # one id; unknown one → 404
    one = api_client.post(URL, {"customer_id": ids[0]}, format="json")
    assert one.status_code == 200 and one.json()["count"] == 1
    assert api_client.post(URL, {"customer_id": "nobody"}, format="json").status_code == 404
    # a raw feature payload
    p = api_client.post(URL, {"features": [_record(customer_id="crm-1"), _record(recency_days=5.0, frequency=9)]},
                        format="json")
    assert p.status_code == 200, p.content
    assert [x["customer_id"] for x in p.json()["results"]] == ["crm-1", "payload-1"] and p.json()["as_of"] is None


def test_the_served_model_is_swapped_after_promotion(trained, api_client):
    champion, challenger = trained
    r = api_client.post(URL, {"features": _record()}, format="json").json()
    assert r["model_version"]["kind"] == "uplift"
    # promote the challenger's artifact under the uplift kind: the API must follow the registry
    champion.artifact_path, champion.artifact_sha256 = challenger.artifact_path, challenger.artifact_sha256
    champion.save(update_fields=["artifact_path", "artifact_sha256"])
    clear_model_cache()
    r2 = api_client.post(URL, {"features": _record()}, format="json").json()
    assert r2["model_version"]["learner"] == challenger.metrics["learner"]
    promote(champion)  # already active: a no-op, the answer stays
    assert api_client.post(URL, {"features": _record()}, format="json").status_code == 200


@pytest.mark.parametrize(("payload", "field", "needle"), [
    ({}, "non_field_errors", "exactly one"),
    ({"customer_id": "1", "customer_ids": ["2"]}, "non_field_errors", "exactly one"),
    ({"customer_id": "1", "colour": "red"}, "colour", "Unknown field"),
    ({"customer_id": "1", "margin": "NaN"}, "margin", "number"),
    ({"customer_id": "1", "contact_cost": "Infinity"}, "contact_cost", "number"),
    ({"customer_id": "1", "contact_cost": 1e300}, "contact_cost", "less than or equal"),
    ({"customer_id": "1", "margin": 1.5}, "margin", "less than or equal"),
    ({"customer_id": "1", "incentive_cost": -1}, "incentive_cost", "greater than or equal"),
    ({"customer_id": "1", "incentive_cost": True}, "incentive_cost", "A number is required"),
    ({"customer_id": "1", "as_of": "1066-10-14T00:00:00Z"}, "as_of", "between"),
    ({"customer_id": "1", "as_of": "2999-01-01"}, "as_of", "between"),
    ({"customer_id": "1", "as_of": "yesterday"}, "as_of", "RFC 3339"),
    ({"customer_ids": []}, "customer_ids", "empty"),
    ({"customer_ids": ["x" * 65]}, "customer_ids", "no more than 64"),
    ({"features": _record(recency_days="NaN")}, "features", "must be a number"),
    ({"features": _record(spend_90d="-Infinity")}, "features", "must be a number"),
    ({"features": _record(monetary=1e300)}, "features", "must be between"),
    ({"features": _record(shoe_size=44)}, "features", "unknown field"),
    ({"features": "hello"}, "features", "object"),
    ({"features": _record(), "as_of": "2024-01-01T00:00:00Z"}, "as_of", "Only applies"),
])
def test_bad_payloads_are_400_with_field_errors(db, api_client, payload, field, needle):
    r = api_client.post(URL, payload, format="json")
    assert r.status_code == 400, r.content
    body = r.json()
    assert field in body, body
    assert needle in str(body[field]), body


def test_non_finite_json_literals_are_refused(db, api_client):
    r = api_client.post(URL, '{"customer_id": "1", "margin": NaN}', content_type="application/json")
    assert r.status_code == 400


def test_batches_over_ten_thousand_are_refused(db, api_client):
    r = api_client.post(URL, {"customer_ids": [str(i) for i in range(api.MAX_BATCH + 1)]}, format="json")
    assert r.status_code == 400 and "At most 10,000" in str(r.json()["customer_ids"])


def test_anonymous_is_refused(db, outsider_client):
    r = outsider_client.post(URL, {"customer_id": "1"}, content_type="application/json")
    assert r.status_code in (401, 403)


def test_no_active_model_is_503_with_a_clear_message(db, api_client):
    r = api_client.post(URL, {"features": _record()}, format="json")
    assert r.status_code == 503 and "No uplift model is active" in r.json()["detail"]


def test_openapi_schema_documents_the_endpoint(analyst_client):
    schema = analyst_client.get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    assert "uplift_score" in schema and "expected_profit" in schema and "sleeping_dog" in schema
    assert set(FEATURE_COLUMNS) and "batch with profit inputs" in schema
