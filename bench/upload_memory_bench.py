"""Memory of the web server across a large upload (issue 9): a ~50 MB CSV to POST /api/imports/.

    .venv/bin/python bench/upload_memory_bench.py --rows 600000

Starts, on 127.0.0.1 only, a production-settings ASGI server (daphne, DEBUG off) and a Celery
worker (prefork, 1 child) on the local PostgreSQL/Redis (DATABASE_URL / REDIS_URL: use your
own database and Redis db), creates an API key, and uploads the file twice:

* background (default threshold): the server streams the upload to disk and queues a Job;
  the worker imports it; the server's RSS is read before, right after the 202, and after
  the job finished;
* in the request (IMPORT_BACKGROUND_THRESHOLD_BYTES above the file size, i.e. the old
  behaviour): the server itself parses and imports the file.

RSS is VmRSS of the server process (and of the worker's pool child), from /proc.
Every process it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from import_bench import generate  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def env_for(threshold: int | None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rfm_faults")
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/4")
    env.setdefault("CHANNELS_PREFIX", "rfm-faults")
    env.update(
        DEBUG="0",
        SECRET_KEY="bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
        LOG_LEVEL="WARNING",
        RFM_VAR_DIR=str(Path(tempfile.gettempdir()) / "rfm-upload-bench"),
    )
    if threshold is not None:
        env["IMPORT_BACKGROUND_THRESHOLD_BYTES"] = str(threshold)
    return env


def manage(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def wait_http(url: str, headers: dict[str, str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"server did not answer {url}")


SERVERS = {
    "daphne": lambda port: [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                            "rfm_portal.asgi:application"],
    "uvicorn": lambda port: [sys.executable, "-m", "uvicorn", "rfm_portal.asgi:application", "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "warning"],
}  # fmt: skip


def run(
    label: str, csv: Path, port: int, threshold: int | None, key: str, workdir: Path, server_name: str, uploads: int
) -> None:
    env = env_for(threshold)
    manage(env, "migrate", "-v0")
    raw_key = manage(env, "create_api_key", key).strip().splitlines()[-1]
    headers = {"Authorization": f"Api-Key {raw_key}"}
    base = f"http://127.0.0.1:{port}"
    server = start(SERVERS[server_name](port), env, workdir / f"server-{label}.log")
    worker = start(
        [sys.executable, "-m", "celery", "-A", "rfm_portal", "worker", "--pool", "prefork", "--concurrency", "1",
         "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env,
        workdir / f"worker-{label}.log",
    )  # fmt: skip
    try:
        wait_http(f"{base}/api/jobs/", headers)
        for _ in range(20):  # warm up: imports, connections, the first serializer run
            requests.get(f"{base}/api/jobs/", headers=headers, timeout=10)
        before = rss_mb(server.pid)
        for upload in range(1, uploads + 1):
            upload_once(f"{label} #{upload}", base, headers, csv, server, worker, before)
    finally:
        stop(server)
        stop(worker)


def upload_once(
    label: str, base: str, headers: dict, csv: Path, server: subprocess.Popen, worker: subprocess.Popen, before: float
) -> None:
    started = time.monotonic()
    with open(csv, "rb") as fh:
        response = requests.post(
            f"{base}/api/imports/", headers=headers, files={"file": (csv.name, fh, "text/csv")},
            data={"skip_invalid": "true"}, timeout=900,
        )  # fmt: skip
    answered = time.monotonic() - started
    right_after = rss_mb(server.pid)
    body = response.json()
    job_id = body.get("job")
    done_at = answered
    if response.status_code == 202 and job_id:
        while time.monotonic() - started < 900:
            job = requests.get(f"{base}/api/jobs/{job_id}/", headers=headers, timeout=10).json()
            if job["state"] in ("succeeded", "failed"):
                break
            time.sleep(1)
        done_at = time.monotonic() - started
        outcome = f"job {job['state']}: {job['result'].get('message') or job['error']}"
    else:
        outcome = f"{response.status_code} {body.get('status')}: {body.get('message')}"
    time.sleep(3)
    after = rss_mb(server.pid)
    pool = children(worker.pid)
    worker_rss = rss_mb(pool[0]) if pool else float("nan")
    print(f"\n[{label}] HTTP {response.status_code} in {answered:.1f} s; import done after {done_at:.1f} s")
    print(f"  {outcome}")
    print(f"  server RSS: before {before:.0f} MB, right after the response {right_after:.0f} MB, "
          f"after the import {after:.0f} MB (delta {after - before:+.0f} MB)")  # fmt: skip
    print(f"  worker pool child RSS after the import: {worker_rss:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=600_000)
    parser.add_argument("--port", type=int, default=18310)
    parser.add_argument("--background-only", action="store_true", help="skip the in-request comparison")
    parser.add_argument("--server", choices=sorted(SERVERS), default="daphne")
    parser.add_argument("--uploads", type=int, default=1, help="uploads of the file per server run")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="rfm-upload-bench-"))
    csv = workdir / "transactions.csv"
    generate(csv, args.rows)
    size = csv.stat().st_size
    print(f"file: {args.rows:,} rows, {size / 1e6:.1f} MB; logs in {workdir}")
    print(f"server: {args.server}")
    run("background job", csv, args.port, None, "upload-bench-bg", workdir, args.server, args.uploads)
    if not args.background_only:
        run("in the request (old path)", csv, args.port + 1, size + 1, "upload-bench-sync", workdir, args.server, 1)


if __name__ == "__main__":
    main()
