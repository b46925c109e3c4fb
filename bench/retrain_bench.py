"""Full retrain benchmark: segmentation, CLTV, churn, uplift and embeddings on N generated customers.

    .venv/bin/python bench/retrain_bench.py [--customers 1000000] [--seed 2024] [--reuse] [--keep]
                                            [--stages segmentation,cltv,churn,uplift,embeddings]

1. Scratch database ``rfm_retrain_bench_<N>`` (``--reuse``: keep an existing, already loaded one):
   ``manage.py migrate``, then the generator's data (``generate(N, seed)``, continuous acquisition,
   ≈ 10 lines per customer) is written **directly with COPY** into the customer, product, transaction
   and campaign tables — not through the product's import (another piece of work makes that fast;
   this bench measures training). Row hashes are the line numbers; foreign-key triggers are off
   for that session (``session_replication_role = replica``: the generated rows are consistent by
   construction) and the transaction indexes are rebuilt after the load, then ANALYZE.
   The truth file is written for the embeddings' taste check only (evaluation, never a model input).
2. Each stage runs the product's training service in a child process of its own
   (``--run-stage``), exactly what ``manage.py train_<stage>`` calls, with a reporter that prints
   each progress message with its elapsed time (the per-step breakdown). The parent takes every
   child's wall time, CPU time and peak RSS (``os.wait4``) and the 1-minute load average.
3. Prints one table and the total; drops the scratch database and its artifacts unless ``--keep``.

``--workers N`` starts N Celery worker processes (prefork, concurrency 1, on the exported REDIS_URL's db)
on the scratch database for the training stages, as a deployment runs them: each stage's scoring chunks
are then shared by the stage's own process and the workers (``mlops.scoring``). Their CPU is reported
per stage beside the stage's own (from /proc, the workers' process groups).

Ports: none (no servers). Redis: the exported REDIS_URL (progress is not sent to Channels here).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYTHON = str(ROOT / ".venv" / "bin" / "python")
STAGES = ("segmentation", "cltv", "churn", "uplift", "embeddings")
COPY_ROWS = 500_000  # rows per COPY chunk while loading


def _loadavg() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def _base_url() -> str:
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    return url.rsplit("/", 1)[0]


def _env(db: str, var_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(DATABASE_URL=f"{_base_url()}/{db}", RFM_VAR_DIR=str(var_dir),
               DJANGO_SETTINGS_MODULE="rfm_portal.settings", PYTHONUNBUFFERED="1")
    if not env.get("SECRET_KEY"):
        env["DEBUG"] = "1"  # the settings refuse production mode without a secret; training is the same
    return env


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{_base_url()}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def _exists(db: str) -> bool:
    import psycopg

    with psycopg.connect(f"{_base_url()}/postgres", autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone() is not None


def _group_cpu(pgids: list[int]) -> float:
    """CPU seconds (user + system) of every live process in these process groups (Celery workers and pools)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in pgids:  # fields after "(comm)": state, ppid, pgrp, …, utime (11), stime (12)
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def _child(args: list[str], env: dict[str, str], label: str, timeout: float,
           workers: list[int] | None = None) -> dict[str, float]:
    """Run a child, echo its lines with elapsed seconds, return wall/cpu/peak RSS of that child alone."""
    load = _loadavg()
    workers_cpu = _group_cpu(workers or [])
    began = time.perf_counter()
    proc = subprocess.Popen([PYTHON, *args], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    assert proc.stdout is not None
    for line in proc.stdout:
        print(f"  [{label} {time.perf_counter() - began:7.1f} s] {line.rstrip()}", flush=True)
        if time.perf_counter() - began > timeout:
            proc.kill()
            raise SystemExit(f"{label}: over the {timeout:.0f} s limit, killed")
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(f"{label} failed with exit code {proc.returncode}")
    result = {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024,
              "load_before": float(load), "load_after": float(_loadavg()),
              "workers_cpu": _group_cpu(workers or []) - workers_cpu}
    print(f"== {label}: wall {wall:.1f} s, CPU {result['cpu']:.1f} s (+ workers {result['workers_cpu']:.1f} s), "
          f"peak RSS {result['rss_mb']:.0f} MB, load {load} → {result['load_after']:.2f}", flush=True)
    return result


# --- child: load generated data with COPY ---------------------------------------------------------


def _copy_frame(cursor, table: str, columns: list[str], frame) -> None:
    import io

    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for start in range(0, len(frame), COPY_ROWS):
            buffer = io.StringIO()
            frame.iloc[start:start + COPY_ROWS].to_csv(buffer, sep="\t", header=False, index=False, na_rep="\\N",
                                                         float_format="%.4f",
                                                         date_format="%Y-%m-%d %H:%M:%S+00")
            copy.write(buffer.getvalue())


def load_data(customers: int, seed: int, truth_path: Path) -> None:
    import numpy as np
    import pandas as pd
    from django.db import connection

    from rfm_portal.customers import generator

    began = time.perf_counter()
    data = generator.generate(customers, seed, params=generator.GeneratorParams(acquisition_share=1.0))
    tx = data.transactions
    print(f"generated {customers:,} customers, {len(tx):,} lines, {len(data.campaigns):,} campaign rows "
          f"in {time.perf_counter() - began:.1f} s", flush=True)
    data.truth[["customer_id", "taste_cluster"]].to_csv(truth_path, index=False)

    products = data.products.reset_index(drop=True)
    products.insert(0, "id", np.arange(1, len(products) + 1))
    product_pk = pd.Series(products["id"].to_numpy(), index=products["sku"])
    external, cust_codes = np.unique(tx["customer_id"].to_numpy(dtype=str), return_inverse=True)
    cust_pk = cust_codes.astype(np.int64) + 1
    first_seen = pd.Series(tx["invoiced_at"].to_numpy()).groupby(cust_codes).min()
    country = pd.Series(tx["country"].to_numpy()).groupby(cust_codes).first()
    now = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d %H:%M:%S+00")
    customer_rows = pd.DataFrame({"id": np.arange(1, len(external) + 1), "external_id": external,
                                  "country": country.to_numpy(), "first_seen": first_seen.to_numpy(),
                                  "attributes": "{}", "created_at": now})
    quantity = tx["quantity"].to_numpy()
    price_e4 = np.rint(tx["unit_price"].to_numpy() * 1e4).astype(np.int64)
    transaction_rows = pd.DataFrame({
        "id": np.arange(1, len(tx) + 1), "invoice": tx["invoice"], "customer_id": cust_pk,
        "product_id": product_pk.loc[tx["sku"].to_numpy()].to_numpy(), "invoiced_at": tx["invoiced_at"],
        "quantity": quantity, "unit_price": price_e4 / 1e4, "amount": quantity * price_e4 / 1e4,  # "%.4f": exact
        "is_return": np.where(tx["invoice"].str.startswith("C").to_numpy() | (quantity < 0), "t", "f"),
        "row_hash": np.arange(1, len(tx) + 1).astype(str),
    })
    del data.transactions, tx
    pk_of = pd.Series(np.arange(1, len(external) + 1), index=external)
    camp = data.campaigns
    campaign_rows = pd.DataFrame({
        "customer_id": pk_of.loc[camp["customer_id"].to_numpy(dtype=str)].to_numpy(), "campaign": camp["campaign"],
        "treated": np.where(camp["treated"].to_numpy() == 1, "t", "f"),
        "converted": np.where(camp["converted"].to_numpy() == 1, "t", "f"),
        "revenue": camp["revenue"].to_numpy(dtype=float), "sent_at": camp["sent_at"],
    })
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'customers_transaction' "
                       "AND indexname NOT LIKE '%%pkey'")
        indexes = cursor.fetchall()
        cursor.execute("ALTER TABLE customers_transaction DROP CONSTRAINT transaction_row_hash_unique")
        for name, _definition in indexes:
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')
        t = time.perf_counter()
        _copy_frame(cursor, "customers_product", ["id", "sku", "description", "category"],
                    products[["id", "sku", "description", "category"]])
        _copy_frame(cursor, "customers_customer", list(customer_rows.columns), customer_rows)
        _copy_frame(cursor, "customers_transaction", list(transaction_rows.columns), transaction_rows)
        _copy_frame(cursor, "customers_campaignhistory", list(campaign_rows.columns), campaign_rows)
        print(f"COPY of every table {time.perf_counter() - t:.1f} s", flush=True)
        t = time.perf_counter()
        for name, definition in indexes:
            if name != "transaction_row_hash_unique":
                cursor.execute(definition)
        cursor.execute("ALTER TABLE customers_transaction ADD CONSTRAINT transaction_row_hash_unique "
                       "UNIQUE (row_hash)")
        for table in ("customers_product", "customers_customer", "customers_transaction",
                      "customers_campaignhistory"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                           f"(SELECT coalesce(max(id), 1) FROM {table}))")
        cursor.execute("SET session_replication_role = DEFAULT")
        cursor.execute("ANALYZE")
        print(f"indexes + ANALYZE {time.perf_counter() - t:.1f} s", flush=True)


