"""POST /predict_churn: by id (no training/serving skew), by payload, explain, validation, auth, model swap."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rest_framework.test import APIClient

from churn import api, services
from churn.models import ChurnScore
from rfm_portal.customers.features import FEATURE_COLUMNS
from rfm_portal.mlops.services import clear_model_cache, promote

URL = "/predict_churn"


def _record(**overrides) -> dict:
    rec = {
        "recency_days": 120.0, "frequency": 3, "monetary": 150.0, "tenure_days": 400.0, "avg_order_value": 50.0,
        "ipt_mean_days": 60.0, "ipt_std_days": 20.0, "gap_ratio": 2.0, "purchases_90d": 0, "spend_90d": 0.0,
        "purchases_trend": -1, "spend_trend": -50.0, "return_count": 0, "return_share": 0.0, "category_count": 2,
    }
    rec.update(overrides)
    return rec


@pytest.fixture
def session_api(analyst) -> APIClient:
    client = APIClient()
    client.force_login(analyst)
    return client


def test_by_id_equals_the_stored_batch_score(trained, api_client):
    champion, _ = trained
    scores = list(ChurnScore.objects.filter(model_version=champion).select_related("customer")[:50])
    ids = [s.customer.external_id for s in scores]
    r = api_client.post(URL, {"customer_ids": ids, "as_of": champion.data_cutoff.isoformat()}, format="json")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["model_version"] == {"kind": "churn", "version": champion.version, "id": champion.pk,
                                     "model_kind": champion.metrics["model_kind"]}
    assert [row["customer_id"] for row in body["results"]] == ids  # in the order asked
    for row, s in zip(body["results"], scores, strict=True):
        assert row["probability"] == pytest.approx(s.probability, abs=1e-12)
        assert row["risk_band"] == s.risk_band
    single = api_client.post(URL, {"customer_id": ids[0], "as_of": champion.data_cutoff.isoformat()}, format="json")
    assert single.json()["results"][0]["probability"] == pytest.approx(scores[0].probability, abs=1e-12)


def test_by_id_defaults_to_the_latest_data_and_reports_unknown_ids(trained, api_client):
    champion, _ = trained
    known = ChurnScore.objects.filter(model_version=champion).first().customer.external_id
    r = api_client.post(URL, {"customer_ids": [known, "nobody"]}, format="json")
    body = r.json()
    assert r.status_code == 200 and body["count"] == 1
    assert body["unscored"] == [{"customer_id": "nobody", "reason": "unknown customer"}]
    # No data arrived after training, so "the latest data" is the model's own cut-off and the
    # answer equals the stored batch score.
    assert body["as_of"] == champion.data_cutoff.isoformat().replace("+00:00", "Z")
    stored = ChurnScore.objects.get(model_version=champion, customer__external_id=known)
    assert body["results"][0]["probability"] == pytest.approx(stored.probability, abs=1e-9)
    assert api_client.post(URL, {"customer_id": "nobody"}, format="json").status_code == 404


def test_by_payload_matches_stored_features(trained, session_api):
    champion, _ = trained
    s = ChurnScore.objects.filter(model_version=champion).select_related("customer").first()
    record = {name: s.features[name] for name in FEATURE_COLUMNS}
    record["customer_id"] = s.customer.external_id
    r = session_api.post(URL, {"features": record}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["results"][0]["probability"] == pytest.approx(s.probability, abs=1e-12)
    batch = session_api.post(URL, {"features": [_record(), _record(recency_days=2.0, gap_ratio=0.03)]}, format="json")
    rows = batch.json()["results"]
    assert [row["customer_id"] for row in rows] == ["payload-0", "payload-1"]
    assert rows[0]["probability"] > rows[1]["probability"]


def test_explain_adds_up_and_gives_a_counterfactual_below_threshold(trained, api_client):
    r = api_client.post(URL, {"features": [_record(), _record(recency_days=200.0, gap_ratio=3.3)], "explain": True,
                              "top_k": 20}, format="json")
    assert r.status_code == 200, r.content
    threshold = r.json()["threshold"]
    for row in r.json()["results"]:
        e = row["explanation"]
        total = e["base_value"] + sum(c["contribution"] for c in e["contributions"]) + e["rest"]
        assert total == pytest.approx(e["log_odds"], abs=1e-9)
        assert 1 / (1 + np.exp(-e["log_odds"])) == pytest.approx(row["probability"], abs=1e-9)
        assert abs(e["rest"]) < 1e-12  # top_k covers every feature
        cf = row["counterfactual"]
        assert row["probability"] >= threshold and cf is not None
        assert cf["feasible"] and cf["new_probability"] < threshold
        assert f"would bring churn risk from {row['probability']:.0%} to {cf['new_probability']:.0%}" in cf["message"]
        assert cf["method"] == "purchases" and cf["changes"][0]["orders"] == 1 and cf["changes"][0]["days"] == 0
        assert cf["purchase_scenarios"][0].startswith("1 more order worth about") and "now" in cf["message"]
        assert cf["new_probability"] in [c["risk_after"] for c in cf["changes"]]  # the headline is a scenario
    top3 = api_client.post(URL, {"features": _record(), "explain": True, "top_k": 3}, format="json").json()
    e = top3["results"][0]["explanation"]
    assert len(e["contributions"]) == 3
    assert e["base_value"] + sum(c["contribution"] for c in e["contributions"]) + e["rest"] == pytest.approx(
        e["log_odds"], abs=1e-9)


def test_explained_answers_are_exactly_what_the_output_serializer_documents(trained, api_client):
    """explain=true skips PredictChurnOutputSerializer (cost); running it through the serializer changes nothing."""
    champion, _ = trained
    ids = list(ChurnScore.objects.filter(model_version=champion).values_list("customer__external_id", flat=True)[:30])
    for body in ({"features": [_record(), _record(recency_days=1.0, gap_ratio=0.02, purchases_90d=4)], "explain": True},
                 {"customer_ids": [*ids, "nobody"], "explain": True}):
        answer = api_client.post(URL, body, format="json").json()
        assert answer["count"] >= 2 and all("explanation" in row for row in answer["results"])
        assert any(row["counterfactual"] for row in answer["results"])
        assert json.loads(json.dumps(api.PredictChurnOutputSerializer(answer).data)) == answer


def test_low_risk_customer_needs_no_counterfactual(trained, api_client):
    r = api_client.post(URL, {"features": _record(recency_days=1.0, gap_ratio=0.02, frequency=30, purchases_90d=6,
                                                  purchases_trend=3, spend_90d=400.0, spend_trend=100.0,
                                                  monetary=2000.0, ipt_mean_days=12.0, ipt_std_days=4.0),
                              "explain": True}, format="json")
    row = r.json()["results"][0]
    assert row["probability"] < r.json()["threshold"] and row["counterfactual"] is None


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"features": _record(frequency=-1)}, "record 0: frequency must be ≥ 0"),
        ({"features": [_record(), {**_record(), "return_share": 1.5}]}, "record 1: return_share"),
        ({"features": [_record(), {k: v for k, v in _record().items() if k != "monetary"}]},
         "record 1: missing field(s): monetary"),
        ({"features": [_record(colour="red")]}, "record 0: unknown field(s): colour"),
        ({"features": [_record(frequency="lots")]}, "record 0: frequency must be a number"),
        ({"features": "nope"}, "Must be an object"),
        ({}, "exactly one of"),
        ({"customer_id": "x", "features": _record()}, "exactly one of"),
    ],
)
def test_bad_payloads_are_400_with_field_errors(trained, api_client, payload, needle):
    r = api_client.post(URL, payload, format="json")
    assert r.status_code == 400
    assert needle in str(r.json())


def test_batches_over_ten_thousand_are_refused(trained, api_client):
    ids = [f"id-{i}" for i in range(api.MAX_BATCH + 1)]
    r = api_client.post(URL, {"customer_ids": ids}, format="json")
    assert r.status_code == 400 and "At most 10,000" in str(r.json()["customer_ids"])
    r = api_client.post(URL, {"features": [_record()] * (api.MAX_BATCH + 1)}, format="json")
    assert r.status_code == 400 and "At most 10,000" in str(r.json()["features"])


def test_a_batch_of_ten_thousand_is_scored(trained, api_client):
    r = api_client.post(URL, {"features": [_record(recency_days=float(i % 300)) for i in range(api.MAX_BATCH)]},
                        format="json")
    assert r.status_code == 200 and r.json()["count"] == api.MAX_BATCH


def test_anonymous_is_refused(trained, outsider_client):
    r = outsider_client.post(URL, {"features": _record()}, content_type="application/json")
    assert r.status_code in (401, 403)


def test_no_active_model_is_503_with_a_clear_message(db, api_client):
    r = api_client.post(URL, {"features": _record()}, format="json")
    assert r.status_code == 503 and "No churn model is active" in r.json()["detail"]


def test_unreadable_artifact_is_503_not_500(trained, api_client, settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "elsewhere"
    clear_model_cache()
    r = api_client.post(URL, {"features": _record()}, format="json")
    assert r.status_code == 503 and "cannot be read" in r.json()["detail"]


def test_the_served_model_is_swapped_after_promotion(trained, api_client):
    first, _ = trained
    body = api_client.post(URL, {"features": _record()}, format="json").json()
    assert body["model_version"]["version"] == first.version
    second, _ = services.train_churn_model(cutoff="2024-11-01")
    body = api_client.post(URL, {"features": _record()}, format="json").json()
    assert body["model_version"]["version"] == second.version
    promote(first)  # back to the first (retired → active)
    body = api_client.post(URL, {"features": _record()}, format="json").json()
    assert body["model_version"]["version"] == first.version
