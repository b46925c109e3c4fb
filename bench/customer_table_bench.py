"""Benchmark of the customer table (Customers page) and the churn at-risk list on PostgreSQL.

Builds a scratch database (default ``rfm_bench_table``, dropped and recreated) with N customers, 10 purchase
lines each, and one active version per capability with a score per customer (segmentation, CLTV, churn with a
previous churn version for "risk rising", uplift), all inserted with ``INSERT … SELECT generate_series`` in
SQL. Then times, each the median of ``--repeat`` runs:

* page 1 of the table (50 rows + the paginator's count) for several sorts and filter combinations;
* the at-risk list's page 1 ranked by value at risk, and the win-back list;
* the CSV of a filtered table (every row streamed), and a filter audience's size.

Run from the repository root (PostgreSQL on localhost)::

    .venv/bin/python bench/customer_table_bench.py --customers 100000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def recreate_database(base_url: str, name: str) -> str:
    import psycopg

    admin_url = base_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return base_url.rsplit("/", 1)[0] + f"/{name}"


def timed(name: str, fn: Callable[[], Any], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    median = statistics.median(runs)
    print(f"{name:<64} median {median * 1000:9.1f} ms  (min {min(runs) * 1000:.1f}, n={repeat})", flush=True)
    return median


def load(n: int) -> None:
    from django.db import connection

    from rfm_portal.mlops.models import ModelVersion

    versions = {}
    for kind, version, status in (("segmentation", 1, "active"), ("cltv", 1, "active"), ("churn", 1, "retired"),
                                  ("churn", 2, "active"), ("uplift", 1, "active")):
        versions[(kind, version)] = ModelVersion.objects.create(kind=kind, version=version, status=status).pk
    sql = [
        f"""INSERT INTO customers_customer (external_id, country, attributes, created_at)
            SELECT 'C' || i, (ARRAY['United Kingdom','France','Germany','Spain','EIRE'])[1 + i % 5], '{{}}', now()
            FROM generate_series(1, {n}) i""",
        """INSERT INTO customers_transaction (invoice, customer_id, invoiced_at, quantity, unit_price, amount,
                                              is_return, row_hash)
            SELECT 'I' || c.id || '-' || k, c.id, now() - ((c.id * 7 + k * 37) % 700) * interval '1 day', 1,
                   10 + (c.id % 90), 10 + (c.id % 90), false, md5(c.id || '-' || k)
            FROM customers_customer c, generate_series(1, 10) k""",
        f"""INSERT INTO segmentation_rfmscore (model_version_id, customer_id, recency_days, frequency, monetary,
                first_purchase, last_purchase, r_score, f_score, m_score, rfm_code, segment, cluster, cluster_name)
            SELECT {versions[("segmentation", 1)]}, id, id % 700, 10, 100, now(), now(), 1 + id % 5, 3, 3, '333',
                   (ARRAY['Champions','Loyal','At Risk','Hibernating','Lost'])[1 + id % 5], id % 4, 'cluster ' || id % 4
            FROM customers_customer""",
        f"""INSERT INTO cltv_cltvscore (customer_id, model_version_id, first_purchase, frequency, recency, "T",
                monetary, p_alive, expected_purchases_30d, expected_purchases_90d, expected_purchases_365d,
                expected_aov, clv, clv_p10, clv_p50, clv_p90)
            SELECT id, {versions[("cltv", 1)]}, now()::date, 5, 10, 20, 50, (id % 100) / 100.0, 0.1, 0.3, 1, 50,
                   id % 1000, (id % 1000) * 0.5, id % 1000, (id % 1000) * 2
            FROM customers_customer""",
        *[f"""INSERT INTO churn_churnscore (customer_id, model_version_id, probability, risk_band,
                top_contributions, features, scored_at)
            SELECT id, {versions[("churn", v)]}, p, CASE WHEN p < 0.5 THEN 'low' WHEN p < 0.8 THEN 'medium'
                   ELSE 'high' END,
                   '[{{"feature": "recency_days", "label": "Days since last purchase", "value": 150,
                      "contribution": 1.2}}]', '{{"recency_days": 150, "ipt_mean_days": 21, "frequency": 10}}', now()
            FROM (SELECT id, ((id * {m}) % 997) / 997.0 AS p FROM customers_customer) s"""
          for v, m in ((1, 13), (2, 31))],
        f"""INSERT INTO uplift_upliftscore (customer_id, model_version_id, uplift, uplift_low, uplift_high, baseline,
                revenue_uplift, "group", expected_profit, contact, scored_at)
            SELECT id, {versions[("uplift", 1)]}, 0.01, 0, 0.02, 0.3, 1,
                   (ARRAY['persuadable','sure_thing','lost_cause','sleeping_dog'])[1 + id % 4], 1, true, now()
            FROM customers_customer""",
    ]
    with connection.cursor() as cursor:
        for statement in sql:
            cursor.execute(statement)
        cursor.execute("VACUUM ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database", default="rfm_bench_table")
    parser.add_argument("--reuse", action="store_true", help="keep the database of the previous run (no reload)")
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    url = base.rsplit("/", 1)[0] + f"/{args.database}" if args.reuse else recreate_database(base, args.database)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("RFM_VAR_DIR", f"/tmp/{args.database}_var")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rfm_portal.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.core.paginator import Paginator

    call_command("migrate", interactive=False, verbosity=0)
    started = time.perf_counter()
    if not args.reuse:
        load(args.customers)
    print(f"{'reused' if args.reuse else 'loaded'} {args.customers:,} customers, {10 * args.customers:,} transactions "
          "and 5 score sets "
          f"in {time.perf_counter() - started:.1f} s")

    from churn import selectors as churn_selectors
    from churn import views as churn_views
    from rfm_portal.customers.models import Customer
    from rfm_portal.customers.table import apply_search, customer_table, table_columns, without_jit
    from rfm_portal.customers.table_display import table_csv_lines

    def page(spec: dict, order: str) -> None:
        with without_jit():  # as the view does
            p = Paginator(customer_table(spec, order), 50).get_page(1)
            list(p.object_list)
            assert p.paginator.count >= 0

    cases = [
        ("table page 1, net revenue highest first", {}, "-revenue"),
        ("table page 1, CLV P50 highest first", {}, "-clv_p50"),
        ("table page 1, risk change highest first", {}, "-risk_change"),
        ("table page 1, CLV >= 500 and risk rising, by churn risk", {"min_clv": 500.0, "risk_rising": True},
         "-churn_risk"),
        ("table page 1, segments + country + uplift group, by CLV",
         {"segments": ["At Risk", "Champions"], "countries": ["France"], "uplift_groups": ["persuadable"]},
         "-clv_p50"),
        ("table page 1, text search '123'", {"search": "123"}, "-revenue"),
    ]
    for name, spec, order in cases:
        timed(name, lambda spec=spec, order=order: page(spec, order), args.repeat)
    filters = churn_selectors.AtRiskFilters()

    def action_page(view: str) -> None:
        with without_jit():
            p = Paginator(churn_selectors.action_list(filters, view), 50).get_page(1)
            list(p.object_list)
            assert p.paginator.count >= 0

    timed("at-risk list page 1 (value at risk)", lambda: action_page(churn_selectors.AT_RISK), args.repeat)
    timed("win-back list page 1", lambda: action_page(churn_selectors.WIN_BACK), args.repeat)
    spec = {"min_clv": 500.0, "risk_rising": True}
    rows = customer_table(spec, "-churn_risk").count()
    timed(f"CSV of CLV >= 500 and risk rising ({rows:,} rows)",
          lambda: sum(1 for _ in table_csv_lines(customer_table(spec, "-churn_risk"), table_columns())),
          max(1, args.repeat // 2))
    from rfm_portal.customers.audiences import apply_filter

    timed("filter audience size (CLV >= 500 and risk rising)",
          lambda: apply_filter(Customer.objects.all(), spec).count(), args.repeat)
    timed("churn at-risk CSV (every row, drivers in words)",
          lambda: sum(1 for _ in churn_views._csv_rows(churn_selectors.action_list(filters),
                                                       churn_selectors.active_version(), "")), 1)
    assert apply_search  # imported for the text-search case above (same code path as the page)


if __name__ == "__main__":
    main()
