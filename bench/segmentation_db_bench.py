"""Benchmark of Segmentation on PostgreSQL: the RFM aggregate in the database vs pandas in memory.

The counterpart of ``bench/segmentation_pipeline_bench.py`` (same synthetic log: N customers,
about 20·N invoice lines, 3 % returns). Steps:

1. Create a scratch database (default ``rfm_bench_seg``, dropped and recreated unless
   ``--reuse``), ``migrate`` it, and load customers and transactions with COPY directly into
   ``customers_customer`` / ``customers_transaction`` (not through the import service). The
   table's indexes stay in place, as in production; ``VACUUM ANALYZE`` afterwards.
2. Time the RFM aggregate in PostgreSQL — the single ``GROUP BY`` query of
   ``segmentation.selectors.rfm_queryset`` — once as SQL execution + fetch, and once as
   ``rfm_frame`` (query + conversion to the pipeline's DataFrame).
3. Time reading the same rows into memory and ``pipeline.rfm_table`` (pandas/numpy group-by)
   over them, and check that both give the same table.
4. Time scoring (``score_rfm``) and K-Means (``cluster_rfm``: k search 2–10 + final fit), and,
   unless ``--no-service``, the whole ``services.train_segmentation`` (aggregate, scoring,
   K-Means, artifact, COPY of the score rows, registry + promotion).

Run from the repository root (PostgreSQL on localhost, as in the tests)::

    .venv/bin/python bench/segmentation_db_bench.py --customers 100000
    .venv/bin/python bench/segmentation_db_bench.py                  # 1,000,000 customers, ~20M lines
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from segmentation_pipeline_bench import generate  # noqa: E402  (the same synthetic log)

COPY_CHUNK = 1_000_000


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stage(name: str, fn: Callable[[], Any], results: dict[str, float]) -> Any:
    started, cpu_started = time.perf_counter(), time.process_time()
    value = fn()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    results[name] = seconds
    print(f"{name:<58} wall {seconds:8.2f} s  cpu {cpu:8.2f} s  peak RSS {peak_rss_mb():7.0f} MiB", flush=True)
    return value


def recreate_database(base_url: str, name: str) -> str:
    import psycopg

    admin_url = base_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return base_url.rsplit("/", 1)[0] + f"/{name}"


def copy_frame(cursor, table: str, columns: list[str], frame: pd.DataFrame) -> None:
    """COPY a frame in CSV chunks (pandas writes the CSV; psycopg streams it)."""
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)"
    for start in range(0, len(frame), COPY_CHUNK):
        buffer = io.StringIO()
        frame.iloc[start : start + COPY_CHUNK].to_csv(buffer, header=False, index=False, lineterminator="\n")
        with cursor.copy(sql) as copy:
            copy.write(buffer.getvalue())


def load(log: pd.DataFrame) -> None:
    from django.db import connection

    customers = np.unique(log["customer_id"].to_numpy())
    now = pd.Timestamp.now(tz="UTC").isoformat()
    customer_rows = pd.DataFrame(
        {
            "id": customers,
            "external_id": customers.astype(str),
            "country": "United Kingdom",
            "attributes": "{}",
            "created_at": now,
        }
    )
    amount = log["amount"].to_numpy()
    tx = pd.DataFrame(
        {
            "invoice": log["invoice"].astype(str),
            "customer_id": log["customer_id"],
            "invoiced_at": log["invoiced_at"].dt.strftime("%Y-%m-%d %H:%M:%S.%f+00"),
            "quantity": np.where(log["is_return"], -1, 1),
            "unit_price": np.abs(amount),
            "amount": amount,
            "is_return": np.where(log["is_return"], "t", "f"),
            "row_hash": np.arange(len(log)).astype(str),
        }
    )
    with connection.cursor() as cursor:
        raw = cursor.cursor
        copy_frame(raw, "customers_customer", list(customer_rows.columns), customer_rows)
        copy_frame(raw, "customers_transaction", list(tx.columns), tx)
        raw.execute(
            "SELECT setval(pg_get_serial_sequence('customers_customer', 'id'), max(id)) FROM customers_customer"
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE customers_customer")
        cursor.execute("VACUUM ANALYZE customers_transaction")


def read_rows(cutoff) -> pd.DataFrame:
    """All lines before the cut-off into memory via COPY TO STDOUT (the fast way to get them there)."""
    from django.db import connection

    sql = (
        "COPY (SELECT customer_id, invoice, (extract(epoch FROM invoiced_at) * 1000000)::bigint AS us, amount, "
        f"is_return FROM customers_transaction WHERE invoiced_at < '{cutoff.isoformat()}') TO STDOUT WITH (FORMAT csv)"
    )
    buffer = io.BytesIO()
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for block in copy:
            buffer.write(block)
    buffer.seek(0)
    frame = pd.read_csv(
        buffer,
        names=["customer_id", "invoice", "us", "amount", "is_return"],
        dtype={"customer_id": np.int64, "invoice": np.int64, "us": np.int64, "amount": np.float64, "is_return": str},
    )
    frame["invoiced_at"] = pd.to_datetime(frame.pop("us"), unit="us", utc=True)
    frame["is_return"] = frame["is_return"].eq("t")
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--lines-per-customer", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", default="rfm_bench_seg", help="scratch database (dropped and recreated)")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432/postgres", help="PostgreSQL URL")
    parser.add_argument("--reuse", action="store_true", help="keep an already loaded scratch database")
    parser.add_argument("--no-service", action="store_true", help="skip the full train_segmentation run")
    args = parser.parse_args()

    if args.reuse:
        url = args.server.rsplit("/", 1)[0] + f"/{args.database}"
    else:
        url = recreate_database(args.server, args.database)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("RFM_VAR_DIR", f"/tmp/{args.database}_var")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rfm_portal.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from rfm_portal.customers.models import Transaction
    from segmentation import selectors, services
    from segmentation.pipeline import cluster_rfm, rfm_table, score_rfm

    results: dict[str, float] = {}
    print(f"PostgreSQL scratch database {args.database}; {args.customers:,} customers", flush=True)
    stage("migrate", lambda: call_command("migrate", verbosity=0), results)
    if not args.reuse:
        log = stage(
            "generate log in memory (numpy)",
            lambda: generate(args.customers, args.lines_per_customer, args.seed),
            results,
        )
        log["amount"] = log["amount"].round(4)  # the column is numeric(14, 4)
        stage(f"COPY {len(log):,} lines + customers, VACUUM ANALYZE", lambda: load(log), results)
        del log
    n_lines = Transaction.objects.count()
    print(f"{n_lines:,} transaction lines in the database", flush=True)

    cutoff = stage("default cut-off (max(invoiced_at))", selectors.default_cutoff, results)
    sql, params = selectors.rfm_queryset(cutoff).query.sql_with_params()

    def run_sql() -> int:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return len(cursor.fetchall())

    n_sql = stage("DB aggregate: GROUP BY query + fetch rows", run_sql, results)
    db_rfm = stage("DB aggregate: rfm_frame (query + DataFrame)", lambda: selectors.rfm_frame(cutoff), results)
    assert n_sql == len(db_rfm)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) " + sql, params)
        plan = [row[0] for row in cursor.fetchall()]
    print("  plan: " + " | ".join(line.strip() for line in plan if "Execution Time" in line or "Sort Method" in line))

    rows = stage("read all lines into memory (COPY TO → DataFrame)", lambda: read_rows(cutoff), results)
    mem_rfm = stage("pandas/numpy: pipeline.rfm_table over the same rows", functools.partial(rfm_table, rows), results)
    del rows
    same = (
        db_rfm["customer_id"].tolist() == mem_rfm["customer_id"].tolist()
        and np.array_equal(db_rfm["recency_days"], mem_rfm["recency_days"])
        and np.array_equal(db_rfm["frequency"], mem_rfm["frequency"])
        and np.allclose(db_rfm["monetary"], mem_rfm["monetary"], atol=1e-6)
    )
    print(f"  DB and pandas RFM tables identical: {same} ({len(db_rfm):,} customers)", flush=True)
    assert same

    stage("score_rfm (quintiles + named segments)", lambda: score_rfm(db_rfm), results)
    clustering = stage("cluster_rfm (k search 2–10 + final K-Means)", lambda: cluster_rfm(db_rfm), results)
    print(f"  chosen k = {clustering.k}: {clustering.explanation}", flush=True)
    if not args.no_service:
        mv = stage(
            "services.train_segmentation (all of it, scores COPYed)",
            lambda: services.train_segmentation(cutoff=cutoff),
            results,
        )
        print(f"  segmentation v{mv.version} active, {mv.metrics['customers']:,} score rows", flush=True)

    print()
    print(
        f"Summary, N = {args.customers:,} customers / {n_lines:,} lines: DB aggregate to DataFrame "
        f"{results['DB aggregate: rfm_frame (query + DataFrame)']:.2f} s vs pandas rfm_table "
        f"{results['pandas/numpy: pipeline.rfm_table over the same rows']:.2f} s in memory "
        f"(+ {results['read all lines into memory (COPY TO → DataFrame)']:.2f} s to get the rows there)."
    )


if __name__ == "__main__":
    main()
