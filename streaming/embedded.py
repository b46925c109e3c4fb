"""The embedded default (`make run`, no Redis): consumer and a gentle simulated stream in-process.

The same consumer code path runs on the in-process stream (backends.MemoryStream), so the Live
feed moves on a fresh install. With Redis configured nothing starts here: consumers run as
their own processes (`manage.py consume_stream`, the docker-compose `consumer` service).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

from django.conf import settings
from django.db import connection

from .backends import add_events, get_stream
from .consumer import StreamConsumer

logger = logging.getLogger(__name__)


def _simulate(stop: threading.Event, rate: float) -> None:
    from .producer import Simulator, load_history

    try:
        history, clock_start = load_history()
        if not len(history.external_ids):
            logger.info("embedded stream: no customers yet, nothing to simulate")
            return
        sim = Simulator(history, clock_start, speed=3600.0, return_rate=0.05)
        stream = get_stream()
        while not stop.wait(1.0 / rate):
            add_events(stream, sim.events(1))
    except Exception:
        logger.exception("embedded stream simulator stopped")
    finally:
        connection.close()


def _consume(stop: threading.Event) -> None:
    try:
        while not stop.is_set():
            try:
                StreamConsumer("embedded").run(stop)
            except Exception:  # keep the demo's feed alive; the entries stay pending and are retried
                logger.exception("embedded stream consumer failed; restarting")
                time.sleep(2.0)
    finally:
        connection.close()


@contextlib.contextmanager
def embedded_stream(rate: float | None = None) -> Iterator[list[threading.Thread]]:
    """Run the consumer and the simulator in daemon threads while the context is open."""
    if settings.REDIS_URL:
        yield []
        return
    stop = threading.Event()
    rate = settings.STREAM["EMBEDDED_RATE"] if rate is None else rate
    threads = [threading.Thread(target=_consume, args=(stop,), name="stream-consumer", daemon=True)]
    if rate > 0:
        threads.append(threading.Thread(target=_simulate, args=(stop, rate), name="stream-simulator", daemon=True))
    for thread in threads:
        thread.start()
    try:
        yield threads
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
