"""Serve the portal over ASGI (daphne: pages, API, websockets, static files in DEBUG).

With the embedded broker (`memory://`) a Celery worker runs in a daemon thread of this
same process: the memory transport and the in-memory channel layer only exist inside
one process, so the web server, the worker and the websocket feed must share it.
With a real broker (Redis) workers run separately and this only serves.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from celery import Celery
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from rfm_portal.celery import app as celery_app


@contextlib.contextmanager
def embedded_worker(app: Celery, concurrency: int = 2) -> Iterator[object]:
    """A worker consuming the app's default queue from a thread of this process."""
    with start_worker(
        app,
        pool="threads",
        concurrency=concurrency,
        perform_ping_check=False,  # needs a result backend; there is none
        loglevel="INFO",
        shutdown_timeout=30.0,
    ) as worker:
        yield worker


class Command(BaseCommand):
    help = "Run the portal (ASGI). With the embedded memory:// broker, also a Celery worker in-process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--concurrency", type=int, default=2, help="embedded worker threads")

    def handle(self, *args, host: str, port: int, concurrency: int, **options) -> None:
        embedded = str(settings.CELERY_BROKER_URL).startswith("memory://")
        with contextlib.ExitStack() as stack:
            if embedded:
                stack.enter_context(embedded_worker(celery_app, concurrency))
                self.stdout.write(f"Embedded Celery worker started ({concurrency} threads, memory:// broker).")
                from streaming.embedded import embedded_stream  # the Live feed's consumer + simulated events

                stack.enter_context(embedded_stream())
            else:
                self.stdout.write("Broker is external: run `celery -A rfm_portal worker` beside this server.")
            self.stdout.write(f"Portal on http://{host}:{port}/")
            call_command("runserver", f"{host}:{port}", use_reloader=False)
