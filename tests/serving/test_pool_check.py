"""A pooled connection that PostgreSQL closed while it sat idle is replaced when borrowed, not handed to a request."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection
from django.test import Client


@pytest.mark.django_db(transaction=True)
def test_a_connection_closed_by_the_server_while_idle_is_replaced(settings) -> None:
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"]  # with a pool: ConnectionPool.check_connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        idle_pid = cursor.fetchone()[0]
    connection.close()  # back to the pool, idle

    params = connection.get_connection_params()
    params.pop("pool", None)
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", [idle_pid]).fetchone()[0]

    client = Client(raise_request_exception=False)
    response = client.get("/accounts/login/")  # a page that reads the database (the session)
    assert response.status_code == 200, response.content  # the dead connection was not given to this request
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != idle_pid
