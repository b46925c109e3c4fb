"""Transaction import throughput and memory against PostgreSQL, beside a plain COPY of the same file.

    .venv/bin/python bench/import_bench.py --rows 1000000 --rss-rows 250000,1000000,4000000

Generates a deterministic project-schema CSV (numpy, seed 42: ~50k customers, ~3k
products), (re)creates a scratch database (default `rfm_import_bench` on the local
server; BENCH_DATABASE_URL overrides; dropped at the end), migrates it, then prints:

* plain COPY of the file into a bare table without indexes (the physical limit),
* the product import (services.import_transactions: chunked read + validation, COPY into
  staging, upserts, INSERT ... SELECT into the indexed, constrained table, one transaction),
  first time and again (idempotent: nothing new), each in a fresh process: wall time,
  the process's CPU time, the PostgreSQL backend's CPU time and the process's peak RSS,
* import / plain COPY as a ratio of speeds (the target is >= 0.25),
* the floor for writing those rows: COPY of the imported rows (the transaction table's own
  columns) into a) a bare table, b) an empty copy of the transaction table with all its
  indexes, c) the same already holding 1M other rows,
* a first import of another file of as many rows into the filled table (an import into an
  empty table rebuilds the secondary indexes instead of maintaining them; this one cannot),
* peak RSS of a first import at each --rss-rows size, and its growth over the process's RSS
  just before the import (Django with every app loaded): flat = memory does not grow with the file,
* the 1-minute load average before and after (the machine may be shared: CPU times hold up
  under load better than wall times).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/rfm_import_bench"


def generate(path: Path, rows: int, seed: int = 42) -> None:
    """Written in blocks of 1M rows, so generating a 4M-row file needs no more memory than 1M."""
    block = 1_000_000
    for start in range(0, rows, block):
        _generate_block(path, min(block, rows - start), seed + start // block, start, append=start > 0)


def _generate_block(path: Path, rows: int, seed: int, offset: int, append: bool) -> None:
    rng = np.random.default_rng(seed)
    n_customers = max(1, min(50_000, rows // 20))
    n_products = max(1, min(3_000, rows // 300))
    countries = np.array(["United Kingdom", "France", "Germany", "Spain", "Netherlands", "EIRE", "Portugal"])
    categories = np.array(["home", "kitchen", "garden", "toys", "gifts", "party", "stationery"])
    product_price = np.round(rng.gamma(2.0, 2.5, n_products) + 0.1, 2)
    product_category = categories[rng.integers(len(categories), size=n_products)]
    customer_country = countries[
        rng.choice(len(countries), size=n_customers, p=[0.7, 0.08, 0.08, 0.05, 0.04, 0.03, 0.02])
    ]

    # Invoices of ~4 lines: one customer and one timestamp per invoice.
    invoice_of_line = np.sort(rng.integers(0, max(1, rows // 4), size=rows))
    n_invoices = invoice_of_line.max() + 1
    invoice_customer = rng.integers(0, n_customers, size=n_invoices)
    start = np.datetime64("2022-01-01T00:00:00")
    invoice_time = start + rng.integers(0, 2 * 365 * 24 * 3600, size=n_invoices).astype("timedelta64[s]")
    invoice_is_return = rng.random(n_invoices) < 0.02

    product = rng.integers(0, n_products, size=rows)
    quantity = rng.integers(1, 25, size=rows)
    is_return = invoice_is_return[invoice_of_line]
    quantity = np.where(is_return, -quantity, quantity)
    customer = invoice_customer[invoice_of_line]
    frame = pd.DataFrame(
        {
            "invoice": np.char.add(np.where(is_return, "C", ""), (500_000 + offset + invoice_of_line).astype(str)),
            "customer_id": (10_000 + customer).astype(str),
            "sku": np.char.add("P", (10_000 + product).astype(str)),
            "description": np.char.add("Product number ", product.astype(str)),
            "category": product_category[product],
            "invoiced_at": np.datetime_as_string(invoice_time[invoice_of_line], unit="s"),
            "quantity": quantity,
            "unit_price": product_price[product],
            "country": customer_country[customer],
        }
    )
    frame.to_csv(path, index=False, float_format="%.2f", mode="a" if append else "w", header=not append)


def recreate_database(url: str, drop_only: bool = False) -> None:
    import psycopg

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    admin = urlunparse(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def _setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rfm_portal.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _backend_cpu(pid: int) -> float:
    """User + system CPU seconds of a process on this machine (the PostgreSQL backend), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(field: str = "VmRSS") -> float:
    """VmRSS (resident now) or VmHWM (peak resident) of this process, MB.

    Not getrusage's ru_maxrss: Linux carries that over from the parent across fork and exec, so
    a child would report the bench's own peak (generating the file) as its own.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child_import(url: str, path: str) -> None:
    """One import in this (fresh) process; prints its figures as JSON."""
    _setup_django(url)
    from django.db import connection

    from rfm_portal.customers import services

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    local = Path(f"/proc/{backend}/stat").exists()
    rss_before = _rss_mb()
    backend_before = _backend_cpu(backend) if local else 0.0
    cpu_before = time.process_time()
    started = time.perf_counter()
    job = services.import_transactions(path)
    wall = time.perf_counter() - started
    figures = {
        "wall_s": wall,
        "cpu_s": time.process_time() - cpu_before,
        "backend_cpu_s": _backend_cpu(backend) - backend_before if local else None,
        "peak_rss_mb": _rss_mb("VmHWM"),
        "rss_before_mb": rss_before,
        "status": job.status,
        "rows_total": job.rows_total,
        "rows_inserted": job.rows_inserted,
        "rows_duplicate": job.rows_duplicate,
        "message": job.message,
    }
    print(json.dumps(figures))


def run_import(url: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child-import", str(path)],
        env={**os.environ, "BENCH_DATABASE_URL": url},
        check=True,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def plain_copy(url: str, path: Path) -> float:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_plain_copy")
        conn.execute(
            "CREATE TABLE bench_plain_copy (invoice text, customer_id text, sku text, description text, "
            "category text, invoiced_at timestamptz, quantity integer, unit_price numeric(12, 4), country text)"
        )
        started = time.perf_counter()
        with conn.cursor() as cursor, cursor.copy("COPY bench_plain_copy FROM STDIN (FORMAT csv, HEADER)") as copy:
            with open(path, "rb") as fh:
                while block := fh.read(1 << 20):
                    copy.write(block)
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE bench_plain_copy")
    return elapsed


def _timed_copy(conn, table: str, dump: Path) -> tuple[float, float | None]:
    """COPY a CSV file into `table` on `conn`: (wall seconds, backend CPU seconds)."""
    backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    local = Path(f"/proc/{backend}/stat").exists()
    conn.execute("CHECKPOINT")
    cpu_before = _backend_cpu(backend) if local else 0.0
    started = time.perf_counter()
    with conn.cursor() as cursor, cursor.copy(f"COPY {table} FROM STDIN (FORMAT csv)") as copy:
        with open(dump, "rb") as fh:
            while block := fh.read(1 << 20):
                copy.write(block)
    return time.perf_counter() - started, (_backend_cpu(backend) - cpu_before) if local else None


def copy_floors(url: str, dump_dir: Path) -> dict[str, tuple[float, float | None]]:
    """The physical floor of writing the imported rows, with and without the transaction table's indexes.

    The rows the import wrote (customers_transaction, filled) are dumped to a CSV of the table's own
    columns, then COPYed (autocommit, one statement each) into:
    a) a bare copy of the table (columns only, no index),
    b) an empty copy with every index of the transaction table (pk, row_hash unique, customer + date,
       date, product, import job; LIKE ... INCLUDING ALL copies all but the foreign keys, which the
       import skips too),
    c) that copy already holding 1M other rows (the same rows shifted two years back, other ids and
       hashes), as a second file imported into a filled table would find it.
    """
    import psycopg

    dump = dump_dir / "transactions_table.csv"
    with psycopg.connect(url, autocommit=True) as conn:
        with open(dump, "wb") as fh, conn.cursor().copy("COPY customers_transaction TO STDOUT (FORMAT csv)") as out:
            for block in out:
                fh.write(block)
        floors = {}
        conn.execute("DROP TABLE IF EXISTS bench_floor")
        conn.execute("CREATE TABLE bench_floor (LIKE customers_transaction)")
        floors["a"] = _timed_copy(conn, "bench_floor", dump)
        conn.execute("DROP TABLE bench_floor")
        conn.execute("CREATE TABLE bench_floor (LIKE customers_transaction INCLUDING ALL)")
        floors["b"] = _timed_copy(conn, "bench_floor", dump)
        conn.execute("TRUNCATE bench_floor")
        conn.execute(
            "INSERT INTO bench_floor (id, invoice, customer_id, product_id, invoiced_at, quantity, unit_price, "
            "amount, is_return, row_hash, import_job_id) "
            "SELECT id + 1000000000, invoice, customer_id, product_id, invoiced_at - interval '730 days', quantity, "
            "unit_price, amount, is_return, left(encode(sha256(row_hash::bytea), 'hex'), 40), import_job_id "
            "FROM customers_transaction ORDER BY invoiced_at"
        )
        conn.execute("VACUUM ANALYZE bench_floor")
        floors["c"] = _timed_copy(conn, "bench_floor", dump)
        conn.execute("DROP TABLE bench_floor")
    dump.unlink()
    return floors


def empty_tables(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE customers_transaction, customers_customer, customers_product CASCADE")
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def describe(label: str, rows: int, figures: dict) -> str:
    backend = figures["backend_cpu_s"]
    backend_text = f"{backend:7.2f} s" if backend is not None else "    n/a"
    return (
        f"{label:34s} {figures['wall_s']:8.2f} s  {rows / figures['wall_s']:10,.0f} rows/s  "
        f"cpu {figures['cpu_s']:6.2f} s  backend cpu {backend_text}  peak RSS {figures['peak_rss_mb']:5.0f} MB "
        f"(+{figures['peak_rss_mb'] - figures['rss_before_mb']:.0f} MB over the {figures['rss_before_mb']:.0f} MB "
        "before the import)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rss-rows", default="250000,1000000", help="comma-separated sizes for the RSS check")
    parser.add_argument("--child-import", help=argparse.SUPPRESS)
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    if args.child_import:
        child_import(url, args.child_import)
        return

    print(f"load average (1 min) at start: {load()} on {os.cpu_count()} cores")
    recreate_database(url)
    try:
        _setup_django(url)
        from django.core.management import call_command

        from rfm_portal.customers import services

        call_command("migrate", verbosity=0)
        print(f"chunk size: {services.IMPORT_CHUNK_ROWS:,} rows")
        with tempfile.TemporaryDirectory(prefix="rfm-import-bench-") as tmp:
            path = Path(tmp) / "transactions.csv"
            started = time.perf_counter()
            generate(path, args.rows)
            size_mb = path.stat().st_size / 1e6
            print(f"generated {args.rows:,} rows ({size_mb:.0f} MB) in {time.perf_counter() - started:.1f} s")

            empty_tables(url)
            copy_s = plain_copy(url, path)
            first = run_import(url, path)
            assert first["status"] == "succeeded" and first["rows_inserted"] == args.rows, first
            again = run_import(url, path)
            assert again["rows_inserted"] == 0 and again["rows_duplicate"] == args.rows, again
            copy_after_s = plain_copy(url, path)  # the same run: once before, once after the imports
            floors = copy_floors(url, Path(tmp))
            # Another file of as many rows into the filled table: the ordinary path (indexes kept).
            other_path = Path(tmp) / "other.csv"
            generate(other_path, args.rows, seed=4242)
            other = run_import(url, other_path)
            assert other["status"] == "succeeded" and other["rows_inserted"] > 0.99 * args.rows, other
            other_path.unlink()

            print(f"plain COPY into a bare table:     {copy_s:8.2f} s  {args.rows / copy_s:10,.0f} rows/s "
                  f"(again after the imports: {copy_after_s:.2f} s)")
            print(describe("import, first time:", args.rows, first) + f"  ({first['message']})")
            print(describe("import again (adds nothing):", args.rows, again) + f"  ({again['message']})")
            best_copy = min(copy_s, copy_after_s)
            print(f"import / plain COPY (speed):      {best_copy / first['wall_s']:8.3f}  first time   "
                  f"{best_copy / again['wall_s']:.3f}  again   (target >= 0.25)")
            print(describe("another file into the filled table:", args.rows, other) + f"  ({other['message']})")
            print(f"import / plain COPY (speed), another file into the filled table: {best_copy / other['wall_s']:.3f}")
            print("COPY of the imported rows (the table's own columns, CSV) -- the floor for writing them:")
            floor_labels = {
                "a": "a) bare table, no index",
                "b": "b) empty, every index",
                "c": "c) every index, 1M rows already",
            }
            for key, label in floor_labels.items():
                wall, cpu = floors[key]
                cpu_text = f"{cpu:6.2f} s" if cpu is not None else "   n/a"
                versus = other if key == "c" else first
                print(f"  {label:32s} {wall:8.2f} s  {args.rows / wall:10,.0f} rows/s  backend cpu {cpu_text}  "
                      f"import {'of another file' if key == 'c' else 'first time'} / this COPY (speed) "
                      f"{wall / versus['wall_s']:.3f}")
            path.unlink()

            for rows in [int(r) for r in args.rss_rows.split(",") if r]:
                sized = Path(tmp) / f"transactions_{rows}.csv"
                generate(sized, rows)
                empty_tables(url)
                figures = run_import(url, sized)
                assert figures["rows_inserted"] == rows, figures
                print(describe(f"first import of {rows:,} rows:", rows, figures))
                sized.unlink()
    finally:
        from django.db import connections

        connections.close_all()
        recreate_database(url, drop_only=True)
    print(f"load average (1 min) at end: {load()}")


if __name__ == "__main__":
    main()