# --- child: one training stage ---------------------------------------------------------------------


class _Print:
    """The services' reporter protocol, printing each step (the parent stamps elapsed time)."""

    def report(self, progress: int, message: str = "") -> None:
        print(f"{progress:3d}% {message}", flush=True)

    def step(self, done: int, total: int, message: str = "") -> None:
        print(f"{done}/{total} {message}", flush=True)


def run_stage(stage: str, truth_path: Path) -> None:
    reporter = _Print()
    if stage == "segmentation":
        from segmentation.services import train_segmentation

        mv = train_segmentation(reporter=reporter)
        print(f"k = {mv.metrics.get('k')}, customers {mv.metrics.get('customers'):,}")
    elif stage == "cltv":
        from cltv.services import train_cltv_model

        mv = train_cltv_model(reporter=reporter)
        print(f"champion {mv.metrics.get('champion')}")
    elif stage == "churn":
        from churn.services import train_churn_model

        champion, _challenger = train_churn_model(reporter=reporter)
        print(f"champion {champion.metrics.get('model')}: backtest {champion.metrics.get('backtest', {})}")
    elif stage == "uplift":
        from uplift.services import train_uplift_model

        versions = train_uplift_model(reporter=reporter)
        m = versions[0].metrics
        print(f"champion {m.get('learner')}; qini {m.get('qini')}; rows {m.get('train_rows')}")
    elif stage == "embeddings":
        from embeddings.services import train_embeddings_model

        mv = train_embeddings_model(reporter=reporter, truth_path=str(truth_path))
        taste = mv.metrics.get("taste_check", {})
        print(f"purity@10 {taste.get('purity_at_10')} (rfm {taste.get('purity_at_10_rfm')}), seed-holdout recall "
              f"{taste.get('holdout_recall_mean')} (rfm {taste.get('holdout_recall_mean_rfm')})")
    else:
        raise SystemExit(f"unknown stage {stage}")


