"""/ws/jobs/ through the real ASGI application: login required, progress delivered live.

Progress is reported from a plain thread (as a Celery worker thread would), over the
embedded in-memory layer and over channels-redis.
"""

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from rfm_portal.asgi import application
from rfm_portal.mlops.models import Job
from rfm_portal.mlops.progress import JobReporter, start_job
from tests.mlops.helpers import run_in_threads

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://localhost")


def session_headers(user) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    return [ORIGIN, (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]


async def progress_seen_by_socket(headers) -> list[dict]:
    communicator = WebsocketCommunicator(application, "/ws/jobs/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    try:
        job_id = await asyncio.to_thread(lambda: run_in_threads([lambda: start_job("tests.mlops.count_to").pk])[0])
        await asyncio.to_thread(
            lambda: run_in_threads([lambda: JobReporter(Job.objects.get(pk=job_id)).report(40, "training")])
        )
        return [await communicator.receive_json_from(timeout=5) for _ in range(2)]
    finally:
        await communicator.disconnect()


@pytest.fixture
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "rfm_portal.mlops.channel_layers.ThreadSafeInMemoryChannelLayer"}
    }
    yield get_channel_layer()


@pytest.fixture
def redis_layer():
    layer = get_channel_layer()
    assert type(layer).__name__ == "RedisChannelLayer", "tests run with REDIS_URL set"
    async_to_sync(layer.flush)()
    yield layer
    async_to_sync(layer.flush)()


def check(messages: list[dict]) -> None:
    created, progressed = messages
    assert created["state"] == "pending" and created["progress"] == 0
    assert progressed["id"] == created["id"]
    assert (progressed["progress"], progressed["message"]) == (40, "training")


def test_progress_arrives_over_the_in_memory_layer(in_memory_layer, analyst):
    check(async_to_sync(progress_seen_by_socket)(session_headers(analyst)))


def test_progress_arrives_over_channels_redis(redis_layer, admin):
    check(async_to_sync(progress_seen_by_socket)(session_headers(admin)))


@pytest.mark.parametrize("headers", [[ORIGIN], [ORIGIN, (b"cookie", b"sessionid=forged")]], ids=["none", "forged"])
def test_anonymous_sockets_are_refused(in_memory_layer, headers):
    async def connect() -> tuple[bool, int | None]:
        communicator = WebsocketCommunicator(application, "/ws/jobs/", headers=headers)
        connected, code = await communicator.connect()
        await communicator.disconnect()
        return connected, code

    assert async_to_sync(connect)() == (False, 4401)


def test_foreign_origin_is_refused(in_memory_layer, analyst):
    headers = [(b"origin", b"https://evil.example.com"), session_headers(analyst)[1]]

    async def connect() -> bool:
        communicator = WebsocketCommunicator(application, "/ws/jobs/", headers=headers)
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    assert async_to_sync(connect)() is False
