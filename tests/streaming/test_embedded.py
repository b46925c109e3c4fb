"""Embedded runs (no Redis): the in-process stream has the consumer-group semantics, and `make run`'s
simulated stream flows through the same consumer into the database."""

from __future__ import annotations

import time

import pytest

from streaming import backends
from streaming.embedded import embedded_stream
from streaming.models import RiskChange, StreamEvent


@pytest.fixture
def memory(settings):
    settings.REDIS_URL = ""
    backends._memory = None
    stream = backends.get_stream()
    assert isinstance(stream, backends.MemoryStream)
    yield stream
    backends._memory = None


def test_the_in_process_stream_keeps_unacknowledged_entries(memory):
    ids = memory.add([f'{{"n": {i}}}' for i in range(6)])
    first = memory.read_new("a", 4, 0)
    assert [e for e, _ in first] == ids[:4] and memory.stats().pending == 4 and memory.stats().lag == 2
    memory.ack([ids[0], ids[2]])
    assert memory.trim() == 1  # ids[0] only: ids[1] is still pending
    assert [e for e, _ in memory.read_own_pending("a", "0-0", 10)] == [ids[1], ids[3]]
    assert memory.deliveries([ids[1]]) == {ids[1]: 2}
    time.sleep(0.02)
    claimed = memory.autoclaim("b", 10, 10)
    assert [e for e, _ in claimed] == [ids[1], ids[3]] and memory.read_own_pending("a", "0-0", 10) == []
    memory.dead_letter(claimed[0], "broken", "b")
    assert memory.stats().dead_letters == 1 and memory.dead_letters()[0][1]["reason"] == "broken"


def test_the_embedded_simulated_stream_reaches_the_database(live_db, memory, settings):
    settings.STREAM = {**settings.STREAM, "BLOCK_MS": 50}
    with embedded_stream(rate=20.0) as threads:
        assert {t.name for t in threads} == {"stream-consumer", "stream-simulator"}
        deadline = time.monotonic() + 30
        while StreamEvent.objects.count() < 10 and time.monotonic() < deadline:
            time.sleep(0.2)
    assert StreamEvent.objects.count() >= 10
    assert RiskChange.objects.count() >= 1
    assert all(not t.is_alive() for t in threads)


def test_with_redis_configured_nothing_starts_in_process(settings):
    settings.REDIS_URL = "redis://127.0.0.1:6379/7"
    with embedded_stream() as threads:
        assert threads == []
