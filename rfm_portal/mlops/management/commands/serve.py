"""Serve the portal over ASGI with uvicorn: pages, API, websockets (and static files through WhiteNoise).

Production (a real broker, REDIS_URL set): ``--workers N`` uvicorn worker processes share the
listening socket; each loads the models once, has its own database pool (DB_POOL_MAX_SIZE), and
uvicorn's supervisor restarts a worker that dies. Celery workers run separately
(``celery -A rfm_portal worker``). Channels' Redis layer carries websocket messages between processes.

Embedded (the ``memory://`` broker, ``make run``): one process only, with a Celery worker in a daemon
thread: the memory transport and the in-memory channel layer exist inside one process, so the web
server, the worker and the websocket feed must share it.

Why uvicorn's own ``--workers`` rather than gunicorn + uvicorn workers: one dependency fewer, the
same pre-fork model (processes share one socket, dead workers are replaced), and it runs in-process
for the embedded mode, so both modes go through the same server.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator

from celery import Celery
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from rfm_portal.celery import app as celery_app

ASGI_APP = "rfm_portal.asgi:application"


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


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def uvicorn_options(host: str, port: int, workers: int, keep_alive: int, access_log: bool) -> dict:
    """uvicorn.run keyword arguments."""
    return {
        "host": host,
        "port": port,
        "workers": workers if workers > 1 else None,
        "http": "httptools",
        "loop": "uvloop",
        "ws": "websockets-sansio",
        "lifespan": "off",  # Django has no lifespan handler
        "timeout_keep_alive": keep_alive,  # HTTP keep-alive: idle connections stay open this long
        "proxy_headers": True,  # trusted from FORWARDED_ALLOW_IPS (default 127.0.0.1)
        "server_header": False,
        "access_log": access_log,
        # Optional cap on connections + requests in flight per worker; above it uvicorn answers 503.
        "limit_concurrency": env_int("WEB_LIMIT_CONCURRENCY", 0) or None,
        "log_level": os.environ.get("LOG_LEVEL", "info").lower(),
    }


class Command(BaseCommand):
    help = (
        "Run the portal (ASGI, uvicorn). With a real broker: --workers N processes. "
        "With the embedded memory:// broker: one process and a Celery worker thread."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--workers", type=int, default=env_int("WEB_CONCURRENCY", 1),
            help="web worker processes (default: WEB_CONCURRENCY or 1); the embedded mode runs one",
        )
        parser.add_argument("--concurrency", type=int, default=2, help="embedded Celery worker threads")
        parser.add_argument(
            "--keep-alive", type=int, default=env_int("WEB_KEEP_ALIVE", 30),
            help="seconds an idle HTTP keep-alive connection stays open (default: WEB_KEEP_ALIVE or 30)",
        )
        parser.add_argument(
            "--access-log", action=argparse.BooleanOptionalAction, default=os.environ.get("WEB_ACCESS_LOG", "0") == "1",
            help="log every request (default off: WEB_ACCESS_LOG=1; a reverse proxy usually logs them)",
        )

    def handle(self, *args, host: str, port: int, workers: int, concurrency: int, keep_alive: int,
               access_log: bool, **options) -> None:
        import uvicorn

        if workers < 1:
            raise CommandError("--workers must be at least 1")
        embedded = str(settings.CELERY_BROKER_URL).startswith("memory://")
        if embedded and workers > 1:
            raise CommandError(
                "The embedded memory:// broker and in-memory channel layer live in one process: "
                "set REDIS_URL to run several workers."
            )
        with contextlib.ExitStack() as stack:
            if embedded:
                stack.enter_context(embedded_worker(celery_app, concurrency))
                self.stdout.write(f"Embedded Celery worker started ({concurrency} threads, memory:// broker).")
                from streaming.embedded import embedded_stream  # the Live feed's consumer + simulated events

                stack.enter_context(embedded_stream())
            else:
                self.stdout.write("Broker is external: run `celery -A rfm_portal worker` beside this server.")
            pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
            if pool:
                self.stdout.write(
                    f"Database pool: at most {pool['max_size']} connections per worker, "
                    f"{workers * pool['max_size']} for {workers} worker(s)."
                )
            self.stdout.write(f"Portal on http://{host}:{port}/ ({workers} worker process(es), uvicorn)")
            self.stdout.flush()
            uvicorn.run(ASGI_APP, **uvicorn_options(host, port, workers, keep_alive, access_log))
