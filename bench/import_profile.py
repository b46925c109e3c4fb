"""Where an import's database time goes: every SQL statement of services.import_transactions, timed.

    .venv/bin/python bench/import_profile.py --rows 1000000 [--explain]

Generates the file of bench/import_bench.py (and another one, other seed), creates a scratch
database (default `rfm_import_profile`; BENCH_DATABASE_URL overrides; dropped at the end), then
imports the first file into the empty table and the second into the filled one, printing for each
the wall time and the statements that took longest (Django's execute wrapper; the staging COPYs
are not statements and show up as the rest). `--explain` runs the big INSERT as EXPLAIN (ANALYZE,
BUFFERS) and prints its plan (the job's counts are then wrong: profiling only).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from import_bench import _setup_django, generate, load, recreate_database

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/rfm_import_profile"


def profiled_import(path: Path, explain: bool) -> None:
    from django.db import connection

    from rfm_portal.customers import services

    timings: list[tuple[float, str]] = []

    def timed(execute, sql, params, many, context):
        if explain and sql.lstrip().startswith("INSERT INTO \"customers_transaction\""):
            execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params, many, context)
            print("\n".join(row[0] for row in context["cursor"].fetchall()))
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            timings.append((time.perf_counter() - started, re.sub(r"\s+", " ", sql).strip()[:110]))

    started = time.perf_counter()
    with connection.execute_wrapper(timed):
        job = services.import_transactions(path)
    wall = time.perf_counter() - started
    in_sql = sum(t for t, _ in timings)
    print(f"  {job.message}  wall {wall:.2f} s, in SQL statements {in_sql:.2f} s, elsewhere {wall - in_sql:.2f} s")
    for seconds, sql in sorted(timings, reverse=True)[:8]:
        print(f"    {seconds:7.2f} s  {sql}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    print(f"load average (1 min) at start: {load()} on {os.cpu_count()} cores")
    recreate_database(url)
    try:
        _setup_django(url)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        with tempfile.TemporaryDirectory(prefix="rfm-import-profile-") as tmp:
            for label, seed in (("into the empty table", 42), ("another file into the filled table", 4242)):
                path = Path(tmp) / f"transactions_{seed}.csv"
                generate(path, args.rows, seed=seed)
                print(f"{args.rows:,} rows {label}:")
                profiled_import(path, args.explain)
                path.unlink()
    finally:
        from django.db import connections

        connections.close_all()
        recreate_database(url, drop_only=True)
    print(f"load average (1 min) at end: {load()}")


if __name__ == "__main__":
    main()
