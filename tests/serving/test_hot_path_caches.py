"""The scoring APIs' per-process caches: a verified API key and the active model version.

With both on (production defaults), a single-row score needs no database query; revoking a key or
promoting a version in this process takes effect at once, in other processes within the interval.
"""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from rfm_portal.accounts import services as account_services
from rfm_portal.accounts.authentication import forget_api_key
from rfm_portal.accounts.models import APIKey
from rfm_portal.mlops import services as registry
from rfm_portal.mlops.models import ModelVersion


@pytest.fixture(autouse=True)
def _caches_on(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.API_KEY_CACHE_SECONDS = 30
    settings.ACTIVE_MODEL_RECHECK_SECONDS = 30
    registry.clear_model_cache()
    forget_api_key()
    yield
    registry.clear_model_cache()
    forget_api_key()


def registered(kind: str, obj: object) -> ModelVersion:
    mv = registry.start_model_version(kind, {}, None, None)
    path, _ = registry.write_artifact(kind, mv.version, obj)
    registry.complete_model_version(mv, {}, path)
    return registry.promote(mv)


def models_list(client: APIClient) -> int:
    return client.get("/api/models/").status_code


def key_queries(client: APIClient) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert models_list(client) == 200
    return sum("accounts_apikey" in q["sql"] for q in queries.captured_queries)


@pytest.mark.django_db
def test_a_verified_key_is_read_once_then_revocation_applies_at_once(api_client, api_key) -> None:
    assert key_queries(api_client) >= 1  # read, and last_used_at written
    assert key_queries(api_client) == 0  # remembered
    account_services.api_key_revoke(api_key=api_key[0])
    response = api_client.get("/api/models/")
    assert response.status_code in (401, 403) and "revoked" in response.json()["detail"]


@pytest.mark.django_db
def test_a_key_changed_through_the_orm_is_forgotten(api_client, api_key) -> None:
    from datetime import timedelta

    from django.utils import timezone

    assert models_list(api_client) == 200
    key = APIKey.objects.get(pk=api_key[0].pk)
    key.expires_at = timezone.now() - timedelta(seconds=1)
    key.save(update_fields=["expires_at"])
    assert "expired" in api_client.get("/api/models/").json()["detail"]


@pytest.mark.django_db
def test_a_key_is_read_again_after_the_interval(api_client, api_key, settings) -> None:
    settings.API_KEY_CACHE_SECONDS = 0.2
    assert key_queries(api_client) >= 1
    APIKey.objects.filter(pk=api_key[0].pk).update(revoked_at="2020-01-01T00:00:00Z")  # as another process would
    assert models_list(api_client) == 200  # within the interval: still the remembered key
    time.sleep(0.25)
    assert models_list(api_client) in (401, 403)


@pytest.mark.django_db
def test_active_model_is_rechecked_only_after_the_interval(settings) -> None:
    first = registered("cltv", {"v": 1})
    with CaptureQueriesContext(connection) as queries:
        entry = registry.load_active_entry("cltv")
        assert registry.load_active("cltv") == {"v": 1}
    assert (entry.pk, entry.version) == (first.pk, first.version)
    assert len(queries) == 1  # the second call is served without a query

    second = registered("cltv", {"v": 2})  # promoted in this process: seen at once
    assert registry.load_active_entry("cltv").version == second.version

    ModelVersion.objects.filter(pk=second.pk).update(status=ModelVersion.Status.RETIRED)  # another process
    ModelVersion.objects.filter(pk=first.pk).update(status=ModelVersion.Status.ACTIVE)
    assert registry.load_active("cltv") == {"v": 2}  # within the interval
    settings.ACTIVE_MODEL_RECHECK_SECONDS = 0
    assert registry.load_active("cltv") == {"v": 1}


@pytest.mark.django_db
def test_rollback_in_this_process_is_seen_at_once() -> None:
    registered("cltv", {"v": 1})
    registered("cltv", {"v": 2})
    assert registry.load_active("cltv") == {"v": 2}
    registry.rollback("cltv")
    assert registry.load_active("cltv") == {"v": 1}
