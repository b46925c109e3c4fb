"""REST for CRMs: GET /api/campaigns/ and GET /api/campaigns/<id>/targets/ (API key), strict query validation."""

from __future__ import annotations

from django.urls import reverse

from campaigns import services
from tests.campaigns.conftest import make_planned_campaign


def _approved(analyst, admin, **kw):
    c = make_planned_campaign(analyst, **kw)
    return services.campaign_approve(services.campaign_submit(c, user=analyst), user=admin)


def test_list_campaigns(api_client, planned, analyst, admin):
    approved = _approved(analyst, admin, name="Approved one")
    response = api_client.get(reverse("campaigns:api-list"))
    assert response.status_code == 200
    by_name = {r["name"]: r for r in response.json()["results"]}
    assert by_name["Approved one"]["targets_available"] is True and by_name["Approved one"]["contacts"] == 6
    assert by_name[planned.name]["targets_available"] is False and by_name[planned.name]["status"] == "draft"
    response = api_client.get(reverse("campaigns:api-list"), {"status": "approved"})
    assert [r["id"] for r in response.json()["results"]] == [approved.pk]


def test_targets_paged_and_holdout_apart(api_client, analyst, admin):
    c = _approved(analyst, admin, n_contact=7, n_holdout=3)
    url = reverse("campaigns:api-targets", args=[c.pk])
    first = api_client.get(url, {"page_size": 5}).json()
    second = api_client.get(url, {"page_size": 5, "page": 2}).json()
    assert first["count"] == 7 and first["next_page"] == 2 and second["next_page"] is None
    ids = [r["customer_id"] for r in first["results"] + second["results"]]
    assert len(set(ids)) == 7
    assert set(first["results"][0]) == {"customer_id", "channel", "message", "predicted_effect", "expected_profit",
                                        "segment"}
    holdout = api_client.get(url, {"list": "holdout"}).json()
    assert holdout["count"] == 3 and not {r["customer_id"] for r in holdout["results"]} & set(ids)


def test_targets_of_a_draft_are_refused(api_client, planned):
    response = api_client.get(reverse("campaigns:api-targets", args=[planned.pk]))
    assert response.status_code == 409 and "approved" in response.json()["detail"]
    assert api_client.get(reverse("campaigns:api-targets", args=[999999])).status_code == 404


def test_strict_query_validation(api_client, analyst, admin):
    c = _approved(analyst, admin)
    url = reverse("campaigns:api-targets", args=[c.pk])
    response = api_client.get(url, {"pagesize": 10})
    assert response.status_code == 400 and response.json() == {"pagesize": ["Unknown parameter."]}
    assert "page_size" in api_client.get(url, {"page_size": 0}).json()
    assert "page_size" in api_client.get(url, {"page_size": 10_000_000}).json()
    assert "list" in api_client.get(url, {"list": "everyone"}).json()
    assert "page" in api_client.get(url, {"page": "x"}).json()
    assert "status" in api_client.get(reverse("campaigns:api-list"), {"status": "nope"}).json()


def test_needs_a_key_or_session(client, planned):
    assert client.get(reverse("campaigns:api-list")).status_code in (401, 403)


def test_documented_in_the_schema(admin_client):
    schema = admin_client.get(reverse("api-schema"), {"format": "json"}).json()
    targets = schema["paths"]["/api/campaigns/{id}/targets/"]["get"]
    assert {"200", "400", "401", "403", "404", "409"} <= set(targets["responses"])
    assert {p["name"] for p in targets["parameters"]} >= {"page", "page_size", "list"}
    assert "/api/campaigns/" in schema["paths"]
