"""The Live feed over Channels: the `live` group, fed in batches per short tick.

A consumer collects the alerts of what it applied and sends one message per tick (and the
stream's figures about once a second), so thousands of events a second become a few messages
a second for each browser. A message goes out as soon as a batch is applied once the tick has
passed since the last one (the consumer's read waits no longer than the tick while alerts are
held), so an alert waits at most one tick.

Messages are sent by one thread per process with its own event loop, in order: the consumer
never waits on the channel layer, and channels-redis keeps its connections (per event loop)
instead of ``async_to_sync`` starting a loop and connecting for every message (measured:
9.4 ms CPU per message that way, 3.1 ms with one loop; docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from typing import Any

from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import channel_layers, get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.conf import settings

from .backends import get_stream

logger = logging.getLogger(__name__)

LIVE_GROUP = "live"
STATS_EVERY_S = 1.0
QUEUE_SIZE = 100  # messages waiting for the channel layer; beyond that the feed drops (and logs), never the work


class _Sender:
    """A daemon thread that sends feed messages to the `live` group in order, on one event loop."""

    def __init__(self) -> None:
        self.queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=QUEUE_SIZE)
        self.thread = threading.Thread(target=self._run, name="live-feed-sender", daemon=True)
        self.thread.start()

    @staticmethod
    def _layer():
        """The channel layer to send with. A Redis layer gets an instance of its own: its connections then
        belong to this thread's loop only (the process-wide one may be used, and flushed, from other loops).
        An in-memory layer (embedded runs) must be the shared one: its groups live in the instance."""
        layer = get_channel_layer()
        if isinstance(layer, RedisChannelLayer):
            try:
                return channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
            except Exception:
                logger.warning("live feed: no channel layer of its own; using the shared one", exc_info=True)
        return layer

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        layer = self._layer()
        while True:
            message = self.queue.get()
            try:
                if message.pop("_stats", False):  # read here, not in the consumer's loop
                    try:
                        message["stats"] = get_stream().stats().as_dict()
                    except Exception:
                        logger.warning("could not read stream figures", exc_info=True)
                if layer is not None:
                    loop.run_until_complete(layer.group_send(LIVE_GROUP, {"type": "live.batch", "payload": message}))
            except Exception:
                logger.warning("could not push to the live feed", exc_info=True)
            finally:
                self.queue.task_done()

    def put(self, message: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(message)
        except queue.Full:
            logger.warning("live feed: the channel layer is not keeping up; a message was dropped")

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)


_sender: _Sender | None = None
_sender_lock = threading.Lock()


def _get_sender() -> _Sender:
    global _sender
    with _sender_lock:
        if _sender is None:
            _sender = _Sender()
        return _sender


def send(message: dict[str, Any], wait: bool = False) -> None:
    """Push a message to every open Live feed (in the background). The feed must never break the work.

    ``wait``: return once every message so far has been handed to the channel layer (at most 5 s).
    """
    sender = _get_sender()
    sender.put(message)
    if wait:
        sender.join(5.0)


class FeedPublisher:
    def __init__(self, tick_s: float | None = None, max_items: int | None = None) -> None:
        self.tick_s = settings.STREAM["FEED_TICK_S"] if tick_s is None else tick_s
        self.max_items = max_items or settings.STREAM["FEED_MAX_ITEMS"]
        self.alerts: list[dict[str, Any]] = []
        self.applied = 0
        self.last_flush = 0.0
        self.last_stats = 0.0

    def add(self, alerts: list[dict[str, Any]], applied: int) -> None:
        self.alerts.extend(alerts)
        self.applied += applied
        self.flush_if_due()

    def wait_ms(self, block_ms: int) -> int:
        """How long a read may block: no longer than until held alerts are due (at least 1 ms)."""
        if not self.alerts:
            return block_ms
        due_in = self.tick_s - (time.monotonic() - self.last_flush)
        return max(1, min(block_ms, int(due_in * 1000)))

    def flush_if_due(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_flush < self.tick_s:
            return
        stats_due = now - self.last_stats >= STATS_EVERY_S
        if not self.alerts and not stats_due:
            return
        message: dict[str, Any] = {"alerts": [], "applied": self.applied, "dropped": 0}
        if self.alerts:
            # newest first, as the page lists them; beyond the cap only counted (the page says so)
            newest = self.alerts[::-1]
            message["alerts"] = newest[: self.max_items]
            message["dropped"] = max(len(newest) - self.max_items, 0)
        if stats_due:
            message["_stats"] = True
            self.last_stats = now
        send(message, wait=force)
        self.alerts, self.applied, self.last_flush = [], 0, now
