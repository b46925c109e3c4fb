"""No free database connection → 503 + Retry-After (JSON for the API, a plain page otherwise), never a 500.

The pool's timeout is simulated by making every new connection raise what Django raises then: an
OperationalError caused by psycopg_pool.PoolTimeout. A real exhausted pool is tested against the
running server in test_pool_bounded_server.py.
"""

from __future__ import annotations

import pytest
from django.db import connections
from django.db.backends.postgresql.base import DatabaseWrapper
from django.test import Client
from psycopg_pool import PoolTimeout

from rfm_portal.serving.middleware import RETRY_AFTER_SECONDS, is_database_unavailable


@pytest.fixture
def pool_exhausted(monkeypatch):
    def no_connection(self, conn_params):
        raise PoolTimeout("couldn't get a connection after 10.00 sec")

    connections.close_all()
    monkeypatch.setattr(DatabaseWrapper, "get_new_connection", no_connection)
    yield
    monkeypatch.undo()
    connections.close_all()


def test_settings_pool_the_connections(settings) -> None:
    database = settings.DATABASES["default"]
    assert database["CONN_MAX_AGE"] == 0  # the pool hands connections out per request
    pool = database["OPTIONS"]["pool"]
    assert 1 <= pool["min_size"] <= pool["max_size"] and pool["timeout"] > 0


@pytest.mark.django_db(transaction=True)
def test_api_answers_503_json_with_retry_after(api_key, pool_exhausted) -> None:
    client = Client(raise_request_exception=False, headers={"authorization": f"Api-Key {api_key[1]}"})
    response = client.post("/predict_churn", {"customer_id": "1"}, content_type="application/json")
    assert response.status_code == 503
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert response["Content-Type"] == "application/json"
    assert "retry" in response.json()["detail"].lower()


@pytest.mark.django_db(transaction=True)
def test_page_answers_plain_503_when_the_session_cannot_be_read(pool_exhausted, settings) -> None:
    # The session is read by a middleware (LoginRequiredMiddleware), outside any view: handler500's path.
    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    client.cookies["sessionid"] = "x" * 32
    response = client.get("/customers/")
    assert response.status_code == 503
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert response["Content-Type"].startswith("text/html") and b"Busy" in response.content


def test_other_errors_are_not_mistaken_for_an_unavailable_database() -> None:
    from django.db import IntegrityError, OperationalError

    assert is_database_unavailable(OperationalError("too many clients already"))
    try:
        raise OperationalError("pool") from PoolTimeout("timeout")
    except OperationalError as error:
        assert is_database_unavailable(error)
    assert not is_database_unavailable(IntegrityError("duplicate key"))
    assert not is_database_unavailable(ValueError("bad"))
