"""``explain=true`` throughput: SHAP contributions + purchase counterfactuals, in-process and through the API.

    .venv/bin/python bench/churn_explain_bench.py [--customers 4000] [--repeats 5] [--port 19710] [--no-api]
                                                  [--db-name rfm_explain_bench]

1. In-process (no Django request): a seeded synthetic population (``tests/churn/conftest.py``),
   the churn backtest (``churn.pipeline.train_churn``: logistic baseline and LightGBM challenger)
   plus a HistGradientBoosting bundle — every model family the churn pipeline can promote. For
   each, ``churn.api.predict(bundle, X, explain=True)`` at batch sizes 1, 100 and ``MAX_EXPLAIN``
   (median of ``--repeats`` calls; rows cycle over every customer, above and below the threshold):
   wall rows/s and rows per CPU-second of this process; at ``MAX_EXPLAIN`` also the split between
   SHAP (``explain_rows``) and the counterfactuals (``actions_from_features``).
2. Through the API: a scratch database of its own (``rfm_explain_bench``, a login role capped at
   12 connections, dropped at the end), the committed sample imported and the churn models trained
   through the services, ``manage.py serve`` (embedded, DEBUG=1) on 127.0.0.1:``--port``; POST
   /predict_churn with ``explain=true`` over one keep-alive connection: feature payloads of 1, 100
   and ``MAX_EXPLAIN`` rows, and ``MAX_EXPLAIN`` stored customer ids; rows/s by wall clock and per
   server CPU-second (``/proc``, robust to a busy machine). Then the challenger is promoted and the
   payload batch of ``MAX_EXPLAIN`` is measured again for it.

The 1-minute load average is printed next to every section (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
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
DB_NAME = "rfm_explain_bench"


def loadavg() -> str:
    return "load average (1 min) " + Path("/proc/loadavg").read_text().split()[0]


def time_calls(fn: Any, repeats: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds (this process) of ``repeats`` calls."""
    walls, cpus = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def in_process(customers: int, repeats: int) -> None:
    import pandas as pd

    from churn import api
    from churn.counterfactual import actions_from_features
    from churn.explain import explain_rows
    from churn.pipeline import ChurnConfig, fit_bundle, make_training_set, train_churn
    from rfm_portal.customers.features import build_features
    from tests.churn.conftest import simulate_dropout_population

    data = simulate_dropout_population(n_customers=customers)
    result = train_churn(data.transactions, data.customers, data.cutoff)
    window = make_training_set(data.transactions, data.customers, data.cutoff - pd.Timedelta(days=90), 90)
    bundles = dict(result.holdout_models)
    bundles["hist_gb"] = fit_bundle("hist_gb", window, ChurnConfig(challenger="hist_gb"))
    X = build_features(data.transactions, data.cutoff, data.customers)
    print(f"\nin-process: {len(X):,} synthetic customers; champion of the backtest: {result.champion}; {loadavg()}")
    print(f"{'model':10s} {'rows':>6s} {'above thr':>9s} {'median s':>9s} {'rows/s':>9s} {'rows/CPU-s':>11s}")
    for kind, bundle in bundles.items():
        api.predict(bundle, X.iloc[:50], True, 5)  # warm-up: explainer built once per process
        for n in (1, 100, api.MAX_EXPLAIN):
            batch = X.iloc[[i % len(X) for i in range(n)]]
            above = int((bundle.predict_proba(batch) >= bundle.threshold).sum())
            wall, cpu = time_calls(lambda b=bundle, x=batch: api.predict(b, x, True, 5),
                                   repeats if n > 1 else 20 * repeats)
            print(f"{kind:10s} {n:6,d} {above:9,d} {wall:9.4f} {n / wall:9,.0f} {n / max(cpu, 1e-9):11,.0f}")
        batch = X.iloc[[i % len(X) for i in range(api.MAX_EXPLAIN)]]
        above = batch.loc[bundle.predict_proba(batch) >= bundle.threshold]
        shap_s, _ = time_calls(lambda b=bundle, x=batch: explain_rows(b, x, 5), repeats)
        cf_s, _ = time_calls(lambda b=bundle, x=above: actions_from_features(b, x), repeats)
        print(f"{'':10s} of which SHAP (explain_rows) {shap_s:.4f} s, counterfactuals for the {len(above):,} "
              f"above the threshold (actions_from_features) {cf_s:.4f} s")
    print(loadavg())