# --- parent ----------------------------------------------------------------------------------------


def _start_workers(n: int, env: dict[str, str], var_dir: Path) -> list[subprocess.Popen]:
    """n Celery workers on the scratch database, once they answer a ping (the stages then share chunks)."""
    os.environ.update(env)  # the ping below reads the broker from the same settings
    import django

    django.setup()
    from scoring_bench import start_workers, wait_for_workers  # bench/ is on sys.path as the script's directory

    from rfm_portal.celery import app

    app.control.purge()  # leftovers of an interrupted run on this Redis db
    began = time.perf_counter()
    procs = start_workers(n, env, var_dir)
    wait_for_workers(n)
    print(f"{n} Celery worker process(es) ready in {time.perf_counter() - began:.1f} s", flush=True)
    return procs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--reuse", action="store_true", help="reuse rfm_retrain_bench_<N> if it exists (loaded)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database and artifacts")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--stage-timeout", type=float, default=3600)
    parser.add_argument("--workers", type=int, default=0,
                        help="Celery worker processes sharing the stages' scoring chunks (0: the stage alone)")
    parser.add_argument("--run-stage", help=argparse.SUPPRESS)
    parser.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    db = f"rfm_retrain_bench_{args.customers}"
    var_dir = ROOT / "var" / db
    truth_path = var_dir / "truth.csv"

    if args.run_stage or args.load:  # in a child, with the scratch database's environment
        import django

        django.setup()
        if args.load:
            load_data(args.customers, args.seed, truth_path)
        else:
            run_stage(args.run_stage, truth_path)
        return

    print(f"retrain bench: {args.customers:,} customers, seed {args.seed}, database {db}; "
          f"load average {Path('/proc/loadavg').read_text().strip()}", flush=True)
    results: dict[str, dict[str, float]] = {}
    env = _env(db, var_dir)
    if not (args.reuse and _exists(db)):
        _admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        _admin(f'CREATE DATABASE "{db}"')
        shutil.rmtree(var_dir, ignore_errors=True)
        var_dir.mkdir(parents=True)
        results["(migrate)"] = _child(["manage.py", "migrate", "-v", "0"], env, "migrate", args.stage_timeout)
        results["(generate + COPY load)"] = _child([__file__, "--load", "--customers", str(args.customers),
                                                    "--seed", str(args.seed)], env, "load", args.stage_timeout)
    stages = [s for s in args.stages.split(",") if s]
    workers: list[subprocess.Popen] = []
    try:
        if args.workers:
            workers = _start_workers(args.workers, env, var_dir)
        for stage in stages:
            results[stage] = _child([__file__, "--run-stage", stage, "--customers", str(args.customers)],
                                    env, stage, args.stage_timeout, [w.pid for w in workers])
    finally:
        if workers:
            from scoring_bench import stop_workers  # bench/ is on sys.path as the script's directory

            stop_workers(workers)
        print(f"\n{'stage':<24}{'wall s':>9}{'CPU s':>9}{'workers CPU s':>15}{'peak RSS MB':>13}"
              f"{'load before/after':>19}   ({args.workers} Celery worker processes)")
        for name, r in results.items():
            print(f"{name:<24}{r['wall']:>9.1f}{r['cpu']:>9.1f}{r.get('workers_cpu', 0):>15.1f}{r['rss_mb']:>13.0f}"
                  f"{r['load_before']:>10.2f} / {r['load_after']:.2f}")
        trained = [results[s] for s in stages if s in results]
        print(f"{'retrain total':<24}{sum(r['wall'] for r in trained):>9.1f}{sum(r['cpu'] for r in trained):>9.1f}"
              f"{sum(r.get('workers_cpu', 0) for r in trained):>15.1f}"
              f"{max((r['rss_mb'] for r in trained), default=0):>13.0f}   (peak of any stage)")
        print(f"this process's peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
              f"load average now {Path('/proc/loadavg').read_text().strip()}")
        if not args.keep:
            _admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
