"""The event stream: Redis Streams in production, an in-process copy of the same semantics embedded.

Both backends offer what the consumer needs — append (all or nothing), a consumer group with a
pending-entries list, acknowledge, claim entries idle too long, a dead-letter stream, trimming
that never drops an unacknowledged entry, and the figures of the Live feed — so the consumer
code path is the same in both.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings

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


class RedisStream:
    """A Redis Stream with one consumer group (keys and group from settings.STREAM)."""

    def __init__(self, url: str, key: str, group: str, dead_key: str) -> None:
        self.redis = redis.Redis.from_url(url, decode_responses=True)
        self.key, self.group, self.dead_key = key, group, dead_key
        self.rate_key = f"{key}:rate"

    # -- producing
    def add(self, payloads: list[str]) -> list[str]:
        """Append every payload or none (one MULTI/EXEC)."""
        pipe = self.redis.pipeline(transaction=True)
        for payload in payloads:
            pipe.xadd(self.key, {"event": payload})
        return list(pipe.execute())

    # -- consuming
    def ensure_group(self) -> None:
        try:
            self.redis.xgroup_create(self.key, self.group, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def read_new(self, consumer: str, count: int, block_ms: int) -> list[Entry]:
        reply = self.redis.xreadgroup(self.group, consumer, {self.key: ">"}, count=count, block=block_ms or None)
        return [(eid, fields or {}) for _key, entries in (reply or []) for eid, fields in entries]

    def read_own_pending(self, consumer: str, after: str, count: int) -> list[Entry]:
        """This consumer's delivered-but-unacknowledged entries with ids above ``after``."""
        reply = self.redis.xreadgroup(self.group, consumer, {self.key: after}, count=count)
        return [(eid, fields or {}) for _key, entries in (reply or []) for eid, fields in entries]

    def deliveries(self, entry_ids: list[str], consumer: str | None = None) -> dict[str, int]:
        """How often each pending entry (of ``consumer``, when given) has been delivered."""
        if not entry_ids:
            return {}
        ordered = sorted(entry_ids, key=_id_key)
        rows = self.redis.xpending_range(self.key, self.group, min=ordered[0], max=ordered[-1],
                                         count=len(ordered) * 4, consumername=consumer)
        wanted = set(entry_ids)
        return {row["message_id"]: int(row["times_delivered"]) for row in rows if row["message_id"] in wanted}

    def autoclaim(self, consumer: str, min_idle_ms: int, count: int) -> list[Entry]:
        """Entries pending for longer than ``min_idle_ms`` with any consumer, now this one's."""
        claimed: list[Entry] = []
        start = "0-0"
        while len(claimed) < count:
            reply = self.redis.xautoclaim(self.key, self.group, consumer, min_idle_ms, start, count=count)
            start, entries = reply[0], reply[1]
            deleted = reply[2] if len(reply) > 2 else []
            if deleted:  # trimmed away while pending: nothing to process, stop tracking them
                self.redis.xack(self.key, self.group, *deleted)
            claimed += [(eid, fields or {}) for eid, fields in entries if fields is not None]
            if start == "0-0":
                break
        return claimed

    def ack(self, entry_ids: list[str]) -> None:
        if entry_ids:
            self.redis.xack(self.key, self.group, *entry_ids)

    def dead_letter(self, entry: Entry, reason: str, consumer: str) -> None:
        """Copy the entry to the dead-letter stream with its reason and acknowledge it, atomically."""
        eid, fields = entry
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(self.dead_key, {"entry_id": eid, "event": fields.get("event", ""), "reason": reason[:2000],
                                  "consumer": consumer, "at": str(int(time.time() * 1000))},
                  maxlen=stream_setting("DEAD_LETTER_MAXLEN"), approximate=True)
        pipe.xack(self.key, self.group, eid)
        pipe.execute()

    def dead_letters(self, count: int = 50) -> list[Entry]:
        return [(eid, fields) for eid, fields in self.redis.xrevrange(self.dead_key, count=count)]

    # -- housekeeping
    def trim(self) -> int:
        """Drop entries every group has acknowledged; never one still pending or not yet delivered.

        The floor is the lowest of, over every group, its oldest pending entry and the entry after
        its last delivered one. Entries delivered later have higher ids than the last-delivered id
        read here, and claims only move entries already pending, so nothing under the floor can
        become pending between the reads and XTRIM MINID.
        """
        try:
            groups = self.redis.xinfo_groups(self.key)
        except redis.ResponseError:  # the stream does not exist yet: nothing to trim
            return 0
        floor: tuple[int, int] | None = None
        for group in groups:
            last = _id_key(group["last-delivered-id"])
            candidates = [(last[0], last[1] + 1)]
            if int(group["pending"]):
                summary = self.redis.xpending(self.key, group["name"])
                candidates.append(_id_key(summary["min"]))
            low = min(candidates)
            floor = low if floor is None else min(floor, low)
        if floor is None:
            return 0
        return int(self.redis.xtrim(self.key, minid=f"{floor[0]}-{floor[1]}", approximate=False))

    def count_processed(self, n: int) -> None:
        second = int(time.time())
        pipe = self.redis.pipeline(transaction=False)
        pipe.hincrby(self.rate_key, str(second), n)
        pipe.hdel(self.rate_key, *[str(s) for s in range(second - 3 * RATE_WINDOW_S, second - 2 * RATE_WINDOW_S)])
        pipe.execute()

    def stats(self) -> StreamStats:
        pipe = self.redis.pipeline(transaction=False)
        pipe.xlen(self.key)
        pipe.xlen(self.dead_key)
        second = int(time.time())
        pipe.hmget(self.rate_key, [str(s) for s in range(second - RATE_WINDOW_S, second)])
        length, dead, counts = pipe.execute()
        lag = pending = consumers = 0
        try:
            for group in self.redis.xinfo_groups(self.key):
                if group["name"] == self.group:
                    pending, consumers = int(group["pending"]), int(group["consumers"])
                    lag = int(group.get("lag") or 0) if group.get("lag") is not None else 0
        except redis.ResponseError:  # the stream (and so its group) does not exist yet: no lag, nothing pending
            pass
        rate = sum(int(c or 0) for c in counts) / RATE_WINDOW_S
        return StreamStats(int(length), lag, pending, int(dead), consumers, rate)

    def delete(self) -> None:
        self.redis.delete(self.key, self.dead_key, self.rate_key)


