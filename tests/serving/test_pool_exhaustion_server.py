"""An exhausted pool on the real server: requests wait DB_POOL_TIMEOUT, then 503 + Retry-After; never a 500.

`manage.py serve` with one worker and a one-connection pool. The API-key table is locked from here, so
the first request holds the only connection while it waits on the lock; the others cannot get one.
"""

from __future__ import annotations

import http.client
import threading
import time

import psycopg
import pytest

from rfm_portal.accounts import services as account_services

from .live import ConnectionSampler, admin_dsn, live_server

pytestmark = pytest.mark.django_db(transaction=True)


def test_exhausted_pool_answers_503_with_retry_after(tmp_path) -> None:
    key = account_services.api_key_create(name="exhaust").raw_key
    with live_server(tmp_path, 1, DB_POOL_MIN_SIZE="1", DB_POOL_MAX_SIZE="1", DB_POOL_TIMEOUT="0.3",
                     API_KEY_CACHE_SECONDS="0") as base:
        port = int(base.rsplit(":", 1)[1])
        answers: list[tuple[int, str | None, str]] = []

        def call() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/api/models/", headers={"Authorization": f"Api-Key {key}"})
            response = conn.getresponse()
            answers.append((response.status, response.getheader("Retry-After"), response.getheader("Content-Type")))
            response.read()
            conn.close()

        with ConnectionSampler() as sampler, psycopg.connect(admin_dsn()) as locker:
            locker.execute("LOCK TABLE accounts_apikey IN ACCESS EXCLUSIVE MODE")
            threads = [threading.Thread(target=call) for _ in range(6)]
            for t in threads:
                t.start()
                time.sleep(0.05)
            time.sleep(1.5)
            locker.commit()  # releases the lock: the request holding the connection finishes
            for t in threads:
                t.join(30)
    statuses = [status for status, _, _ in answers]
    assert len(answers) == 6 and set(statuses) <= {200, 503}, answers
    assert statuses.count(200) >= 1 and statuses.count(503) >= 1, answers
    assert all(retry and ctype == "application/json" for status, retry, ctype in answers if status == 503), answers
    assert sampler.max_seen <= 1
