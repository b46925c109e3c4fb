"""Benchmark of ``POST /predict_churn`` through a live portal, against a minimal FastAPI scorer.

fastapi is a bench tool (requirements-dev.txt); uvicorn is the portal's own server. Everything runs
on 127.0.0.1.

1. Recreate a scratch PostgreSQL database (default ``rfm_bench_churn``), ``migrate`` it, import
   the committed sample (``data/sample.csv``, 3,000 customers) through the product's import and
   train the churn models with ``churn.services.train_churn_model``; create an API key.
2. Start ``manage.py serve`` (DEBUG=1, daphne/ASGI, the embedded Celery worker) on a spare
   loopback port, and a minimal FastAPI + uvicorn scorer on another one serving the *same* model
   bundle (the active artifact) with the same payload validation (``features_from_payload``)
   and ``predict_proba`` — no auth, no database, no DRF, no model-version lookup.
3. Time, over one keep-alive HTTP connection each (bounded loops):
   single payload row p50/p95 (``--single`` calls) on both; a single stored customer id (portal
   only: it reads the transactions and builds features); batches of 1,000 and 10,000 payload rows
   on both and 1,000 customer ids on the portal (median of ``--repeats``), as rows per second.

4. Under load (bench/serving_load_bench.py): the portal with production settings (DEBUG off, Redis,
   ``manage.py serve --workers N``) beside the FastAPI scorer with as many workers: single-row
   payloads, one client then ``--clients`` concurrent keep-alive clients for ``--seconds``: req/s,
   p50/p99, errors, and the most PostgreSQL connections the portal held.

    .venv/bin/python bench/churn_service_bench.py [--single 300] [--repeats 5] [--clients 50] [--workers 2]
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYTHON = str(ROOT / ".venv" / "bin" / "python")

from serving_load_bench import portal_env, side_by_side  # noqa: E402 - bench/ is on sys.path as the script's dir

# --- the FastAPI scorer (run by uvicorn in its own process) --------------------------------------


def make_fastapi_app() -> Any:
    """uvicorn --factory entry point: the artifact path comes from CHURN_BENCH_ARTIFACT."""
    import joblib
    from fastapi import FastAPI, HTTPException, Request

    from rfm_portal.customers.features import FeatureError, features_from_payload

    bundle = joblib.load(os.environ["CHURN_BENCH_ARTIFACT"])
    app = FastAPI()

    @app.post("/predict_churn")
    async def predict(request: Request) -> dict[str, Any]:
        body = await request.json()
        try:
            X = features_from_payload(body["features"])
        except (FeatureError, KeyError) as error:
            raise HTTPException(status_code=400, detail=str(error)) from None
        p = bundle.predict_proba(X)
        bands = bundle.bands.assign(p)
        return {"count": len(X), "results": [
            {"customer_id": str(c), "probability": float(pi), "risk_band": str(b)}
            for c, pi, b in zip(X.index, p, bands, strict=True)]}

    return app


# --- helpers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


def recreate_database(base_url: str, name: str) -> str:
    import psycopg

    admin_url = base_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return base_url.rsplit("/", 1)[0] + f"/{name}"


class Client:
    """One keep-alive connection to 127.0.0.1:port."""

    def __init__(self, port: int, headers: dict[str, str] | None = None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        self.headers = {"Content-Type": "application/json", **(headers or {})}

    def post(self, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        data = json.dumps(body).encode()
        for attempt in (1, 2):  # a server may close an idle keep-alive connection: reconnect once
            t0 = time.perf_counter()
            try:
                self.conn.request("POST", "/predict_churn", body=data, headers=self.headers)
                resp = self.conn.getresponse()
                payload = resp.read()
                break
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                self.conn.close()
                if attempt == 2:
                    raise
        elapsed = time.perf_counter() - t0
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {payload[:300]!r}")
        return elapsed, json.loads(payload)


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return 1000 * s[min(len(s) - 1, round(q * (len(s) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--db-name", default="rfm_bench_churn")
    parser.add_argument("--single", type=int, default=300, help="single-row calls per server")
    parser.add_argument("--repeats", type=int, default=5, help="calls per batch size")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients of the load run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the load run")
    parser.add_argument("--workers", type=int, default=2, help="portal (and FastAPI) worker processes under load")
    args = parser.parse_args()

    var = tempfile.mkdtemp(prefix="churn_bench_")
    url = recreate_database(args.database_url, args.db_name)
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "1", "RFM_VAR_DIR": var, "REDIS_URL": "",
           "DJANGO_SETTINGS_MODULE": "rfm_portal.settings"}
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    from churn import services
    from rfm_portal.accounts import services as account_services
    from rfm_portal.customers.features import features_to_payload
    from rfm_portal.customers.services import import_transactions
    from rfm_portal.mlops.services import resolve_artifact

    call_command("migrate", verbosity=0)
    job = import_transactions(ROOT / "data" / "sample.csv")
    print(f"imported: {job.rows_inserted:,} rows")
    t0 = time.perf_counter()
    champion, challenger = services.train_churn_model()
    print(f"train_churn_model: {time.perf_counter() - t0:.1f} s — v{champion.version} {champion.metrics['model_kind']} "
          f"(ROC-AUC {champion.metrics['roc_auc']:.3f}) vs {challenger.metrics['model_kind']} "
          f"({challenger.metrics['roc_auc']:.3f}); {champion.metrics['scored_customers']:,} customers")
    raw_key = account_services.api_key_create(name="bench").raw_key
    X = services.build_features(services.load_transactions(), services._utc(champion.data_cutoff),
                                services.load_customers())
    records = features_to_payload(X.drop(columns=["country"]))
    ids = list(services.Customer.objects.filter(pk__in=list(X.index)).values_list("external_id", flat=True))

    def rows(n: int) -> list[dict[str, Any]]:
        return [records[i % len(records)] | {"customer_id": f"r{i}"} for i in range(n)]

    dj_port, fa_port = free_port(), free_port()
    procs = [
        subprocess.Popen([PYTHON, "manage.py", "serve", "--port", str(dj_port)], cwd=ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([PYTHON, "-m", "uvicorn", "--factory", "churn_service_bench:make_fastapi_app",
                          "--app-dir", str(ROOT / "bench"), "--host", "127.0.0.1", "--port", str(fa_port),
                          "--log-level", "warning", "--timeout-keep-alive", "120"], cwd=ROOT,
                         env={**env, "PYTHONPATH": str(ROOT),
                              "CHURN_BENCH_ARTIFACT": str(resolve_artifact(champion.artifact_path))},
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        wait_for(dj_port)
        wait_for(fa_port)
        portal = Client(dj_port, {"Authorization": f"Api-Key {raw_key}"})
        fast = Client(fa_port)
        for client in (portal, fast):  # warm-up: model load, first-request imports
            for _ in range(5):
                client.post({"features": rows(1)})
        _, check_p = portal.post({"features": rows(50)})
        _, check_f = fast.post({"features": rows(50)})
        assert [r["probability"] for r in check_p["results"]] == [r["probability"] for r in check_f["results"]]
        print(f"same model on both: {check_p['model_version']}")

        print(f"\nsingle row ({args.single} calls each, one keep-alive connection)")
        print(f"{'':38s} {'p50 ms':>8s} {'p95 ms':>8s}")
        for label, client, body in (
            ("portal POST /predict_churn (payload)", portal, lambda i: {"features": rows(1)}),
            ("FastAPI scorer (payload)", fast, lambda i: {"features": rows(1)}),
            ("portal POST /predict_churn (id)", portal, lambda i: {"customer_id": ids[i % len(ids)]}),
            ("portal, id + explain=true", portal, lambda i: {"customer_id": ids[i % len(ids)], "explain": True}),
        ):
            times = [client.post(body(i))[0] for i in range(args.single)]
            print(f"{label:38s} {pct(times, 0.5):8.1f} {pct(times, 0.95):8.1f}")

        print(f"\nbatches (median of {args.repeats} calls)")
        print(f"{'':38s} {'rows':>7s} {'median s':>9s} {'rows/s':>9s}")
        for label, client, n, body in (
            ("portal (payload)", portal, 1_000, {"features": rows(1_000)}),
            ("FastAPI scorer (payload)", fast, 1_000, {"features": rows(1_000)}),
            ("portal (payload)", portal, 10_000, {"features": rows(10_000)}),
            ("FastAPI scorer (payload)", fast, 10_000, {"features": rows(10_000)}),
            ("portal (customer ids)", portal, 1_000, {"customer_ids": ids[:1_000]}),
        ):
            times = []
            for _ in range(args.repeats):
                elapsed, answer = client.post(body)
                assert answer["count"] == n, answer.get("count")
                times.append(elapsed)
            med = statistics.median(times)
            print(f"{label:38s} {n:7,d} {med:9.3f} {n / med:9,.0f}")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

    from django.db import connections

    connections.close_all()
    connections["default"].close_pool()  # this process's connections must not count as the server's
    side_by_side([("/predict_churn", "/predict_churn", {"features": rows(1)})], database=args.db_name,
                 env=portal_env(url, var), api_key=raw_key,
                 artifacts={"BENCH_CHURN_ARTIFACT": str(resolve_artifact(champion.artifact_path))},
                 clients=args.clients, seconds=args.seconds, single=args.single, workers=args.workers)


if __name__ == "__main__":
    main()
