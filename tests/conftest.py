"""The fixed cast: an analyst, an admin, an outsider (anonymous) and an API client."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from rfm_portal.accounts.models import APIKey, User

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(autouse=True, scope="session")
def _tests_run_on_postgresql(django_db_setup, django_db_blocker):
    """The suite is meant for the real PostgreSQL; fail loudly if pointed elsewhere."""
    with django_db_blocker.unblock():
        assert connection.vendor == "postgresql", f"tests must run on PostgreSQL, not {connection.vendor}"


@pytest.fixture
def analyst(db) -> User:
    return User.objects.create_user("alice", "alice@example.com", PASSWORD, role=User.Role.ANALYST)


@pytest.fixture
def admin(db) -> User:
    return User.objects.create_user("root", "root@example.com", PASSWORD, role=User.Role.ADMIN)


@pytest.fixture
def analyst_client(analyst) -> Client:
    client = Client()
    client.force_login(analyst)
    return client


@pytest.fixture
def admin_client(admin) -> Client:
    client = Client()
    client.force_login(admin)
    return client


@pytest.fixture
def outsider_client(db) -> Client:
    """Nobody logged in."""
    return Client()


@pytest.fixture
def api_key(db, admin) -> tuple[APIKey, str]:
    raw = APIKey.generate_raw_key()
    key = APIKey.objects.create(name="CRM", prefix=raw.split(".")[0], hashed_key=APIKey.hash_key(raw), created_by=admin)
    return key, raw


@pytest.fixture
def api_client(api_key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key[1]}")
    return client
