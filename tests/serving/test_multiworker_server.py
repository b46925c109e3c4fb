"""`manage.py serve --workers 2` (uvicorn, DEBUG off, PostgreSQL, Redis): pooled, bounded, keep-alive, websockets.

One server for the module, on the test database with a 2-connection pool per worker: whatever the
load, it holds at most 2 x 2 connections and answers no 500. Websockets on every worker get the
progress a job reports from another process (this one) through the Redis channel layer.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter

import pytest
import websocket
from django.test import Client

from rfm_portal.accounts import services as account_services
from rfm_portal.accounts.models import User
from rfm_portal.mlops.models import Job
from rfm_portal.mlops.progress import JobReporter

from .live import ConnectionSampler, live_server, server_connections

WORKERS, POOL_MAX = 2, 2
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        # every request reads its API key from the database (no per-process cache): the pool is exercised
        with live_server(tmp_path_factory.mktemp("live"), WORKERS, DB_POOL_MIN_SIZE="1",
                         DB_POOL_MAX_SIZE=str(POOL_MAX), API_KEY_CACHE_SECONDS="0") as base:
            yield base


def hammer(base: str, path: str, headers: dict[str, str], clients: int, seconds: float) -> tuple[Counter, int]:
    """`clients` threads, one keep-alive connection each, GET `path` until `seconds` pass (≤ 200 requests each)."""
    port = int(base.rsplit(":", 1)[1])
    statuses: Counter = Counter()
    reconnects = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.connect()
        sock = conn.sock
        for _ in range(200):
            if time.monotonic() > deadline:
                break
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            with lock:
                statuses[response.status] += 1
                if conn.sock is not sock:
                    reconnects[0] += 1
                    sock = conn.sock
        conn.close()

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    return statuses, reconnects[0]


def test_concurrent_api_load_stays_within_the_pools_and_keeps_connections_alive(server) -> None:
    key = account_services.api_key_create(name="live").raw_key
    with ConnectionSampler() as sampler:
        statuses, reconnects = hammer(server, "/api/models/", {"Authorization": f"Api-Key {key}"}, 24, 3.0)
    assert statuses[200] > 0 and set(statuses) <= {200, 503}, statuses  # busy → 503, never 500
    assert 1 <= sampler.max_seen <= WORKERS * POOL_MAX, sampler.max_seen
    assert reconnects == 0  # HTTP keep-alive: every client kept its one connection
    time.sleep(0.5)
    assert server_connections() <= WORKERS * POOL_MAX  # nothing piles up after the load


def test_websockets_on_every_worker_receive_job_progress(server, transactional_db) -> None:
    user = User.objects.create_user("ws-user", "ws@example.com", "x-long-password-1", role=User.Role.ANALYST)
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    url = server.replace("http://", "ws://") + "/ws/jobs/"
    refused = websocket.WebSocket()
    with pytest.raises(websocket.WebSocketBadStatusException):
        refused.connect(url, origin=server)  # anonymous: refused
    # several sockets: the kernel spreads new connections over the worker processes
    sockets = [websocket.create_connection(url, origin=server, cookie=cookie, timeout=15) for _ in range(6)]
    try:
        job = Job.objects.create(kind="tests.serving.probe")
        JobReporter(job).report(40, "half way")
        for ws in sockets:
            message = json.loads(ws.recv())
            assert (message["id"], message["progress"], message["message"]) == (job.pk, 40, "half way"), message
    finally:
        for ws in sockets:
            ws.close()
