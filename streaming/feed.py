"""The Live feed over Channels: the `live` group, fed in batches per short tick.

A consumer collects the alerts of what it applied and sends one message per tick (and the
stream's figures about once a second), so thousands of events a second become a few messages
a second for each browser.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from .backends import get_stream

logger = logging.getLogger(__name__)

LIVE_GROUP = "live"
STATS_EVERY_S = 1.0


def send(message: dict[str, Any]) -> None:
    """Push a message to every open Live feed. The feed must never break the work."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(LIVE_GROUP, {"type": "live.batch", "payload": message})
    except Exception:
        logger.warning("could not push to the live feed", exc_info=True)


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
            try:
                message["stats"] = get_stream().stats().as_dict()
            except Exception:
                logger.warning("could not read stream figures", exc_info=True)
            self.last_stats = now
        send(message)
        self.alerts, self.applied, self.last_flush = [], 0, now
