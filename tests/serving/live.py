"""Start `manage.py serve` (production settings, uvicorn workers) on the test database, and watch its connections."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
APP_NAME = "rfm-serve-live-test"  # application_name of the server's connections, to count exactly those
# pg_stat_activity is cluster-wide: count this test database's server connections only, not another run's.
COUNT_QUERY = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND datname = current_database()"


def free_port(lo: int = 18150, hi: int = 18199) -> int:  # bench/ uses 18100-18149
    for port in range(lo, hi + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {lo}-{hi}")


def admin_dsn() -> str:
    s = connection.settings_dict
    return f"host={s['HOST']} port={s['PORT']} user={s['USER']} dbname={s['NAME']}"


def server_connections() -> int:
    with psycopg.connect(admin_dsn(), autocommit=True) as conn:
        return conn.execute(COUNT_QUERY, [APP_NAME]).fetchone()[0]


class ConnectionSampler:
    """Max number of the server's database connections seen while it runs (polled every 20 ms)."""

    def __init__(self) -> None:
        self.max_seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with psycopg.connect(admin_dsn(), autocommit=True) as conn:
            while not self._stop.is_set():
                n = conn.execute(COUNT_QUERY, [APP_NAME]).fetchone()[0]
                self.max_seen = max(self.max_seen, n)
                self._stop.wait(0.02)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@contextmanager
def live_server(tmp_path: Path, workers: int, **env: str) -> Iterator[str]:
    """`manage.py serve --workers N` with DEBUG off on the test database; yields its base URL."""
    s = connection.settings_dict
    database_url = f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}?application_name={APP_NAME}"
    port = free_port()
    full_env = {
        **os.environ, "DEBUG": "0", "ALLOWED_HOSTS": "127.0.0.1",
        "SECRET_KEY": settings.SECRET_KEY,  # sessions made by the tests must verify on the server
        "SECURE_SSL_REDIRECT": "0", "DATABASE_URL": database_url, "RFM_VAR_DIR": str(tmp_path),
        "LOG_LEVEL": "WARNING", **env,
    }
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers",
             str(workers)], cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)  # its own process group: the uvicorn workers stop with it
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 1).close()
                    time.sleep(0.3)
                    assert process.poll() is None, log_path.read_text()  # listening is ours, not another's
                    break
                except OSError:
                    assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
                    time.sleep(0.2)
            yield f"http://127.0.0.1:{port}"
            log.flush()
            assert "Traceback" not in log_path.read_text(), log_path.read_text()  # before shutdown noise
        finally:
            _stop_group(process)


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group, SIGKILL what is left: no orphaned worker keeps a connection.

    A clean stop takes a few seconds (3.3 s for 2 workers at load 6); a server still up after 10 s is stuck, and
    waiting longer only delays the suite."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    process.wait(10)