def through_api(repeats: int, port: int, env: dict[str, str]) -> None:
    from churn_service_bench import Client
    from django.core.management import call_command
    from serving_load_bench import stop, tree_cpu_seconds, wait_for

    from churn import api, services
    from rfm_portal.accounts import services as account_services
    from rfm_portal.customers.features import features_to_payload
    from rfm_portal.customers.services import import_transactions
    from rfm_portal.mlops.services import promote

    proc = None
    try:
        call_command("migrate", verbosity=0)
        import_transactions(ROOT / "data" / "sample.csv")
        champion, challenger = services.train_churn_model()
        raw_key = account_services.api_key_create(name="bench").raw_key
        X = services.build_features(services.load_transactions(), services._utc(champion.data_cutoff),
                                    services.load_customers())
        records = features_to_payload(X.drop(columns=["country"]))
        ids = list(services.Customer.objects.filter(pk__in=list(X.index)).values_list("external_id", flat=True))
        from django.db import connections

        connections.close_all()

        def rows(n: int) -> list[dict[str, Any]]:
            return [records[i % len(records)] | {"customer_id": f"r{i}"} for i in range(n)]

        proc = subprocess.Popen([PYTHON, "manage.py", "serve", "--port", str(port)], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(port, proc=proc)
        client = Client(port, {"Authorization": f"Api-Key {raw_key}"})

        def measure(label: str, body: dict[str, Any], n: int, calls: int) -> None:
            walls = []
            cpu0 = tree_cpu_seconds(proc.pid)
            for _ in range(calls):
                elapsed, answer = client.post(body)
                assert answer["count"] == n and all("explanation" in r for r in answer["results"]), answer.get("count")
                walls.append(elapsed)
            cpu = (tree_cpu_seconds(proc.pid) - cpu0) / calls
            wall = statistics.median(walls)
            print(f"{label:34s} {n:6,d} {wall:9.4f} {n / wall:9,.0f} {n / max(cpu, 1e-9):13,.0f}")

        for _ in range(3):  # warm-up: model load, explainer, first-request imports
            client.post({"features": rows(50), "explain": True})
        print(f"\nthrough the API (POST /predict_churn, explain=true, one keep-alive connection); "
              f"active model: {champion.metrics['model_kind']}; {loadavg()}")
        print(f"{'':34s} {'rows':>6s} {'median s':>9s} {'rows/s':>9s} {'rows/server-CPU-s':>13s}")
        for n in (1, 100, api.MAX_EXPLAIN):
            measure(f"payload, {champion.metrics['model_kind']}", {"features": rows(n), "explain": True}, n,
                    repeats if n > 1 else 20 * repeats)
        measure(f"customer ids, {champion.metrics['model_kind']}",
                {"customer_ids": ids[:api.MAX_EXPLAIN], "explain": True}, min(len(ids), api.MAX_EXPLAIN), repeats)
        promote(challenger)
        connections.close_all()
        kind = challenger.metrics["model_kind"]
        for _ in range(3):
            client.post({"features": rows(50), "explain": True})
        for n in (1, 100, api.MAX_EXPLAIN):
            measure(f"payload, {kind} (promoted)", {"features": rows(n), "explain": True}, n,
                    repeats if n > 1 else 20 * repeats)
        print(loadavg())
    finally:
        if proc is not None:
            stop([proc])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=4000, help="synthetic customers (in-process part)")
    parser.add_argument("--repeats", type=int, default=5, help="calls per batch size (single rows: 20×)")
    parser.add_argument("--port", type=int, default=19710, help="the portal's port (127.0.0.1)")
    parser.add_argument("--db-name", default=DB_NAME, help="scratch database and role (dropped at the end)")
    parser.add_argument("--no-api", action="store_true", help="in-process part only")
    args = parser.parse_args()
    from serving_load_bench import recreate_database

    # Django is set up once, on the scratch database (the in-process part needs settings, not the database)
    url = "" if args.no_api else recreate_database(args.db_name, 12)
    env = {**os.environ, "DEBUG": "1", "RFM_VAR_DIR": tempfile.mkdtemp(prefix="churn_explain_bench_"),
           "REDIS_URL": "", "DJANGO_SETTINGS_MODULE": "rfm_portal.settings", "ACTIVE_MODEL_RECHECK_SECONDS": "0",
           **({"DATABASE_URL": url} if url else {})}
    os.environ.update(env)
    import django

    django.setup()
    try:
        print(loadavg())
        in_process(args.customers, args.repeats)
        if not args.no_api:
            through_api(args.repeats, args.port, env)
    finally:
        if url:
            import psycopg
            from django.db import connections
            from serving_load_bench import PG_ADMIN_URL

            connections.close_all()
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)')
                conn.execute(f'DROP ROLE IF EXISTS "{args.db_name}"')


if __name__ == "__main__":
    main()
