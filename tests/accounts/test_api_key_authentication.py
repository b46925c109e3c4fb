from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from rfm_portal.accounts import services

pytestmark = pytest.mark.django_db


def get(client, raw: str | None, header: str | None = None):
    headers = {"authorization": header if header is not None else f"Api-Key {raw}"} if (raw or header) else {}
    return client.get(reverse("mlops:api-jobs"), headers=headers)


def test_valid_key_is_accepted_and_last_use_recorded(client, api_key):
    key, raw = api_key
    assert key.last_used_at is None
    assert get(client, raw).status_code == 200
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_unknown_revoked_expired_and_malformed_keys_get_401(client, admin):
    assert get(client, "deadbeef.not-a-real-key").status_code == 401
    revoked = services.api_key_create(name="Revoked", created_by=admin)
    services.api_key_revoke(api_key=revoked.api_key)
    response = get(client, revoked.raw_key)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]
    expired = services.api_key_create(name="Expired", expires_in_days=1)
    expired.api_key.expires_at = timezone.now() - timedelta(seconds=1)
    expired.api_key.save()
    response = get(client, expired.raw_key)
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]
    assert get(client, None, header="Api-Key one two").status_code == 401


def test_anonymous_api_request_is_refused_with_challenge(client):
    response = get(client, None)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Api-Key"


def test_portal_session_works_on_the_api(analyst_client):
    assert analyst_client.get(reverse("mlops:api-jobs")).status_code == 200


def test_api_key_is_not_a_portal_login(client, api_key):
    _key, raw = api_key
    response = client.get(reverse("mlops:jobs"), headers={"authorization": f"Api-Key {raw}"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_openapi_schema_documents_api_key_auth(api_client):
    schema = api_client.get(reverse("api-schema"), {"format": "json"}).json()
    scheme = schema["components"]["securitySchemes"]["ApiKeyAuth"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "Authorization")
    assert {"ApiKeyAuth": []} in schema["paths"]["/api/jobs/"]["get"]["security"]


def test_last_use_is_written_at_most_once_a_minute(client, api_key):
    key, raw = api_key
    assert get(client, raw).status_code == 200
    key.refresh_from_db()
    first_use = key.last_used_at
    assert get(client, raw).status_code == 200
    key.refresh_from_db()
    assert key.last_used_at == first_use  # within the minute: no second UPDATE
    type(key).objects.filter(pk=key.pk).update(last_used_at=first_use - timedelta(minutes=2))
    assert get(client, raw).status_code == 200
    key.refresh_from_db()
    assert key.last_used_at > first_use
