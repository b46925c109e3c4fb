"""Transaction import throughput against PostgreSQL, beside a plain COPY of the same file.

    .venv/bin/python bench/import_bench.py --rows 1000000

Generates a deterministic project-schema CSV (numpy, seed 42: ~50k customers, ~3k
products) in a temp dir, (re)creates a scratch database (default `rfm_bench` on the
local server; BENCH_DATABASE_URL overrides), migrates it, then times:

* the pure read + validation step alone (importing.py),
* the full service import (validation + COPY into staging + upserts + INSERT ... SELECT
  into the indexed, constrained real tables, all in one transaction),
* the same import again (idempotent: nothing new),
* a plain COPY of the same file into a bare table without indexes: the physical limit.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/rfm_bench"


def generate(path: Path, rows: int, seed: int = 42) -> None:
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
            "invoice": np.char.add(np.where(is_return, "C", ""), (500_000 + invoice_of_line).astype(str)),
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
    frame.to_csv(path, index=False, float_format="%.2f")


def recreate_database(url: str) -> None:
    import psycopg

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    admin = urlunparse(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def plain_copy(path: Path) -> float:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_plain_copy")
        cursor.execute(
            "CREATE TABLE bench_plain_copy (invoice text, customer_id text, sku text, description text, "
            "category text, invoiced_at timestamptz, quantity integer, unit_price numeric(12, 4), country text)"
        )
        started = time.perf_counter()
        with (
            cursor.cursor.copy("COPY bench_plain_copy FROM STDIN (FORMAT csv, HEADER)") as copy,
            open(path, "rb") as fh,
        ):
            while block := fh.read(1 << 20):
                copy.write(block)
        elapsed = time.perf_counter() - started
        cursor.execute("DROP TABLE bench_plain_copy")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()

    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    recreate_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rfm_portal.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    from rfm_portal.customers import importing, services

    call_command("migrate", verbosity=0)

    with tempfile.TemporaryDirectory(prefix="rfm-bench-") as tmp:
        path = Path(tmp) / "transactions.csv"
        started = time.perf_counter()
        generate(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        print(f"generated {args.rows:,} rows ({size_mb:.0f} MB) in {time.perf_counter() - started:.1f} s")

        started = time.perf_counter()
        result = importing.validate_transactions(importing.read_table(path))
        validate_s = time.perf_counter() - started
        assert not result.errors, result.errors[:5]
        del result

        started = time.perf_counter()
        job = services.import_transactions(path)
        first_s = time.perf_counter() - started
        assert job.status == "succeeded" and job.rows_inserted == args.rows, (job.status, job.message)

        started = time.perf_counter()
        again = services.import_transactions(path)
        second_s = time.perf_counter() - started
        assert again.rows_inserted == 0 and again.rows_duplicate == args.rows, again.message

        copy_s = plain_copy(path)

    rate = args.rows / first_s
    copy_rate = args.rows / copy_s
    print(f"read + validate (pure, pandas): {validate_s:8.2f} s  {args.rows / validate_s:12,.0f} rows/s")
    print(f"import (service, first time):   {first_s:8.2f} s  {rate:12,.0f} rows/s  ({job.message})")
    print(f"import again (idempotent):      {second_s:8.2f} s  {args.rows / second_s:12,.0f} rows/s  ({again.message})")
    print(f"plain COPY into a bare table:   {copy_s:8.2f} s  {copy_rate:12,.0f} rows/s")
    print(f"service / plain COPY:           {rate / copy_rate:8.2f}  (plain COPY is {first_s / copy_s:.1f}x faster)")


if __name__ == "__main__":
    main()
