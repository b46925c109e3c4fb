from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from rfm_portal.accounts.models import APIKey

pytestmark = pytest.mark.django_db


def test_list_shows_name_prefix_status_and_dates(admin_client, api_key):
    key, _raw = api_key
    APIKey.objects.create(name="Old", prefix="0ld0ld00", hashed_key="x" * 64, expires_at=timezone.now() - timedelta(1))
    APIKey.objects.create(name="Gone", prefix="g0neg0ne", hashed_key="y" * 64, revoked_at=timezone.now())
    response = admin_client.get(reverse("accounts:api-keys"))
    assert response.status_code == 200
    statuses = {k.name: k.status for k in response.context["keys"]}
    assert statuses == {"CRM": "active", "Old": "expired", "Gone": "revoked"}
    body = response.content.decode()
    assert key.prefix in body
    assert key.hashed_key not in body


def test_created_key_is_shown_once_and_stored_hashed(admin_client, admin):
    response = admin_client.post(reverse("accounts:api-key-create"), {"name": "HubSpot", "expires_in_days": "30"})
    assert response.status_code == 200
    raw = response.context["created"].raw_key
    assert raw in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    key = APIKey.objects.get(name="HubSpot")
    assert key.hashed_key == APIKey.hash_key(raw) != raw
    assert key.prefix == raw.split(".")[0]
    assert key.created_by == admin
    assert timedelta(days=29, hours=23) < key.expires_at - timezone.now() <= timedelta(days=30)
    # Never again: neither the list nor any later page carries it.
    assert raw not in admin_client.get(reverse("accounts:api-keys")).content.decode()


def test_key_without_expiry_never_expires(admin_client):
    admin_client.post(reverse("accounts:api-key-create"), {"name": "Forever", "expires_in_days": ""})
    assert APIKey.objects.get(name="Forever").expires_at is None


def test_invalid_expiry_is_rejected(admin_client):
    response = admin_client.post(reverse("accounts:api-key-create"), {"name": "Bad", "expires_in_days": "0"})
    assert response.status_code == 200
    assert response.context["form"].errors["expires_in_days"]
    assert not APIKey.objects.exists()


def test_revoke_makes_key_unusable(admin_client, api_key, client):
    key, raw = api_key
    assert client.get(reverse("mlops:api-jobs"), headers={"authorization": f"Api-Key {raw}"}).status_code == 200
    response = admin_client.post(reverse("accounts:api-key-revoke", args=[key.pk]))
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.status == "revoked"
    assert client.get(reverse("mlops:api-jobs"), headers={"authorization": f"Api-Key {raw}"}).status_code == 401


def test_analyst_cannot_see_create_or_revoke_keys(analyst_client, api_key):
    key, _raw = api_key
    assert analyst_client.get(reverse("accounts:api-keys")).status_code == 403
    assert analyst_client.post(reverse("accounts:api-key-create"), {"name": "Mine"}).status_code == 403
    assert analyst_client.post(reverse("accounts:api-key-revoke", args=[key.pk])).status_code == 403
    key.refresh_from_db()
    assert key.revoked_at is None
    assert not APIKey.objects.filter(name="Mine").exists()
