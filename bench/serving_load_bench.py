"""Single-row `POST /predict_churn` and `POST /predict_cltv` under load: the portal beside a FastAPI scorer.

One command, everything on 127.0.0.1, bounded in time and request count:

1. Recreate a PostgreSQL database of its own (default ``rfm_serve_bench``) owned by a login role of
   the same name with a CONNECTION LIMIT (``--role-conn-limit``): whatever the server does, it cannot
   take more than that from the machine's 100. ``migrate``, import the committed sample
   (``data/sample.csv``), train churn and CLTV models, create an API key.
2. Start the portal with production settings (DEBUG off, PostgreSQL, Redis) through ``manage.py serve``
   (``--portal-cmd`` is a template, so an older serve command can be measured the same way), and a
   minimal FastAPI + uvicorn scorer serving the *same* artifacts: same payload checks and model calls,
   no auth, no database, no DRF.
3. For each endpoint and server: one client (p50/p99), then ``--clients`` concurrent keep-alive
   clients for ``--seconds`` (req/s, p50/p99, errors by status), while a sampler polls
   ``pg_stat_activity`` for the bench database (max connections seen).
4. Pool exhaustion: restart the portal with a 1-connection pool and a short pool timeout and send
   concurrent requests to an endpoint that holds its connection (``--exhaust`` … see below): every
   answer must be 200 or 503 with Retry-After, never 500.

    .venv/bin/python bench/serving_load_bench.py [--clients 50] [--seconds 10] [--workers 2]

``side_by_side()`` is what bench/churn_service_bench.py and bench/cltv_service_bench.py call.
"""

import argparse
import asyncio
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYTHON = str(ROOT / ".venv" / "bin" / "python")
PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
# read before prepare() points this process at the embedded (Redis-less) settings
BENCH_REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/2"
STARTUP_TIMEOUT = 300.0  # seconds for a server to listen (workers import Django and the models; slow on a busy machine)
DEFAULT_PORTAL_CMD = "{python} manage.py serve --host 127.0.0.1 --port {port} --workers {workers}"


# --- the FastAPI scorer (uvicorn --factory, in its own processes) --------------------------------


def make_fastapi_app() -> Any:
    """Both endpoints, artifacts from BENCH_CHURN_ARTIFACT / BENCH_CLTV_ARTIFACT (either may be unset)."""
    import joblib
    import numpy as np
    import pandas as pd
    from fastapi import FastAPI, HTTPException, Request

    from rfm_portal.customers.features import FeatureError, features_from_payload

    app = FastAPI()
    if os.environ.get("BENCH_CHURN_ARTIFACT"):
        churn = joblib.load(os.environ["BENCH_CHURN_ARTIFACT"])

        @app.post("/predict_churn")
        async def predict_churn(request: Request) -> dict[str, Any]:
            body = await request.json()
            try:
                X = features_from_payload(body["features"])
            except (FeatureError, KeyError) as error:
                raise HTTPException(status_code=400, detail=str(error)) from None
            p = churn.predict_proba(X)
            bands = churn.bands.assign(p)
            return {"count": len(X), "results": [
                {"customer_id": str(c), "probability": float(pi), "risk_band": str(b)}
                for c, pi, b in zip(X.index, p, bands, strict=True)]}

    if os.environ.get("BENCH_CLTV_ARTIFACT"):
        from cltv.pipeline import score_frame

        cltv = joblib.load(os.environ["BENCH_CLTV_ARTIFACT"])
        fields = ("frequency", "recency", "T", "monetary_value")
        outputs = ("p_alive", "expected_purchases_30d", "expected_purchases_90d", "expected_purchases_365d",
                   "expected_aov", "clv", "clv_p10", "clv_p50", "clv_p90")
        unit_days = {"days": 1.0, "weeks": 7.0}

        @app.post("/predict_cltv")
        async def predict_cltv(request: Request) -> dict[str, Any]:
            body = await request.json()
            try:
                values = np.array([[float(r[f]) for f in fields] for r in body["customers"]], dtype=float)
                factor = unit_days[body["unit"]] / cltv.unit_days
            except (KeyError, TypeError, ValueError) as error:
                raise HTTPException(status_code=400, detail=str(error)) from None
            if not np.isfinite(values).all() or (values < 0).any() or (values[:, 1] > values[:, 2]).any():
                raise HTTPException(status_code=400, detail="invalid row")
            frame = pd.DataFrame(values, columns=list(fields))
            frame[["recency", "T"]] *= factor
            scores = score_frame(cltv, frame)
            cols = {c: scores[c].to_numpy(dtype=float).tolist() for c in outputs}
            return {"model": cltv.model, "results": [
                {"source": "payload", **{c: cols[c][i] for c in outputs}} for i in range(len(frame))]}

    return app


