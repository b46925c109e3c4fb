"""/ws/jobs/ under faults: the channel layer down (no 500), a user deactivated while connected."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from rfm_portal.accounts import services as accounts
from rfm_portal.asgi import application
from rfm_portal.mlops.consumers import CLOSE_DEACTIVATED, CLOSE_TRY_AGAIN_LATER
from rfm_portal.mlops.models import Job
from rfm_portal.mlops.progress import JobReporter, start_job
from tests.mlops.helpers import run_in_threads
from tests.mlops.test_jobs_websocket import session_headers

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def layer_down(settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:18399/0"], "prefix": "rfm-faults-down"},
        }
    }
    yield get_channel_layer()


@pytest.fixture
def redis_layer():
    layer = get_channel_layer()
    assert type(layer).__name__ == "RedisChannelLayer", "tests run with REDIS_URL set"
    async_to_sync(layer.flush)()
    yield layer
    async_to_sync(layer.flush)()


def test_socket_with_the_channel_layer_down_is_accepted_then_closed_try_again_later(layer_down, analyst):
    headers = session_headers(analyst)

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/jobs/", headers=headers)
        connected, _ = await communicator.connect(timeout=10)
        notice = await communicator.receive_json_from(timeout=10)
        closed = await communicator.receive_output(timeout=10)
        await communicator.wait()
        return connected, notice, closed

    connected, notice, closed = async_to_sync(scenario)()
    assert connected
    assert "Live updates are paused" in notice["unavailable"]
    assert closed["type"] == "websocket.close" and closed["code"] == CLOSE_TRY_AGAIN_LATER


def test_a_user_deactivated_while_connected_is_disconnected(redis_layer, analyst, admin):
    headers = session_headers(analyst)

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/jobs/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        await asyncio.to_thread(lambda: run_in_threads([lambda: accounts.user_deactivate(user=analyst, by=admin)]))
        closed = await communicator.receive_output(timeout=5)
        # Progress published afterwards never reaches the closed socket.
        await asyncio.to_thread(lambda: run_in_threads([lambda: JobReporter(start_job("x")).report(50, "secret")]))
        await communicator.wait()
        return closed

    closed = async_to_sync(scenario)()
    assert closed["type"] == "websocket.close" and closed["code"] == CLOSE_DEACTIVATED


def test_a_deactivated_user_cannot_reconnect(redis_layer, analyst, admin):
    headers = session_headers(analyst)
    accounts.user_deactivate(user=analyst, by=admin)

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/jobs/", headers=headers)
        connected, code = await communicator.connect()
        return connected, code

    connected, code = async_to_sync(scenario)()
    assert not connected and code == 4401


def test_job_messages_recheck_the_user_when_deactivated_behind_the_orm(redis_layer, analyst, monkeypatch):
    from rfm_portal.accounts.models import User
    from rfm_portal.mlops import consumers

    monkeypatch.setattr(consumers, "USER_RECHECK_SECONDS", 0)

    headers = session_headers(analyst)

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/jobs/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        # A queryset update sends no signal; the next job message finds the user inactive.
        deactivate = lambda: User.objects.filter(pk=analyst.pk).update(is_active=False)  # noqa: E731
        await asyncio.to_thread(lambda: run_in_threads([deactivate]))
        await asyncio.to_thread(lambda: run_in_threads([lambda: start_job("tests.mlops.count_to").pk]))
        closed = await communicator.receive_output(timeout=5)
        await communicator.wait()
        return closed

    closed = async_to_sync(scenario)()
    assert closed["type"] == "websocket.close" and closed["code"] == CLOSE_DEACTIVATED
    assert Job.objects.count() == 1
