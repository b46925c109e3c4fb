"""The consumer group on the real Redis: dead letters, duplicates, claiming, own pending, safe trimming."""

from __future__ import annotations

import json
import threading
import time

from streaming import consumer as consumer_module
from streaming.consumer import StreamConsumer
from streaming.events import encode, parse_event
from streaming.models import RiskChange, StreamEvent

from .conftest import event


def add(stream, *events: dict) -> list[str]:
    return stream.add([encode(parse_event(e)) for e in events])


def run_until_idle(consumer: StreamConsumer, stream, timeout: float = 20.0) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            time.sleep(0.1)
            s = stream.stats()
            if s.lag == 0 and s.pending == 0:
                break
    finally:
        stop.set()
        thread.join(10)


def test_a_malformed_event_goes_to_the_dead_letter_stream_with_its_reason(live_db, stream):
    good = add(stream, event("ok-1", live_db.high_risk[0]))
    bad_json = stream.add(["{not json"])
    bad_event = stream.add([json.dumps({**event("bad-1", "x"), "lines": [{"sku": "A", "quantity": 0,
                                                                       "unit_price": "1"}]})])
    run_until_idle(StreamConsumer("c1", stream), stream)
    dead = {f["entry_id"]: f for _, f in stream.dead_letters()}
    assert set(dead) == {bad_json[0], bad_event[0]}
    assert dead[bad_json[0]]["reason"].startswith("malformed event") and "Not JSON" in dead[bad_json[0]]["reason"]
    assert "quantity" in dead[bad_event[0]]["reason"] and "between 1 and" in dead[bad_event[0]]["reason"]
    assert StreamEvent.objects.filter(event_id="ok-1", stream_entry_id=good[0]).exists()
    stats = stream.stats()
    assert (stats.pending, stats.lag, stats.dead_letters) == (0, 0, 2)  # dead letters are acknowledged


def test_a_duplicate_event_id_in_the_stream_is_applied_once(live_db, stream):
    cid = live_db.high_risk[0]
    add(stream, event("d-1", cid), event("d-2", cid))
    add(stream, event("d-1", cid, quantity=7))  # resent by the producer, in another batch
    run_until_idle(StreamConsumer("c1", stream), stream)
    assert StreamEvent.objects.count() == 2 and RiskChange.objects.count() == 2
    assert stream.stats().pending == 0


def test_an_event_failing_every_attempt_is_dead_lettered_and_the_rest_applied(live_db, stream, monkeypatch):
    real = consumer_module.apply_events

    def flaky(events, **kwargs):
        if any(ev.event_id == "poison" for ev in events):
            raise RuntimeError("cannot apply poison")
        return real(events, **kwargs)

    monkeypatch.setattr(consumer_module, "apply_events", flaky)
    cid = live_db.high_risk[0]
    entries = add(stream, event("p-1", cid), event("poison", cid), event("p-2", live_db.high_risk[1]))
    c = StreamConsumer("c1", stream)
    run_until_idle(c, stream)
    assert set(StreamEvent.objects.values_list("event_id", flat=True)) == {"p-1", "p-2"}
    (dead,) = [f for _, f in stream.dead_letters()]
    assert dead["entry_id"] == entries[1] and dead["reason"] == "failed 3 times: RuntimeError: cannot apply poison"
    assert stream.stats().pending == 0


def test_a_consumer_finishes_its_own_pending_entries_first(live_db, stream):
    add(stream, event("o-1", live_db.high_risk[0]), event("o-2", live_db.high_risk[1]))
    assert len(stream.read_new("c1", 10, 0)) == 2  # delivered, then "crashed" before applying
    assert stream.stats().pending == 2
    c = StreamConsumer("c1", stream)
    c.stream.ensure_group()
    c.finish_own_pending()
    assert StreamEvent.objects.count() == 2 and stream.stats().pending == 0


def test_entries_of_a_dead_consumer_are_claimed_after_the_idle_time(live_db, stream, settings):
    settings.STREAM = {**settings.STREAM, "CLAIM_IDLE_MS": 300}
    add(stream, event("z-1", live_db.high_risk[0]))
    assert len(stream.read_new("dead-consumer", 10, 0)) == 1
    time.sleep(0.4)
    run_until_idle(StreamConsumer("alive", stream), stream)
    assert StreamEvent.objects.get(event_id="z-1").consumer == "alive"
    assert stream.stats().pending == 0


def test_an_entry_redelivered_too_often_is_dead_lettered_without_another_try(live_db, stream):
    add(stream, event("r-1", live_db.high_risk[0]))
    for name in ("a", "b", "c", "d"):  # four consumers each took it and died
        stream.read_new(name, 10, 0) if name == "a" else stream.autoclaim(name, 0, 10)
    c = StreamConsumer("d", stream)
    c.finish_own_pending()
    (dead,) = [f for _, f in stream.dead_letters()]
    # four deliveries plus this consumer's re-read of its pending entry (XREADGROUP 0 counts too)
    assert "delivered 5 times" in dead["reason"] and not StreamEvent.objects.exists()


def test_trimming_never_drops_unacknowledged_entries(stream):
    ids = stream.add([f'{{"n": {i}}}' for i in range(10)])
    delivered = stream.read_new("c1", 6, 0)
    stream.ack([eid for eid, _ in delivered[:2]] + [delivered[4][0]])  # 2, 3 and 5 stay pending
    assert stream.trim() == 2  # only the acknowledged entries before the oldest pending one
    remaining = [eid for eid, _ in stream.redis.xrange(stream.key)]
    assert remaining == ids[2:]
    stream.ack([eid for eid, _ in delivered])
    assert stream.trim() == 4 and [e for e, _ in stream.redis.xrange(stream.key)] == ids[6:]  # never undelivered
