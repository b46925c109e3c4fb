"""The event stream: Redis Streams in production, an in-process copy of the same semantics embedded.

Both backends offer what the consumer needs — append (all or nothing), a consumer group with a
pending-entries list, acknowledge, claim entries idle too long, a dead-letter stream, trimming
that never drops an unacknowledged entry, and the figures of the Live feed — so the consumer
code path is the same in both.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings

from .events import Event, encode

Entry = tuple[str, dict[str, str]]  # (entry id "ms-seq", fields)
RATE_WINDOW_S = 5


def stream_setting(name: str) -> Any:
    return settings.STREAM[name]


@dataclass
class StreamStats:
    length: int
    lag: int
    pending: int
    dead_letters: int
    consumers: int
    events_per_second: float

    def as_dict(self) -> dict[str, Any]:
        return {"length": self.length, "lag": self.lag, "pending": self.pending, "dead_letters": self.dead_letters,
                "consumers": self.consumers, "events_per_second": round(self.events_per_second, 1)}


def entry_ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def partition_of(routing_key: str, partitions: int) -> int:
    """The partition of a customer's events: a stable hash (the same in every process) modulo the count."""
    return zlib.crc32(routing_key.encode()) % partitions if partitions > 1 else 0


def routing_key(payload: str) -> str:
    """The customer id in an encoded event; "" for an entry that is not one (it goes to partition 0 and is
    dead-lettered there by the consumer)."""
    try:
        value = json.loads(payload).get("customer_id", "")
    except (ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


def assign(partitions: int, members: list[str], consumer: str) -> list[int]:
    """The partitions ``consumer`` owns among the live ``members``: dealt round-robin over the names sorted."""
    live = sorted(set(members) | {consumer})
    return [p for p in range(partitions) if p % len(live) == live.index(consumer)]


class RedisStream:
    """Redis Streams, one consumer group (keys and group from settings.STREAM), in ``partitions`` streams.

    A customer's events always go to the same partition (a stable hash of the customer id), and each
    partition is read by one live consumer at a time (``heartbeat``), so concurrent batches never wait
    on each other's customer row locks. Partition 0 is ``key`` itself (so a stream written before
    partitioning is read as partition 0); partition i > 0 is ``key:p{i}``. The methods that take
    entry ids take the partition (entry ids are only unique within one stream).
    """

    def __init__(self, url: str, key: str, group: str, dead_key: str, partitions: int = 1) -> None:
        if partitions < 1:
            raise ValueError("a stream has at least one partition")
        self.redis = redis.Redis.from_url(url, decode_responses=True)
        self.key, self.group, self.dead_key = key, group, dead_key
        self.partitions = partitions
        self.keys = [key] + [f"{key}:p{i}" for i in range(1, partitions)]
        self.rate_key = f"{key}:rate"
        self.members_key = f"{key}:members"

    # -- producing
    def add(self, payloads: list[str], routing_keys: list[str] | None = None) -> list[str]:
        """Append every payload or none (one MULTI/EXEC), each to its customer's partition.

        ``routing_keys``: the events' customer ids, when the caller has them (else read from the payloads).
        """
        if routing_keys is None and self.partitions > 1:
            routing_keys = [routing_key(p) for p in payloads]
        pipe = self.redis.pipeline(transaction=True)
        for i, payload in enumerate(payloads):
            part = partition_of(routing_keys[i], self.partitions) if self.partitions > 1 else 0
            pipe.xadd(self.keys[part], {"event": payload})
        return list(pipe.execute())

    # -- membership: which consumer reads which partitions
    def heartbeat(self, consumer: str) -> list[int]:
        """Say ``consumer`` is alive; returns the partitions it owns now.

        Members are the consumers seen within ``MEMBER_TTL_MS``; a consumer that stops beating (killed)
        drops out after that and its partitions go to the others (its pending entries are then claimed
        by XAUTOCLAIM). During a change of members two consumers may briefly read one partition: the
        group still delivers each entry once, and the customer row locks keep that correct.
        """
        now = int(time.time() * 1000)
        pipe = self.redis.pipeline(transaction=True)
        pipe.zadd(self.members_key, {consumer: now})
        pipe.zremrangebyscore(self.members_key, "-inf", now - stream_setting("MEMBER_TTL_MS"))
        pipe.zrange(self.members_key, 0, -1)
        pipe.pexpire(self.members_key, 10 * stream_setting("MEMBER_TTL_MS"))
        members = pipe.execute()[2]
        return assign(self.partitions, members, consumer)

    def leave(self, consumer: str) -> None:
        """A consumer stopping cleanly hands its partitions over at once."""
        self.redis.zrem(self.members_key, consumer)

    def live_members(self) -> list[str]:
        now = int(time.time() * 1000)
        return list(self.redis.zrangebyscore(self.members_key, now - stream_setting("MEMBER_TTL_MS"), "+inf"))

    # -- consuming
    def ensure_group(self) -> None:
        for key in self.keys:
            try:
                self.redis.xgroup_create(key, self.group, id="0", mkstream=True)
            except redis.ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise

    def read_new(self, consumer: str, count: int, block_ms: int, part: int = 0) -> list[Entry]:
        return self.read_parts(consumer, [part], count, block_ms).get(part, [])

    def read_parts(self, consumer: str, parts: list[int], count: int, block_ms: int) -> dict[int, list[Entry]]:
        """New entries of the given partitions (up to ``count`` from each), in one blocking read."""
        if not parts:
            return {}
        index = {self.keys[p]: p for p in parts}
        reply = self.redis.xreadgroup(self.group, consumer, {self.keys[p]: ">" for p in parts}, count=count,
                                      block=block_ms or None)
        return {index[key]: [(eid, fields or {}) for eid, fields in entries] for key, entries in (reply or [])
                if entries}

    def read_own_pending(self, consumer: str, after: str, count: int, part: int = 0) -> list[Entry]:
        """This consumer's delivered-but-unacknowledged entries with ids above ``after``."""
        reply = self.redis.xreadgroup(self.group, consumer, {self.keys[part]: after}, count=count)
        return [(eid, fields or {}) for _key, entries in (reply or []) for eid, fields in entries]

    def deliveries(self, entry_ids: list[str], consumer: str | None = None, part: int = 0) -> dict[str, int]:
        """How often each pending entry (of ``consumer``, when given) has been delivered."""
        if not entry_ids:
            return {}
        ordered = sorted(entry_ids, key=_id_key)
        rows = self.redis.xpending_range(self.keys[part], self.group, min=ordered[0], max=ordered[-1],
                                         count=len(ordered) * 4, consumername=consumer)
        wanted = set(entry_ids)
        return {row["message_id"]: int(row["times_delivered"]) for row in rows if row["message_id"] in wanted}

    def autoclaim(self, consumer: str, min_idle_ms: int, count: int, part: int = 0) -> list[Entry]:
        """Entries pending for longer than ``min_idle_ms`` with any consumer, now this one's."""
        key = self.keys[part]
        claimed: list[Entry] = []
        start = "0-0"
        while len(claimed) < count:
            reply = self.redis.xautoclaim(key, self.group, consumer, min_idle_ms, start, count=count)
            start, entries = reply[0], reply[1]
            deleted = reply[2] if len(reply) > 2 else []
            if deleted:  # trimmed away while pending: nothing to process, stop tracking them
                self.redis.xack(key, self.group, *deleted)
            claimed += [(eid, fields or {}) for eid, fields in entries if fields is not None]
            if start == "0-0":
                break
        return claimed

    def ack(self, entry_ids: list[str], part: int = 0) -> None:
        if entry_ids:
            self.redis.xack(self.keys[part], self.group, *entry_ids)

    def settle(self, by_part: dict[int, list[str]], applied: int) -> None:
        """Acknowledge a batch's entries of each partition and count the applied events: one round trip."""
        second = int(time.time())
        pipe = self.redis.pipeline(transaction=False)
        for part, entry_ids in by_part.items():
            if entry_ids:
                pipe.xack(self.keys[part], self.group, *entry_ids)
        if applied:
            pipe.hincrby(self.rate_key, str(second), applied)
            pipe.hdel(self.rate_key, *[str(s) for s in range(second - 3 * RATE_WINDOW_S, second - 2 * RATE_WINDOW_S)])
        pipe.execute()

    def dead_letter(self, entry: Entry, reason: str, consumer: str, part: int = 0) -> None:
        """Copy the entry to the dead-letter stream with its reason and acknowledge it, atomically."""
        eid, fields = entry
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(self.dead_key, {"entry_id": eid, "stream": self.keys[part], "event": fields.get("event", ""),
                                  "reason": reason[:2000], "consumer": consumer, "at": str(int(time.time() * 1000))},
                  maxlen=stream_setting("DEAD_LETTER_MAXLEN"), approximate=True)
        pipe.xack(self.keys[part], self.group, eid)
        pipe.execute()

    def dead_letters(self, count: int = 50) -> list[Entry]:
        return [(eid, fields) for eid, fields in self.redis.xrevrange(self.dead_key, count=count)]

    # -- housekeeping
    def trim(self, parts: list[int] | None = None) -> int:
        """Drop entries every group has acknowledged; never one still pending or not yet delivered.

        Per partition, the floor is the lowest of, over every group, its oldest pending entry and the
        entry after its last delivered one. Entries delivered later have higher ids than the
        last-delivered id read here, and claims only move entries already pending, so nothing under
        the floor can become pending between the reads and XTRIM MINID.
        """
        return sum(self._trim(self.keys[p]) for p in (range(self.partitions) if parts is None else parts))

    def _trim(self, key: str) -> int:
        try:
            groups = self.redis.xinfo_groups(key)
        except redis.ResponseError:  # the stream does not exist yet: nothing to trim
            return 0
        floor: tuple[int, int] | None = None
        for group in groups:
            last = _id_key(group["last-delivered-id"])
            candidates = [(last[0], last[1] + 1)]
            if int(group["pending"]):
                summary = self.redis.xpending(key, group["name"])
                candidates.append(_id_key(summary["min"]))
            low = min(candidates)
            floor = low if floor is None else min(floor, low)
        if floor is None:
            return 0
        return int(self.redis.xtrim(key, minid=f"{floor[0]}-{floor[1]}", approximate=False))

    def count_processed(self, n: int) -> None:
        second = int(time.time())
        pipe = self.redis.pipeline(transaction=False)
        pipe.hincrby(self.rate_key, str(second), n)
        pipe.hdel(self.rate_key, *[str(s) for s in range(second - 3 * RATE_WINDOW_S, second - 2 * RATE_WINDOW_S)])
        pipe.execute()

    def stats(self) -> StreamStats:
        """Totals over the partitions; consumers: the group's members (of any partition, stopped ones too)."""
        pipe = self.redis.pipeline(transaction=False)
        for key in self.keys:
            pipe.xlen(key)
        pipe.xlen(self.dead_key)
        second = int(time.time())
        pipe.hmget(self.rate_key, [str(s) for s in range(second - RATE_WINDOW_S, second)])
        *lengths, dead, counts = pipe.execute()
        lag = pending = 0
        pipe = self.redis.pipeline(transaction=False)
        for key in self.keys:
            pipe.xinfo_groups(key)
        with_consumers = []
        for key, groups in zip(self.keys, pipe.execute(raise_on_error=False), strict=True):
            if isinstance(groups, redis.ResponseError):  # the stream (and its group) does not exist yet
                continue
            for group in groups:
                if group["name"] == self.group:
                    pending += int(group["pending"])
                    lag += int(group.get("lag") or 0)
                    if int(group["consumers"]):
                        with_consumers.append(key)
        names: set[str] = set()
        if with_consumers:
            pipe = self.redis.pipeline(transaction=False)
            for key in with_consumers:
                pipe.xinfo_consumers(key, self.group)
            for consumers in pipe.execute():
                names.update(c["name"] for c in consumers)
        rate = sum(int(c or 0) for c in counts) / RATE_WINDOW_S
        return StreamStats(sum(int(n) for n in lengths), lag, pending, int(dead), len(names), rate)

    def delete(self) -> None:
        self.redis.delete(*self.keys, self.dead_key, self.rate_key, self.members_key)


class MemoryStream:
    """The same semantics inside one process (embedded runs: no Redis), in one partition."""

    partitions = 1

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._entries: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._last_ms, self._seq = 0, 0
        self._delivered = "0-0"  # the group's last-delivered id
        self._pending: dict[str, list] = {}  # id -> [consumer, delivered_at_ms, times_delivered]
        self._dead: list[Entry] = []
        self._rate: dict[int, int] = {}
        self._consumers: set[str] = set()

    def _next_id(self) -> str:
        ms = int(time.time() * 1000)
        if ms <= self._last_ms:
            ms, self._seq = self._last_ms, self._seq + 1
        else:
            self._seq = 0
        self._last_ms = ms
        return f"{ms}-{self._seq}"

    def add(self, payloads: list[str], routing_keys: list[str] | None = None) -> list[str]:
        with self._cond:
            ids = []
            for payload in payloads:
                eid = self._next_id()
                self._entries[eid] = {"event": payload}
                ids.append(eid)
            self._cond.notify_all()
            return ids

    def ensure_group(self) -> None:
        return None

    def heartbeat(self, consumer: str) -> list[int]:
        with self._cond:
            self._consumers.add(consumer)
        return [0]

    def leave(self, consumer: str) -> None:
        return None

    def _deliver(self, eid: str, consumer: str) -> Entry:
        now = int(time.time() * 1000)
        row = self._pending.get(eid)
        self._pending[eid] = [consumer, now, (row[2] + 1) if row else 1]
        return eid, dict(self._entries[eid])

    def read_parts(self, consumer: str, parts: list[int], count: int, block_ms: int) -> dict[int, list[Entry]]:
        entries = self.read_new(consumer, count, block_ms) if parts else []
        return {0: entries} if entries else {}

    def read_new(self, consumer: str, count: int, block_ms: int, part: int = 0) -> list[Entry]:
        deadline = time.monotonic() + block_ms / 1000
        with self._cond:
            self._consumers.add(consumer)
            while True:
                last = _id_key(self._delivered)
                fresh = [eid for eid in self._entries if _id_key(eid) > last][:count]
                if fresh or time.monotonic() >= deadline:
                    break
                self._cond.wait(timeout=max(deadline - time.monotonic(), 0.001))
            if fresh:
                self._delivered = fresh[-1]
            return [self._deliver(eid, consumer) for eid in fresh]

    def read_own_pending(self, consumer: str, after: str, count: int, part: int = 0) -> list[Entry]:
        with self._cond:
            self._consumers.add(consumer)
            low = _id_key(after)
            own = sorted((eid for eid, row in self._pending.items() if row[0] == consumer and _id_key(eid) > low),
                         key=_id_key)[:count]
            return [self._deliver(eid, consumer) for eid in own if eid in self._entries]

    def deliveries(self, entry_ids: list[str], consumer: str | None = None, part: int = 0) -> dict[str, int]:
        with self._cond:
            return {eid: self._pending[eid][2] for eid in entry_ids if eid in self._pending}

    def autoclaim(self, consumer: str, min_idle_ms: int, count: int, part: int = 0) -> list[Entry]:
        now = int(time.time() * 1000)
        with self._cond:
            idle = sorted((eid for eid, row in self._pending.items() if now - row[1] >= min_idle_ms),
                          key=_id_key)[:count]
            out = []
            for eid in idle:
                if eid not in self._entries:
                    self._pending.pop(eid, None)
                    continue
                row = self._pending[eid]
                self._pending[eid] = [consumer, now, row[2]]  # XAUTOCLAIM counts the claim as a delivery
                self._pending[eid][2] += 1
                out.append((eid, dict(self._entries[eid])))
            return out

    def ack(self, entry_ids: list[str], part: int = 0) -> None:
        with self._cond:
            for eid in entry_ids:
                self._pending.pop(eid, None)

    def settle(self, by_part: dict[int, list[str]], applied: int) -> None:
        self.ack([eid for ids in by_part.values() for eid in ids])
        if applied:
            self.count_processed(applied)

    def dead_letter(self, entry: Entry, reason: str, consumer: str, part: int = 0) -> None:
        eid, fields = entry
        with self._cond:
            self._dead.append((self._next_id(), {"entry_id": eid, "event": fields.get("event", ""),
                                                 "reason": reason[:2000], "consumer": consumer}))
            del self._dead[: max(len(self._dead) - stream_setting("DEAD_LETTER_MAXLEN"), 0)]
            self._pending.pop(eid, None)

    def dead_letters(self, count: int = 50) -> list[Entry]:
        with self._cond:
            return list(reversed(self._dead[-count:]))

    def trim(self, parts: list[int] | None = None) -> int:
        with self._cond:
            floor = _id_key(self._delivered)
            floor = (floor[0], floor[1] + 1)
            if self._pending:
                floor = min(floor, min(_id_key(e) for e in self._pending))
            drop = [eid for eid in self._entries if _id_key(eid) < floor]
            for eid in drop:
                del self._entries[eid]
            return len(drop)

    def count_processed(self, n: int) -> None:
        second = int(time.time())
        with self._cond:
            self._rate[second] = self._rate.get(second, 0) + n
            for old in [s for s in self._rate if s < second - 2 * RATE_WINDOW_S]:
                del self._rate[old]

    def stats(self) -> StreamStats:
        second = int(time.time())
        with self._cond:
            last = _id_key(self._delivered)
            lag = sum(1 for eid in self._entries if _id_key(eid) > last)
            rate = sum(self._rate.get(s, 0) for s in range(second - RATE_WINDOW_S, second)) / RATE_WINDOW_S
            return StreamStats(len(self._entries), lag, len(self._pending), len(self._dead), len(self._consumers), rate)

    def delete(self) -> None:
        with self._cond:
            self.__init__()


def add_events(stream: RedisStream | MemoryStream, events: list[Event]) -> list[str]:
    """Append valid events (all or none), each to its customer's partition; returns the entry ids."""
    return stream.add([encode(ev) for ev in events], [ev.customer_id for ev in events])


_memory: MemoryStream | None = None
_memory_lock = threading.Lock()
_redis: dict[tuple[str, str, str, str, int], RedisStream] = {}


def get_stream() -> RedisStream | MemoryStream:
    """Redis Streams when REDIS_URL is set; otherwise the process-wide in-memory stream."""
    global _memory
    if settings.REDIS_URL:
        key = (settings.REDIS_URL, stream_setting("KEY"), stream_setting("GROUP"), stream_setting("DEAD_LETTER_KEY"),
               stream_setting("PARTITIONS"))
        with _memory_lock:
            if key not in _redis:  # one client (and connection pool) per process and stream
                _redis[key] = RedisStream(*key)
            return _redis[key]
    with _memory_lock:
        if _memory is None:
            _memory = MemoryStream()
        return _memory