class MemoryStream:
    """The same semantics inside one process (embedded runs: no Redis)."""

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

    def add(self, payloads: list[str]) -> list[str]:
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

    def _deliver(self, eid: str, consumer: str) -> Entry:
        now = int(time.time() * 1000)
        row = self._pending.get(eid)
        self._pending[eid] = [consumer, now, (row[2] + 1) if row else 1]
        return eid, dict(self._entries[eid])

    def read_new(self, consumer: str, count: int, block_ms: int) -> list[Entry]:
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

    def read_own_pending(self, consumer: str, after: str, count: int) -> list[Entry]:
        with self._cond:
            self._consumers.add(consumer)
            low = _id_key(after)
            own = sorted((eid for eid, row in self._pending.items() if row[0] == consumer and _id_key(eid) > low),
                         key=_id_key)[:count]
            return [self._deliver(eid, consumer) for eid in own if eid in self._entries]

    def deliveries(self, entry_ids: list[str], consumer: str | None = None) -> dict[str, int]:
        with self._cond:
            return {eid: self._pending[eid][2] for eid in entry_ids if eid in self._pending}

    def autoclaim(self, consumer: str, min_idle_ms: int, count: int) -> list[Entry]:
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

    def ack(self, entry_ids: list[str]) -> None:
        with self._cond:
            for eid in entry_ids:
                self._pending.pop(eid, None)

    def dead_letter(self, entry: Entry, reason: str, consumer: str) -> None:
        eid, fields = entry
        with self._cond:
            self._dead.append((self._next_id(), {"entry_id": eid, "event": fields.get("event", ""),
                                                 "reason": reason[:2000], "consumer": consumer}))
            del self._dead[: max(len(self._dead) - stream_setting("DEAD_LETTER_MAXLEN"), 0)]
            self._pending.pop(eid, None)

    def dead_letters(self, count: int = 50) -> list[Entry]:
        with self._cond:
            return list(reversed(self._dead[-count:]))

    def trim(self) -> int:
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


_memory: MemoryStream | None = None
_memory_lock = threading.Lock()
_redis: dict[tuple[str, str, str, str], RedisStream] = {}


def get_stream() -> RedisStream | MemoryStream:
    """Redis Streams when REDIS_URL is set; otherwise the process-wide in-memory stream."""
    global _memory
    if settings.REDIS_URL:
        key = (settings.REDIS_URL, stream_setting("KEY"), stream_setting("GROUP"), stream_setting("DEAD_LETTER_KEY"))
        with _memory_lock:
            if key not in _redis:  # one client (and connection pool) per process and stream
                _redis[key] = RedisStream(*key)
            return _redis[key]
    with _memory_lock:
        if _memory is None:
            _memory = MemoryStream()
        return _memory
