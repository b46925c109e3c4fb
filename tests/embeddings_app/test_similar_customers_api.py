"""POST /similar_customers: by id, by seed audience, by products; filters; strict validation; 503."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cltv.models import CLTVScore
from embeddings import services
from rfm_portal.customers.models import Customer
from rfm_portal.mlops.models import ModelVersion
from rfm_portal.mlops.services import load_active

from .conftest import register_bundle

URL = "/similar_customers"


def post(client, body, raw: str | None = None):
    return client.post(URL, data=raw if raw is not None else json.dumps(body), content_type="application/json")


def test_503_without_a_model(api_client, generated):
    response = post(api_client, {"customer_id": generated["customer_id"][0]})
    assert response.status_code == 503 and "No lookalike model" in response.json()["detail"]


def test_refused_without_credentials(client, model):
    assert post(client, {"customer_id": "10001"}).status_code in (401, 403)


def test_one_customer_ranked_by_similarity_with_why_and_segment(api_client, model, generated, template_bundle):
    seed = str(template_bundle.external_ids[0])
    response = post(api_client, {"customer_id": seed, "k": 15})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model_version"] == {"kind": "embeddings", "version": model.version, "id": model.pk}
    assert body["count"] == 15 == len(body["results"])
    sims = [r["similarity"] for r in body["results"]]
    assert sims == sorted(sims, reverse=True) and all(-1.0 <= s <= 1.0001 for s in sims)
    assert seed not in {r["customer_id"] for r in body["results"]}
    assert set(body["results"][0]) == {"customer_id", "similarity", "shared_categories", "segment"}
    # exactly the exact-search neighbours of the seed's vector
    v = template_bundle.vectors
    expected = [str(template_bundle.external_ids[i]) for i in np.argsort(-(v @ v[0]), kind="stable")[1:16]]
    assert {r["customer_id"] for r in body["results"]} == set(expected)
    # "why" lists categories the neighbour and the seed both buy
    seed_mix = template_bundle.category_mix[0]
    for r in body["results"]:
        for category in r["shared_categories"]:
            assert seed_mix[template_bundle.categories.index(category)] >= 0.1


def test_a_session_user_may_call_it_too(analyst_client, model, template_bundle):
    assert post(analyst_client, {"customer_id": str(template_bundle.external_ids[3]), "k": 3}).status_code == 200


def test_seed_audience_lists_unknown_ids_and_excludes_the_seed(api_client, model, template_bundle):
    seed = [str(e) for e in template_bundle.external_ids[:20]]
    response = post(api_client, {"customer_ids": [*seed, "NOPE-1", "NOPE-2"], "k": 50})
    body = response.json()
    assert response.status_code == 200 and body["unknown_ids"] == ["NOPE-1", "NOPE-2"] and body["count"] == 50
    assert not set(seed) & {r["customer_id"] for r in body["results"]}
    kept = post(api_client, {"customer_ids": seed[:1], "k": 5, "exclude_seed": False}).json()
    assert kept["results"][0]["customer_id"] == seed[0] and kept["results"][0]["similarity"] > 0.999


def test_all_unknown_ids_is_a_400_and_one_unknown_id_a_404(api_client, model):
    response = post(api_client, {"customer_ids": ["X1", "X2"]})
    assert response.status_code == 400 and response.json()["unknown_ids"] == ["X1", "X2"]
    assert post(api_client, {"customer_id": "X1"}).status_code == 404


def test_cold_start_from_products_finds_customers_of_that_taste(api_client, model, template_bundle):
    garden = [str(s) for s, c in zip(template_bundle.skus, template_bundle.product_categories, strict=True)
              if c == "Garden"][:6]
    body = post(api_client, {"products": [*garden, "NO-SKU"], "k": 20}).json()
    assert body["count"] == 20 and body["unknown_products"] == ["NO-SKU"]
    assert sum("Garden" in r["shared_categories"] for r in body["results"]) >= 12
    assert post(api_client, {"products": ["NO-SKU"]}).status_code == 400


def test_a_customer_newer_than_the_model_is_folded_in(api_client, generated, template_bundle):
    newcomer = str(template_bundle.external_ids[5])
    register_bundle(template_bundle, drop={newcomer})
    body = post(api_client, {"customer_ids": [newcomer, str(template_bundle.external_ids[6])], "k": 5}).json()
    assert body["folded_in"] == [newcomer] and body["count"] == 5
    assert post(api_client, {"customer_id": newcomer, "k": 10}).json()["count"] == 10
    # folded in from their purchases, they land near the vector the full model learned for them
    bundle = load_active("embeddings")
    vectors, _mix, empty = services._fold_in_customers(bundle, [Customer.objects.get(external_id=newcomer).pk])
    assert not empty and float(vectors[0] @ template_bundle.vectors[5]) >= 0.6


def test_country_and_p_alive_filters(api_client, model, template_bundle):
    seed = str(template_bundle.external_ids[0])
    others = Customer.objects.exclude(country="United Kingdom").values_list("country", flat=True)
    country = others.first()
    body = post(api_client, {"customer_id": seed, "k": 10, "country": country.upper()}).json()
    members = set(Customer.objects.filter(country=country).values_list("external_id", flat=True))
    assert body["count"] >= 1 and all(r["customer_id"] in members for r in body["results"])
    # P(alive) needs a CLTV model
    response = post(api_client, {"customer_id": seed, "min_p_alive": 0.5})
    assert response.status_code == 400 and "min_p_alive" in response.json()
    cltv = ModelVersion.objects.create(kind="cltv", version=1, status=ModelVersion.Status.ACTIVE)
    alive = list(Customer.objects.order_by("pk")[:40])
    CLTVScore.objects.bulk_create([
        CLTVScore(customer=c, model_version=cltv, first_purchase="2023-01-01", frequency=1, recency=1, T=2,
                  monetary=1, p_alive=0.9 if i % 2 else 0.1, expected_purchases_30d=0, expected_purchases_90d=0,
                  expected_purchases_365d=0, expected_aov=0, clv=0, clv_p10=0, clv_p50=0, clv_p90=0)
        for i, c in enumerate(alive)])
    body = post(api_client, {"customer_id": seed, "k": 100, "min_p_alive": 0.5}).json()
    allowed = {c.external_id for i, c in enumerate(alive) if i % 2} - {seed}
    assert {r["customer_id"] for r in body["results"]} == allowed


@pytest.mark.parametrize(("body", "field"), [
    ({"customer_id": "10001", "colour": "red"}, "colour"),
    ({"customer_id": "10001", "k": 0}, "k"),
    ({"customer_id": "10001", "k": 1001}, "k"),
    ({"customer_id": "10001", "k": 10**30}, "k"),
    ({"customer_id": "10001", "k": 2.5}, "k"),
    ({"customer_id": "10001", "k": "10"}, "k"),
    ({"customer_id": "10001", "k": True}, "k"),
    ({"customer_id": "10001", "exclude_seed": "yes"}, "exclude_seed"),
    ({"customer_id": "10001", "min_p_alive": 1.5}, "min_p_alive"),
    ({"customer_id": "10001", "min_p_alive": "0.5"}, "min_p_alive"),
    ({"customer_id": 10001}, "customer_id"),
    ({"customer_ids": []}, "customer_ids"),
    ({"customer_ids": [str(i) for i in range(1001)]}, "customer_ids"),
    ({"customer_ids": "10001"}, "customer_ids"),
    ({"products": [1, 2]}, "products"),
    ({"customer_id": "x" * 65}, "customer_id"),
    ({"customer_id": "10001", "country": ""}, "country"),
])
def test_field_errors(api_client, model, body, field):
    response = post(api_client, body)
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()


def test_exactly_one_seed_is_required(api_client, model):
    for body in ({}, {"customer_id": "1", "products": ["a"]}):
        response = post(api_client, body)
        assert response.status_code == 400 and "non_field_errors" in response.json()


@pytest.mark.parametrize("raw", [
    '{"customer_id": "10001", "min_p_alive": NaN}',
    '{"customer_id": "10001", "min_p_alive": Infinity}',
    '{"customer_id": "10001", "k": 1e400}',
    '{"customer_id": "10001", "min_p_alive": 1e400}',
    '["10001"]',
    'not json',
])
def test_non_finite_numbers_and_malformed_bodies_are_400(api_client, model, raw):
    response = post(api_client, None, raw=raw)
    assert response.status_code == 400, response.content


def test_openapi_documents_the_endpoint_with_examples(admin_client):
    schema = admin_client.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/similar_customers"]["post"]
    assert operation["operationId"] == "similar_customers"
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    assert {"OneCustomer", "SeedAudience", "ColdStartFromProducts"} <= set(examples)
