"""Partition streams: a customer's events in one partition, partitions dealt over the live consumers,
a dead consumer's partitions (and its pending entries) taken over, trimming per partition."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict

from streaming.backends import add_events, assign, partition_of
from streaming.consumer import StreamConsumer
from streaming.events import encode, parse_event
from streaming.models import RiskChange, StreamEvent

from .conftest import event
from .test_consumer import run_until_idle


def events_for(customers: list[str], n: int, prefix: str) -> list:
    return [parse_event(event(f"{prefix}-{i}", customers[i % len(customers)])) for i in range(n)]


def test_a_customers_events_always_go_to_its_partition(partitioned):
    customers = [str(10_000 + i) for i in range(30)]
    evs = events_for(customers, 90, "r")
    add_events(partitioned, evs)
    partitioned.add([encode(ev) for ev in evs[:3]])  # without routing keys: read from the payloads, same partitions
    partitioned.add(["{not json"])  # not an event: partition 0, where the consumer dead-letters it
    seen = defaultdict(set)
    for part, key in enumerate(partitioned.keys):
        for _eid, fields in partitioned.redis.xrange(key):
            raw = fields["event"]
            seen[part].add(raw if raw == "{not json" else parse_event(json.loads(raw)).customer_id)
    assert "{not json" in seen[0]
    for part, ids in seen.items():
        assert all(partition_of(c, 3) == part for c in ids - {"{not json"})
    assert set().union(*seen.values()) - {"{not json"} == set(customers)
    assert all(seen[p] for p in range(3))  # 30 customers spread over all three partitions
    assert partitioned.stats().length == 90 + 3 + 1


def test_partitions_are_dealt_over_the_live_consumers():
    assert assign(3, ["a"], "a") == [0, 1, 2]
    owned = {name: assign(6, ["a", "b", "c"], name) for name in ("a", "b", "c")}
    assert owned == {"a": [0, 3], "b": [1, 4], "c": [2, 5]}  # disjoint, covering, even
    # more consumers than partitions: the last ones stand by
    assert [assign(2, ["a", "b", "c"], n) for n in ("a", "b", "c")] == [[0], [1], []]


def test_heartbeats_rebalance_when_consumers_join_and_leave(partitioned):
    assert partitioned.heartbeat("a") == [0, 1, 2]
    assert partitioned.heartbeat("b") == [1]
    assert partitioned.heartbeat("a") == [0, 2]
    partitioned.leave("a")
    assert partitioned.heartbeat("b") == [0, 1, 2]


def test_consumers_share_the_work_by_partition(live_db, partitioned):
    customers = live_db.high_risk[:10]
    add_events(partitioned, events_for(customers, 60, "s"))
    a, b = StreamConsumer("a", partitioned), StreamConsumer("b", partitioned)
    a.batch = b.batch = 5
    # both are members before either reads (while one joins, the other may still read its partitions once)
    partitioned.heartbeat("a")
    partitioned.heartbeat("b")
    stop = threading.Event()
    threads = [threading.Thread(target=c.run, args=(stop,)) for c in (a, b)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while StreamEvent.objects.count() < 60 and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(10)
    assert StreamEvent.objects.count() == 60 and RiskChange.objects.count() == 60
    assert a.counts.applied > 0 and b.counts.applied > 0 and a.counts.applied + b.counts.applied == 60
    assert sorted(a.owned + b.owned) == [0, 1, 2]
    appliers = defaultdict(set)
    for customer, consumer in StreamEvent.objects.values_list("customer_external_id", "consumer"):
        appliers[customer].add(consumer)
    # each partition (so each customer) had one reader: no two consumers waited on one customer's row
    assert all(len(names) == 1 for names in appliers.values())
    assert partitioned.stats().pending == 0


def test_a_dead_consumers_partitions_and_pending_entries_are_taken_over(live_db, partitioned, settings):
    settings.STREAM = {**settings.STREAM, "MEMBER_TTL_MS": 400, "CLAIM_IDLE_MS": 300}
    customers = live_db.high_risk[:12]
    assert partitioned.heartbeat("dead") == [0, 1, 2]
    assert partitioned.heartbeat("alive") == [0, 2]  # members sorted by name: alive, dead
    assert partitioned.heartbeat("dead") == [1]
    evs = events_for(customers, 30, "t")
    add_events(partitioned, evs)
    taken = partitioned.read_parts("dead", [1], 100, 0)  # delivered to "dead", which then dies (no ack, no beat)
    dead_count = sum(map(len, taken.values()))
    assert dead_count > 0 and partitioned.stats().pending == dead_count
    alive = StreamConsumer("alive", partitioned)
    run_until_idle(alive, partitioned)
    assert alive.owned == [0, 1, 2]  # the dead consumer dropped out of the members
    assert StreamEvent.objects.count() == 30 and RiskChange.objects.count() == 30
    assert set(StreamEvent.objects.values_list("consumer", flat=True)) == {"alive"}
    stats = partitioned.stats()
    assert (stats.pending, stats.lag, stats.dead_letters) == (0, 0, 0)


def test_trimming_never_drops_unacknowledged_entries_of_any_partition(partitioned):
    # ten payloads to partition 1 and three to partition 2 (routing keys chosen by their hash)
    key_1 = next(k for k in map(str, range(100)) if partition_of(k, 3) == 1)
    key_2 = next(k for k in map(str, range(100)) if partition_of(k, 3) == 2)
    ids_1 = partitioned.add([f'{{"n": {i}}}' for i in range(10)], [key_1] * 10)
    ids_2 = partitioned.add(['{"n": 0}'] * 3, [key_2] * 3)
    delivered = partitioned.read_parts("c1", [1, 2], 6, 0)
    assert [e for e, _ in delivered[1]] == ids_1[:6] and [e for e, _ in delivered[2]] == ids_2
    partitioned.ack(ids_1[:2], part=1)  # ids_1[2:6] stay pending; partition 2 is all pending
    assert partitioned.trim() == 2
    assert [e for e, _ in partitioned.redis.xrange(partitioned.keys[1])] == ids_1[2:]
    assert [e for e, _ in partitioned.redis.xrange(partitioned.keys[2])] == ids_2
    partitioned.ack(ids_1[2:6], part=1)
    partitioned.ack(ids_2, part=2)
    assert partitioned.trim([1]) == 4  # only the given partition; never the undelivered ids_1[6:]
    assert [e for e, _ in partitioned.redis.xrange(partitioned.keys[1])] == ids_1[6:]
    assert partitioned.trim() == 3 and partitioned.redis.xlen(partitioned.keys[2]) == 0
