"""manage.py consume_stream --consumer NAME: one member of the stream's consumer group."""

from __future__ import annotations

import signal
import socket
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from streaming.consumer import StreamConsumer


class Command(BaseCommand):
    help = "Apply streamed events (features, churn and P(alive) re-scoring, risk changes) as a consumer group member."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--consumer", default="", help="consumer name (default: host name); unique per process")
        parser.add_argument("--max-events", type=int, default=None, help="stop after this many events (tests, bench)")

    def handle(self, *args, consumer: str, max_events: int | None, **options) -> None:
        if not settings.REDIS_URL:
            raise CommandError("consume_stream reads from Redis: set REDIS_URL. Without it `make run` consumes the "
                               "in-process stream itself.")
        name = consumer or socket.gethostname()
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write(f"Consumer {name} started.")
        self.stdout.flush()
        counts = StreamConsumer(name).run(stop, max_events=max_events)
        self.stdout.write(f"Consumer {name} stopped: {counts.applied:,} applied, {counts.duplicates:,} duplicates, "
                          f"{counts.dead_lettered:,} dead letters.")
