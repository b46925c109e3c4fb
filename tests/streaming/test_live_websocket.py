"""/ws/live/ on channels-redis: login required, a snapshot on connect, the feed messages of events we caused."""

from __future__ import annotations

import asyncio
import threading
import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from rfm_portal.accounts.models import User
from rfm_portal.asgi import application
from streaming.consumer import StreamConsumer
from streaming.events import encode, parse_event

from .conftest import event

ORIGIN = (b"origin", b"http://localhost")


def session_headers() -> list[tuple[bytes, bytes]]:
    user = User.objects.create_user("wall", "wall@example.com", "x-password-123", role=User.Role.ANALYST)
    client = Client()
    client.force_login(user)
    return [ORIGIN, (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]


def consume(stream, n: int) -> None:
    stop = threading.Event()
    c = StreamConsumer("ws-test", stream)
    thread = threading.Thread(target=c.run, args=(stop, n))
    thread.start()
    thread.join(30)
    stop.set()


def test_a_socket_receives_the_feed_messages_of_the_events_it_caused(live_db, stream, settings):
    settings.STREAM = {**settings.STREAM, "SHARP_RISE": -1.0}  # every re-scored known customer is an alert
    layer = get_channel_layer()
    assert type(layer).__name__ == "RedisChannelLayer", "tests run with REDIS_URL set"
    headers = session_headers()
    ids = [f"ws-{i}" for i in range(3)]
    customers = live_db.high_risk[:3]

    async def scenario() -> tuple[dict, list[dict]]:
        communicator = WebsocketCommunicator(application, "/ws/live/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        try:
            snap = await communicator.receive_json_from(timeout=5)
            await asyncio.to_thread(stream.add, [encode(parse_event(event(i, c))) for i, c in zip(ids, customers,
                                                                                                  strict=True)])
            await asyncio.to_thread(consume, stream, len(ids))
            seen: list[dict] = []
            deadline = time.monotonic() + 10
            while {a["event_id"] for a in seen} < set(ids) and time.monotonic() < deadline:
                message = await communicator.receive_json_from(timeout=5)
                seen += message["alerts"]
            return snap, seen
        finally:
            await communicator.disconnect()

    async_to_sync(layer.flush)()
    snapshot, alerts = async_to_sync(scenario)()
    assert snapshot["snapshot"] is True and snapshot["alerts"] == [] and "pending" in snapshot["stats"]
    by_id = {a["event_id"]: a for a in alerts}
    assert set(by_id) == set(ids)
    for i, customer in zip(ids, customers, strict=True):
        item = by_id[i]
        assert item["customer_id"] == customer and item["kind"] == "purchase"
        assert item["old_probability"] is not None and item["new_probability"] is not None and item["clv"] > 0

    # reconnecting gets the same alerts back as the snapshot, newest first
    async def reconnect() -> dict:
        communicator = WebsocketCommunicator(application, "/ws/live/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        try:
            return await communicator.receive_json_from(timeout=5)
        finally:
            await communicator.disconnect()

    again = async_to_sync(reconnect)()
    assert again["snapshot"] and {a["event_id"] for a in again["alerts"]} == set(ids)
    async_to_sync(layer.flush)()


def test_anonymous_sockets_are_refused(live_db):
    async def connect() -> tuple[bool, int | None]:
        communicator = WebsocketCommunicator(application, "/ws/live/", headers=[ORIGIN])
        connected, code = await communicator.connect()
        await communicator.disconnect()
        return connected, code

    assert async_to_sync(connect)() == (False, 4401)


def test_idle_sockets_survive_the_blocking_wait_of_channels_redis():
    """redis-py 8's 5 s socket timeout would abort channels-redis' 5 s BZPOPMIN and drop idle sockets."""
    layer = get_channel_layer()
    assert all(host["socket_timeout"] > layer.brpop_timeout for host in layer.hosts)
