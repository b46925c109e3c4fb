"""The stream consumer: one member of the consumer group (``manage.py consume_stream``).

Loop: finish this consumer's own pending entries first (a previous run's, e.g. after a crash),
then read new entries in batches; every ``CLAIM_EVERY_S`` take over entries another consumer left
pending for ``CLAIM_IDLE_MS`` (XAUTOCLAIM: it died), every ``TRIM_EVERY_S`` trim what every group
has acknowledged. A batch is applied in one transaction and acknowledged only after the commit.

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

from .backends import Entry, MemoryStream, RedisStream, get_stream
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
        self.counts = ConsumerCounts()

    # -- the loop
    def run(self, stop: threading.Event | None = None, max_events: int | None = None) -> ConsumerCounts:
        stop = stop or threading.Event()
        self.stream.ensure_group()
        self.warm_up()
        self.finish_own_pending()
        last_claim = last_trim = time.monotonic()
        while not stop.is_set():
            if max_events is not None and self.counts.applied + self.counts.duplicates >= max_events:
                break
            try:
                now = time.monotonic()
                if now - last_claim >= self.claim_every:
                    last_claim = now
                    claimed = self.stream.autoclaim(self.name, self.claim_idle_ms, self.batch)
                    if claimed:
                        logger.info("%s claimed %d entries idle for %d ms", self.name, len(claimed),
                                    self.claim_idle_ms)
                        self.handle(claimed, redelivered=True)
                if now - last_trim >= self.trim_every:
                    last_trim = now
                    self.stream.trim()
                entries = self.stream.read_new(self.name, self.batch, self.block_ms)
                if entries and len(entries) < self.batch and self.linger_ms:
                    # a short linger fills the batch: per-batch costs (queries, model calls) dominate small ones
                    entries += self.stream.read_new(self.name, self.batch - len(entries), self.linger_ms)
                if entries:
                    self.handle(entries)
                self.feed.flush_if_due()
            except TRANSIENT:
                logger.warning("%s: database unavailable; entries stay pending, retrying", self.name, exc_info=True)
                self._pause_and_recover(stop)
        self.feed.flush_if_due(force=True)
        if threading.current_thread() is not threading.main_thread():
            connection.close()  # a thread's connection would outlive it (and block dropping a test database)
        return self.counts

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
        """Re-read and settle every entry delivered to this consumer but never acknowledged."""
        after = "0-0"
        while True:
            entries = self.stream.read_own_pending(self.name, after, self.batch)
            if not entries:
                return
            self.handle(entries, redelivered=True)
            after = entries[-1][0]

    # -- one batch
    def handle(self, entries: list[Entry], redelivered: bool = False) -> None:
        self.counts.batches += 1
        deliveries = self.stream.deliveries([eid for eid, _ in entries], self.name) if redelivered else {}
        valid: list[tuple[Entry, Event]] = []
        for entry in entries:
            eid, fields = entry
            if deliveries.get(eid, 1) > self.max_attempts:
                self._dead(entry, f"delivered {deliveries[eid]} times without being acknowledged "
                                  "(consumers stopped while applying it)")
                continue
            try:
                valid.append((entry, decode(fields.get("event", ""))))
            except EventError as error:
                self._dead(entry, f"malformed event: {error}")
        if not valid:
            return
        try:
            result = apply_events([ev for _, ev in valid], entry_ids=[e[0] for e, _ in valid], consumer=self.name)
        except TRANSIENT:
            raise
        except Exception:
            logger.warning("%s: batch of %d failed; retrying event by event", self.name, len(valid), exc_info=True)
            for entry, ev in valid:
                self._one_by_one(entry, ev)
            return
        self._settle([e[0] for e, _ in valid], result)

    def _one_by_one(self, entry: Entry, event: Event) -> None:
        error: Exception | None = None
        for attempt in range(self.max_attempts):
            try:
                result = apply_events([event], entry_ids=[entry[0]], consumer=self.name)
            except TRANSIENT:
                raise
            except Exception as exc:
                error = exc
                time.sleep(0.02 * 2**attempt)
                continue
            self._settle([entry[0]], result)
            return
        self._dead(entry, f"failed {self.max_attempts} times: {type(error).__name__}: {error}")

    def _settle(self, entry_ids: list[str], result) -> None:
        self.stream.ack(entry_ids)  # after the commit: apply_events has returned
        self.counts.applied += len(result.applied)
        self.counts.duplicates += len(result.duplicates)
        if result.applied:
            self.stream.count_processed(len(result.applied))
        self.feed.add(result.alerts, len(result.applied))

    def _dead(self, entry: Entry, reason: str) -> None:
        logger.warning("%s: entry %s to the dead-letter stream: %s", self.name, entry[0], reason)
        self.stream.dead_letter(entry, reason, self.name)
        self.counts.dead_lettered += 1
