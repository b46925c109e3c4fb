"""Benchmark of the CLTV service and POST /predict_cltv on PostgreSQL.

1. Create a scratch database (default ``rfm_bench_cltv``; dropped and recreated), ``migrate``
   it, generate N customers with ``rfm_portal.customers.generator`` and import them through the
   product's import (``services.import_transactions``, COPY on PostgreSQL).
2. Time ``cltv.services.train_cltv_model`` end to end (DB aggregate per customer-day, three-model
   holdout comparison, Gamma-Gamma, validation outputs, scoring with P10/P50/P90 simulation and
   cohorts, artifact, bulk insert of the score rows, promotion), reporting its progress steps.
3. Time ``POST /predict_cltv`` through Django's test client with an API key (the whole stack:
   URL routing, API-key lookup, DRF parsing/validation, active-model load, scoring, JSON):
   a single payload row (p50/p95 over ``--single`` calls), a single stored customer id, and
   batches of 1,000 and 10,000 payload rows (with P10/P50/P90 simulation).

4. Under load (bench/serving_load_bench.py): the portal with production settings (DEBUG off, Redis,
   ``manage.py serve --workers N``) beside a FastAPI scorer of the same artifact with as many workers:
   a single payload row, one client then ``--clients`` concurrent keep-alive clients for ``--seconds``:
   req/s, p50/p99, errors, and the most PostgreSQL connections the portal held.

    .venv/bin/python bench/cltv_service_bench.py --customers 20000 [--clients 50] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serving_load_bench import portal_env, side_by_side  # noqa: E402 - bench/ is on sys.path as the script's dir


def recreate_database(base_url: str, name: str) -> str:
    import psycopg

    admin_url = base_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return base_url.rsplit("/", 1)[0] + f"/{name}"


def percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--database", default="rfm_bench_cltv")
    parser.add_argument("--base-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--single", type=int, default=200, help="single-row requests to time")
    parser.add_argument("--batch-repeats", type=int, default=5)
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients of the load run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the load run")
    parser.add_argument("--workers", type=int, default=2, help="portal (and FastAPI) worker processes under load")
    args = parser.parse_args()

    url = recreate_database(args.base_url, args.database)
    var = tempfile.mkdtemp(prefix="cltv-bench-")
    os.environ.update({"DATABASE_URL": url, "DEBUG": "1", "RFM_VAR_DIR": var, "REDIS_URL": ""})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rfm_portal.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    settings.ALLOWED_HOSTS = ["*"]

    from cltv import services as cltv_services
    from rfm_portal.accounts import services as account_services
    from rfm_portal.customers import generator
    from rfm_portal.customers import services as customer_services
    from rfm_portal.customers.models import Transaction

    call_command("migrate", verbosity=0)
    start, end = date(2022, 1, 1), date(2024, 6, 30)
    t0 = time.perf_counter()
    data = generator.generate(args.customers, args.seed, start=start, end=end)
    paths = generator.write_outputs(data, var)
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    job = customer_services.import_transactions(paths["transactions"])
    t_imp = time.perf_counter() - t0
    print(
        f"data: {args.customers:,} customers, {Transaction.objects.count():,} transaction lines "
        f"(generate {t_gen:.1f} s, import {t_imp:.1f} s, {job.status})",
        flush=True,
    )

    class Steps:
        def __init__(self) -> None:
            self.last = time.perf_counter()

        def report(self, pct: int, message: str) -> None:
            now = time.perf_counter()
            print(f"  [{pct:3d}%] +{now - self.last:6.2f} s  {message}", flush=True)
            self.last = now

    t0 = time.perf_counter()
    mv = cltv_services.train_cltv_model(observation_end=end + timedelta(days=1), unit="W", reporter=Steps())
    t_fit = time.perf_counter() - t0
    print(
        f"train_cltv_model: {t_fit:.2f} s for {mv.metrics['n_customers']:,} customers "
        f"(chosen {mv.metrics['chosen_label']}, {mv.metrics['n_customers'] / t_fit:,.0f} customers/s)",
        flush=True,
    )

    from rfm_portal.accounts.models import User

    admin = User.objects.create_user("bench-analyst", "b@example.com", "x" * 20, role=User.Role.ANALYST)
    page_client = Client()
    page_client.force_login(admin)
    for label, query in (
        ("trained settings", {}),
        ("other settings", {"horizon_days": 730, "annual_discount_rate": 0.08, "margin": 0.3}),
    ):
        page_client.get("/cltv/", query)
        times = []
        for _ in range(3):
            s = time.perf_counter()
            assert page_client.get("/cltv/", query).status_code == 200
            times.append(time.perf_counter() - s)
        print(f"CLTV page, {label} (closed-form CLV for all customers + figures): median {np.median(times):.2f} s")

    key = account_services.api_key_create(name="bench").raw_key
    client = Client(headers={"authorization": f"Api-Key {key}"})

    def post(body: dict) -> tuple[float, int]:
        payload = json.dumps(body)
        s = time.perf_counter()
        r = client.post("/predict_cltv", payload, content_type="application/json")
        return time.perf_counter() - s, r.status_code

    rng = np.random.default_rng(0)

    def rows(n: int) -> list[dict]:
        x = rng.integers(0, 15, n)
        T = rng.uniform(1, 120, n)
        rec = np.where(x > 0, T * rng.uniform(0, 1, n), 0.0)
        m = np.where(x > 0, rng.gamma(3, 15, n), 0.0)
        return [
            {"frequency": int(a), "recency": float(b), "T": float(c), "monetary_value": float(d)}
            for a, b, c, d in zip(x, rec, T, m, strict=True)
        ]

    post({"customers": rows(1), "unit": "weeks"})  # warm-up: loads the active model
    single = [post({"customers": rows(1), "unit": "weeks"}) for _ in range(args.single)]
    assert all(code == 200 for _, code in single)
    times = [t for t, _ in single]
    print(
        f"single payload row: p50 {percentile_ms(times, 50):.1f} ms, p95 {percentile_ms(times, 95):.1f} ms "
        f"({len(times)} requests)",
        flush=True,
    )
    ext = list(mv.cltv_scores.values_list("customer__external_id", flat=True)[: args.single])
    by_id = [post({"customer_id": e}) for e in ext]
    times = [t for t, _ in by_id]
    print(f"single stored customer id: p50 {percentile_ms(times, 50):.1f} ms, p95 {percentile_ms(times, 95):.1f} ms")
    for n in (1_000, 10_000):
        body = {"customers": rows(n), "unit": "weeks"}
        results = [post(body) for _ in range(args.batch_repeats)]
        assert all(code == 200 for _, code in results)
        best = min(t for t, _ in results)
        med = float(np.median([t for t, _ in results]))
        print(
            f"batch of {n:,} payload rows: median {med * 1000:.0f} ms, best {best * 1000:.0f} ms, {n / med:,.0f} rows/s"
        )
    ids = list(mv.cltv_scores.values_list("customer__external_id", flat=True)[:10_000])
    results = [post({"customer_ids": ids}) for _ in range(args.batch_repeats)]
    med = float(np.median([t for t, _ in results]))
    print(f"batch of {len(ids):,} stored customer ids: median {med * 1000:.0f} ms, {len(ids) / med:,.0f} rows/s")

    from django.db import connections

    from rfm_portal.mlops.services import resolve_artifact

    connections.close_all()
    connections["default"].close_pool()  # this process's connections must not count as the server's
    side_by_side([("/predict_cltv", "/predict_cltv", {"customers": rows(1), "unit": "weeks"})],
                 database=args.database, env=portal_env(url, var), api_key=key,
                 artifacts={"BENCH_CLTV_ARTIFACT": str(resolve_artifact(mv.artifact_path))},
                 clients=args.clients, seconds=args.seconds, single=args.single, workers=args.workers)


if __name__ == "__main__":
    main()