# --- processes and the database ------------------------------------------------------------------


PORT_RANGE = [18100, 18149]  # --port-range; tests/serving use 18150-18199


def free_port(lo: int | None = None, hi: int | None = None) -> int:
    """A free port in PORT_RANGE (or lo-hi); falls back to any free port."""
    lo, hi = lo or PORT_RANGE[0], hi or PORT_RANGE[1]
    for port in range(lo, hi + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, timeout: float = 120.0, proc: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


def recreate_database(name: str, conn_limit: int) -> str:
    """A fresh database owned by a non-superuser role capped at conn_limit connections (superusers are not)."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(f'{verb} ROLE "{name}" LOGIN NOSUPERUSER CONNECTION LIMIT {int(conn_limit)}')
        conn.execute(f'CREATE DATABASE "{name}" OWNER "{name}"')
    return f"postgres://{name}@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    """The scratch database and its role, once the runs are over."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'DROP ROLE IF EXISTS "{name}"')


class ConnectionSampler:
    """Polls pg_stat_activity for one database from a thread; `max_seen` over its lifetime."""

    def __init__(self, database: str, interval: float = 0.05) -> None:
        self.database, self.interval = database, interval
        self.max_seen = 0
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            while not self._stop.is_set():
                (n,) = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                    [self.database]).fetchone()
                self.samples.append(n)
                self.max_seen = max(self.max_seen, n)
                self._stop.wait(self.interval)

    def __enter__(self) -> "ConnectionSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def now(self) -> int:
        return self.samples[-1] if self.samples else 0


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants (Linux /proc): robust to a busy machine."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# --- the load generator: asyncio, one keep-alive connection per client ---------------------------


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    retry_after: int = 0  # 503 answers that carried Retry-After
    connection_errors: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def errors(self) -> int:
        return sum(n for code, n in self.statuses.items() if code != 200) + self.connection_errors

    def pct(self, q: float) -> float:
        s = sorted(self.latencies)
        return 1000 * s[min(len(s) - 1, round(q * (len(s) - 1)))] if s else float("nan")

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


def _request_bytes(path: str, body: dict[str, Any], headers: dict[str, str]) -> bytes:
    data = json.dumps(body).encode()
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
             f"Content-Length: {len(data)}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    code = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            parts.append(await reader.readexactly(size + 2))
            if size == 0:
                break
        body = b"".join(p[:-2] for p in parts)
    else:
        body = await reader.read()
    return code, headers, body


async def _run_load(port: int, request: bytes, clients: int, seconds: float, max_requests: int) -> LoadResult:
    result = LoadResult()
    budget = [max_requests]
    deadline = time.monotonic() + seconds

    async def client() -> None:
        reader = writer = None
        while time.monotonic() < deadline and budget[0] > 0:
            budget[0] -= 1
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                t0 = time.perf_counter()
                writer.write(request)
                code, headers, _ = await _read_response(reader)
                elapsed = time.perf_counter() - t0
            except (OSError, asyncio.IncompleteReadError, ValueError):
                result.connection_errors += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.05)
                continue
            result.statuses[code] += 1
            if code == 200:
                result.latencies.append(elapsed)
            elif code == 503 and "retry-after" in headers:
                result.retry_after += 1
            if headers.get("connection", "").lower() == "close":
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    result.seconds = time.perf_counter() - t0
    return result


