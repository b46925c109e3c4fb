"""The stream consumer: one member of the consumer group (``manage.py consume_stream``).

Partitions: events go to ``PARTITIONS`` streams by a hash of the customer id, and the live
consumers (a heartbeat every ``HEARTBEAT_S``; gone after ``MEMBER_TTL_MS`` without one, at once
when stopped cleanly) deal the partitions out among themselves, sorted by name: with C consumers
each reads ⌊N/C⌋ or ⌈N/C⌉ partitions, and consumers beyond N stand by until one leaves. So a
customer's events are applied by one consumer at a time and concurrent batches do not queue on
each other's customer row locks. Exactly-once never depends on that: while members change, two
consumers may briefly read one partition, and the group still delivers each entry once, the
customer row locks order their batches and the event-id constraint makes a redelivery a no-op.

Loop: finish this consumer's own pending entries first (a previous run's, e.g. after a crash, in
every partition), then read new entries of its partitions in batches (what is waiting, up to
``BATCH``, one transaction for all of them); every ``CLAIM_EVERY_S`` take over entries of its
partitions that another consumer left pending for ``CLAIM_IDLE_MS`` (XAUTOCLAIM: it died, and its
partitions came to this one), every ``TRIM_EVERY_S`` trim its partitions of what every group has
acknowledged. A batch is applied in one transaction and acknowledged only after the commit.

Failures: a malformed entry (bad JSON, invalid event) goes to the dead-letter stream at once,
with its reason. A batch that fails is retried event by event; an event that fails
``MAX_ATTEMPTS`` times goes to the dead-letter stream with its error. An entry delivered more than
``MAX_ATTEMPTS`` times without an acknowledgement (consumers crashed on it) is dead-lettered
without another try. Lost database connections are not the event's fault: the entries stay
pending and are retried after a pause.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection

from rfm_portal.mlops.services import NoActiveModel, load_active

from .backends import MemoryStream, RedisStream, get_stream
from .events import Event, EventError, decode
from .feed import FeedPublisher
from .services import apply_events

logger = logging.getLogger(__name__)

TRANSIENT = (OperationalError, InterfaceError)


@dataclass
class ConsumerCounts:
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    batches: int = 0


# A batch's entry: (partition, entry id, fields). Entry ids are unique within a partition only.
Item = tuple[int, str, dict[str, str]]


class StreamConsumer:
    def __init__(self, name: str, stream: RedisStream | MemoryStream | None = None,
                 feed: FeedPublisher | None = None) -> None:
        self.name = name
        self.stream = stream or get_stream()
        self.feed = feed or FeedPublisher()
        cfg = settings.STREAM
        self.batch, self.block_ms = cfg["BATCH"], cfg["BLOCK_MS"]
        self.claim_idle_ms, self.claim_every = cfg["CLAIM_IDLE_MS"], cfg["CLAIM_EVERY_S"]
        self.max_attempts, self.trim_every = cfg["MAX_ATTEMPTS"], cfg["TRIM_EVERY_S"]
        self.linger_ms = cfg.get("LINGER_MS", 0)
        self.heartbeat_every = cfg.get("HEARTBEAT_S", 1.0)
        self.owned: list[int] = []
        self.counts = ConsumerCounts()

    # -- the loop
    def run(self, stop: threading.Event | None = None, max_events: int | None = None) -> ConsumerCounts:
        stop = stop or threading.Event()
        self.stream.ensure_group()
        self.warm_up()
        self.owned = self.stream.heartbeat(self.name)
        self.finish_own_pending()
        last_claim = last_trim = last_beat = time.monotonic()
        try:
            while not stop.is_set():
                if max_events is not None and self.counts.applied + self.counts.duplicates >= max_events:
                    break
                try:
                    now = time.monotonic()
                    if now - last_beat >= self.heartbeat_every:
                        last_beat = now
                        self._beat()
                    if now - last_claim >= self.claim_every:
                        last_claim = now
                        self.claim_idle()
                    if now - last_trim >= self.trim_every:
                        last_trim = now
                        self.stream.trim(self.owned)
                    if not self.owned:  # more consumers than partitions: stand by until one is free
                        stop.wait(self.block_ms / 1000)
                        continue
                    items = self.read()
                    if items:
                        self.handle(items)
                    self.feed.flush_if_due()
                except TRANSIENT:
                    logger.warning("%s: database unavailable; entries stay pending, retrying", self.name,
                                   exc_info=True)
                    self._pause_and_recover(stop)
        finally:
            self.stream.leave(self.name)
        self.feed.flush_if_due(force=True)
        if threading.current_thread() is not threading.main_thread():
            connection.close()  # a thread's connection would outlive it (and block dropping a test database)
        return self.counts

    def _beat(self) -> None:
        owned = self.stream.heartbeat(self.name)
        if owned != self.owned:
            logger.info("%s now reads partitions %s (was %s)", self.name, owned, self.owned)
            self.owned = owned

    def read(self) -> list[Item]:
        """New entries of the owned partitions: what is waiting, up to ``batch`` in all.

        The read takes what is there instead of waiting for a full batch, so at low rates batches
        are small and fast, and under load they fill up by themselves (entries queue while one is applied).
        """
        per_part = max(1, -(-self.batch // len(self.owned)))
        block = self.feed.wait_ms(self.block_ms)
        parts = self.stream.read_parts(self.name, self.owned, per_part, block)
        if parts and self.linger_ms and sum(map(len, parts.values())) < self.batch:
            # an optional linger fills the batch: worth it only where per-batch costs dominate
            for part, more in self.stream.read_parts(self.name, self.owned, per_part, self.linger_ms).items():
                parts[part] = parts.get(part, []) + more
        return [(part, eid, fields) for part, entries in parts.items() for eid, fields in entries]

    def claim_idle(self) -> None:
        """Take over the owned partitions' entries another consumer left pending too long (it died)."""
        for part in self.owned:
            claimed = self.stream.autoclaim(self.name, self.claim_idle_ms, self.batch, part=part)
            if claimed:
                logger.info("%s claimed %d entries of partition %d idle for %d ms", self.name, len(claimed), part,
                            self.claim_idle_ms)
                self.handle([(part, eid, fields) for eid, fields in claimed], redelivered=True)

    @staticmethod
    def warm_up() -> None:
        """Load the active models before joining the group, so the first batch is not seconds late."""
        for kind in ("churn", "cltv"):
            try:
                load_active(kind)
            except NoActiveModel:
                pass  # nothing to score with yet: events are stored without a risk change

    def _pause_and_recover(self, stop: threading.Event) -> None:
        connection.close()
        stop.wait(1.0)
        close_old_connections()
        self.finish_own_pending()

    def finish_own_pending(self) -> None:
        """Re-read and settle every entry delivered to this consumer but never acknowledged (any partition)."""
        for part in range(self.stream.partitions):
            after = "0-0"
            while True:
                entries = self.stream.read_own_pending(self.name, after, self.batch, part=part)
                if not entries:
                    break
                self.handle([(part, eid, fields) for eid, fields in entries], redelivered=True)
                after = entries[-1][0]

    # -- one batch
    def handle(self, items: list[Item], redelivered: bool = False) -> None:
        self.counts.batches += 1
        deliveries: dict[tuple[int, str], int] = {}
        if redelivered:
            for part in {part for part, _, _ in items}:
                counts = self.stream.deliveries([eid for p, eid, _ in items if p == part], self.name, part=part)
                deliveries.update({(part, eid): n for eid, n in counts.items()})
        valid: list[tuple[Item, Event]] = []
        for item in items:
            times = deliveries.get(item[:2], 1)
            if times > self.max_attempts:
                self._dead(item, f"delivered {times} times without being acknowledged "
                                 "(consumers stopped while applying it)")
                continue
            try:
                valid.append((item, decode(item[2].get("event", ""))))
            except EventError as error:
                self._dead(item, f"malformed event: {error}")
        if not valid:
            return
        try:
            result = apply_events([ev for _, ev in valid], entry_ids=[it[1] for it, _ in valid], consumer=self.name)
        except TRANSIENT:
            raise
        except Exception:
            logger.warning("%s: batch of %d failed; retrying event by event", self.name, len(valid), exc_info=True)
            for item, ev in valid:
                self._one_by_one(item, ev)
            return
        self._settle([it for it, _ in valid], result)

    def _one_by_one(self, item: Item, event: Event) -> None:
        error: Exception | None = None
        for attempt in range(self.max_attempts):
            try:
                result = apply_events([event], entry_ids=[item[1]], consumer=self.name)
            except TRANSIENT:
                raise
            except Exception as exc:
                error = exc
                time.sleep(0.02 * 2**attempt)
                continue
            self._settle([item], result)
            return
        self._dead(item, f"failed {self.max_attempts} times: {type(error).__name__}: {error}")

    def _settle(self, items: list[Item], result) -> None:
        by_part: dict[int, list[str]] = {}
        for part, eid, _ in items:
            by_part.setdefault(part, []).append(eid)
        self.stream.settle(by_part, len(result.applied))  # after the commit: apply_events has returned
        self.counts.applied += len(result.applied)
        self.counts.duplicates += len(result.duplicates)
        self.feed.add(result.alerts, len(result.applied))

    def _dead(self, item: Item, reason: str) -> None:
        part, eid, fields = item
        logger.warning("%s: entry %s of partition %d to the dead-letter stream: %s", self.name, eid, part, reason)
        self.stream.dead_letter((eid, fields), reason, self.name, part=part)
        self.counts.dead_lettered += 1
