"""SyncChainASGIHandler: a request's thread is reused by the next request, and its connection went back to the pool."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.testing import ApplicationCommunicator
from django.db import connections

from rfm_portal.serving.asgi import SyncChainASGIHandler

pytestmark = pytest.mark.django_db(transaction=True)


async def get(app: SyncChainASGIHandler, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), *headers], "client": ("127.0.0.1", 1), "server": ("testserver", 80)}
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await communicator.receive_output(10)
    await communicator.receive_output(10)  # the body
    await communicator.wait(10)
    return start["status"]


def test_threads_are_reused_and_connections_given_back(api_key) -> None:
    app = SyncChainASGIHandler()
    headers = [(b"authorization", f"Api-Key {api_key[1]}".encode())]
    assert asyncio.run(get(app, "/api/models/", headers)) == 200  # reads the key from the database
    assert len(app._idle_executors) == 1
    executor = app._idle_executors[0]
    thread_connection = executor.submit(lambda: connections["default"].connection).result()
    assert thread_connection is None  # closed at the end of the request: back in the pool
    assert asyncio.run(get(app, "/api/models/", headers)) == 200
    assert app._idle_executors == [executor]  # the same thread served the second request