def run_load(port: int, path: str, body: dict[str, Any], headers: dict[str, str] | None = None, *,
             clients: int = 50, seconds: float = 10.0, max_requests: int = 100_000) -> LoadResult:
    """`clients` concurrent keep-alive connections POSTing `body` for `seconds` (or `max_requests` in all)."""
    request = _request_bytes(path, body, headers or {})
    try:
        import uvloop

        return uvloop.run(_run_load(port, request, clients, seconds, max_requests))
    except ImportError:
        return asyncio.run(_run_load(port, request, clients, seconds, max_requests))


# --- the side-by-side run --------------------------------------------------------------------------


def start_portal(env: dict[str, str], port: int, workers: int, portal_cmd: str = DEFAULT_PORTAL_CMD,
                 log: Path | None = None) -> subprocess.Popen:
    cmd = shlex.split(portal_cmd.format(python=PYTHON, port=port, workers=workers))
    out = open(log, "ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    _wait_or_stop(port, proc)
    return proc


def _wait_or_stop(port: int, proc: subprocess.Popen) -> None:
    try:
        wait_for(port, timeout=STARTUP_TIMEOUT, proc=proc)
    except BaseException:
        stop([proc])
        raise


def start_fastapi(env: dict[str, str], port: int, workers: int, artifacts: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen(
        [PYTHON, "-m", "uvicorn", "--factory", "serving_load_bench:make_fastapi_app", "--app-dir", str(ROOT / "bench"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--log-level", "warning",
         "--no-access-log", "--timeout-keep-alive", "120"],
        cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT), **artifacts},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_or_stop(port, proc)
    return proc


def portal_env(database_url: str, var: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Production settings on 127.0.0.1: DEBUG off, PostgreSQL, this engineer's Redis db and channel prefix."""
    return {**os.environ, "DATABASE_URL": database_url, "DEBUG": "0", "RFM_VAR_DIR": var,
            "SECRET_KEY": "bench-only-" + "x" * 50, "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "0", "LOG_LEVEL": "WARNING",
            "REDIS_URL": BENCH_REDIS_URL, "CHANNELS_PREFIX": "rfm-serve-bench",
            "DJANGO_SETTINGS_MODULE": "rfm_portal.settings", **(extra or {})}


def side_by_side(cases: list[tuple[str, str, dict[str, Any]]], *, database: str, env: dict[str, str],
                 api_key: str, artifacts: dict[str, str], clients: int = 50, seconds: float = 10.0,
                 single: int = 300, workers: int = 2, fastapi_workers: int | None = None,
                 portal_cmd: str = DEFAULT_PORTAL_CMD, log: Path | None = None) -> dict[str, Any]:
    """Portal vs FastAPI on each (label, path, body): one client, then `clients` clients. Prints a table."""
    fastapi_workers = workers if fastapi_workers is None else fastapi_workers
    figures: dict[str, Any] = {}
    auth = {"Authorization": f"Api-Key {api_key}"}
    print(f"\n{clients} clients for {seconds:.0f} s each; portal: {workers} worker(s), FastAPI: {fastapi_workers}")
    print(f"{'':34s} {'1 client':>17s}   {f'{clients} clients':>35s}")
    print(f"{'':34s} {'p50 ms':>8s} {'p99 ms':>8s}   {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'errors':>7s}"
          f" {'max PG conns':>13s} {'CPU ms/req':>9s} {'load1':>6s}", flush=True)
    for server in ("portal", "fastapi"):
        port = free_port()
        if server == "portal":
            proc = start_portal(env, port, workers, portal_cmd, log)
        else:
            proc = start_fastapi(env, port, fastapi_workers, artifacts)
        try:
            headers = auth if server == "portal" else {}
            for label, path, body in cases:
                # warm-up: every worker process loads the model (connections spread over the workers)
                warm = run_load(port, path, body, headers, clients=clients, seconds=3.0, max_requests=clients * 10)
                if warm.ok == 0:
                    raise RuntimeError(f"{server} {path}: warm-up failed: {dict(warm.statuses)}")
                one = run_load(port, path, body, headers, clients=1, seconds=60.0, max_requests=single)
                cpu0 = tree_cpu_seconds(proc.pid)
                with ConnectionSampler(database) as sampler:
                    many = run_load(port, path, body, headers, clients=clients, seconds=seconds)
                    cpu_ms = 1000 * (tree_cpu_seconds(proc.pid) - cpu0) / max(many.ok, 1)
                    time.sleep(0.3)
                figures[(server, label)] = {"one": one, "many": many, "max_pg": sampler.max_seen, "cpu_ms": cpu_ms}
                err = f"{many.errors}" + (f" {dict(many.statuses)}" if many.errors else "")
                if many.connection_errors:
                    err += f" conn:{many.connection_errors}"
                pg = sampler.max_seen if server == "portal" else "-"
                print(f"{server + ' ' + label:34s} {one.pct(0.5):8.2f} {one.pct(0.99):8.2f}   {many.rps:8.0f} "
                      f"{many.pct(0.5):8.1f} {many.pct(0.99):8.1f} {err:>7s} {pg!s:>13s} {cpu_ms:9.2f} "
                      f"{os.getloadavg()[0]:6.1f}", flush=True)
        finally:
            stop([proc])
    for label, _, _ in cases:
        p, fa = figures[("portal", label)]["many"], figures[("fastapi", label)]["many"]
        print(f"  → {label}: throughput {p.rps / fa.rps:.2f}× FastAPI's (target ≥ 0.5), "
              f"p99 {p.pct(0.99) / fa.pct(0.99):.2f}× (target ≤ 2), portal errors {p.errors} (target 0)")
    return figures


def exhaustion_check(*, database: str, env: dict[str, str], api_key: str, clients: int = 20,
                     seconds: float = 5.0, log: Path | None = None) -> LoadResult:
    """A 1-connection pool per worker with a 0.2 s timeout, 1 worker, `clients` clients: 200s and 503s only."""
    port = free_port()
    body = {"customer_ids": ["__bench_unknown__"]}  # a DB query on every call (not the payload fast path)
    proc = start_portal({**env, "DB_POOL_MIN_SIZE": "1", "DB_POOL_MAX_SIZE": "1", "DB_POOL_TIMEOUT": "0.2"},
                        port, 1, log=log)
    try:
        with ConnectionSampler(database) as sampler:
            result = run_load(port, "/predict_cltv", body, {"Authorization": f"Api-Key {api_key}"},
                              clients=clients, seconds=seconds, max_requests=20_000)
    finally:
        stop([proc])
    print(f"\npool exhaustion (1 worker, pool 1, timeout 0.2 s, {clients} clients, {seconds:.0f} s): "
          f"statuses {dict(result.statuses)}, 503 with Retry-After {result.retry_after}, "
          f"connection errors {result.connection_errors}, max PG connections {sampler.max_seen}")
    return result


# --- one command: set up data + models, run everything ---------------------------------------------


def prepare(database: str, conn_limit: int) -> tuple[str, str, str, dict[str, str], dict[str, Any], dict[str, Any]]:
    """Scratch database, sample import, churn + CLTV models, API key. Returns what the runs need."""
    url = recreate_database(database, conn_limit)
    var = tempfile.mkdtemp(prefix="serve_bench_")
    os.environ.update({"DATABASE_URL": url, "DEBUG": "1", "RFM_VAR_DIR": var, "REDIS_URL": "",
                       "DJANGO_SETTINGS_MODULE": "rfm_portal.settings"})
    import django

    django.setup()
    from django.core.management import call_command

    from churn import services as churn_services
    from cltv import services as cltv_services
    from rfm_portal.accounts import services as account_services
    from rfm_portal.customers.features import features_to_payload
    from rfm_portal.customers.services import import_transactions
    from rfm_portal.mlops.services import resolve_artifact

    call_command("migrate", verbosity=0)
    job = import_transactions(ROOT / "data" / "sample.csv")
    print(f"imported {job.rows_inserted:,} rows", flush=True)
    t0 = time.perf_counter()
    champion, _ = churn_services.train_churn_model()
    cltv_mv = cltv_services.train_cltv_model()
    print(f"trained churn v{champion.version} and CLTV v{cltv_mv.version} in {time.perf_counter() - t0:.0f} s",
          flush=True)
    raw_key = account_services.api_key_create(name="serve-bench").raw_key
    X = churn_services.build_features(churn_services.load_transactions(),
                                      churn_services._utc(champion.data_cutoff), churn_services.load_customers())
    churn_row = features_to_payload(X.drop(columns=["country"]).iloc[:1])[0]
    cltv_row = {"frequency": 3, "recency": 20.5, "T": 40.0, "monetary_value": 35.2}
    artifacts = {"BENCH_CHURN_ARTIFACT": str(resolve_artifact(champion.artifact_path)),
                 "BENCH_CLTV_ARTIFACT": str(resolve_artifact(cltv_mv.artifact_path))}
    from django.db import connections

    connections.close_all()
    connections["default"].close_pool()  # this process's pooled connections must not count as the server's
    return url, var, raw_key, artifacts, {"features": [churn_row]}, {"customers": [cltv_row], "unit": "weeks"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="rfm_serve_bench")
    parser.add_argument("--role-conn-limit", type=int, default=24,
                        help="the bench role's PostgreSQL connection cap (a leak cannot pass it)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--single", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fastapi-workers", type=int, default=None, help="default: as many as the portal")
    parser.add_argument("--portal-cmd", default=DEFAULT_PORTAL_CMD)
    parser.add_argument("--pool-max", default=None, help="DB_POOL_MAX_SIZE for the portal (default: settings')")
    parser.add_argument("--no-exhaustion", action="store_true")
    parser.add_argument("--keep-database", action="store_true", help="leave the scratch database and role")
    parser.add_argument("--port-range", default="18100-18149", help="ports for the servers, LO-HI")
    args = parser.parse_args()
    PORT_RANGE[:] = [int(p) for p in args.port_range.split("-")]
    print(f"load average before: {Path('/proc/loadavg').read_text().strip()}", flush=True)

    url, var, key, artifacts, churn_body, cltv_body = prepare(args.database, args.role_conn_limit)
    try:
        extra = {"DB_POOL_MAX_SIZE": args.pool_max} if args.pool_max else {}
        env = portal_env(url, var, extra)
        log = Path(var) / "portal.log"
        print(f"portal log: {log}")
        side_by_side([("/predict_churn", "/predict_churn", churn_body),
                      ("/predict_cltv", "/predict_cltv", cltv_body)],
                     database=args.database, env=env, api_key=key, artifacts=artifacts, clients=args.clients,
                     seconds=args.seconds, single=args.single, workers=args.workers,
                     fastapi_workers=args.fastapi_workers, portal_cmd=args.portal_cmd, log=log)
        if not args.no_exhaustion:
            exhaustion_check(database=args.database, env=env, api_key=key, log=log)
    finally:
        if not args.keep_database:
            drop_database(args.database)
    print(f"load average after: {Path('/proc/loadavg').read_text().strip()}", flush=True)


if __name__ == "__main__":
    main()
