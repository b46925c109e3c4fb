"""Benchmark of the campaign planner: planning an N-customer audience (default 1,000,000) on PostgreSQL.

Steps:

1. Create a scratch database (default ``rfm_bench_campaigns``, dropped and recreated unless ``--reuse``),
   ``migrate`` it, register active segmentation, churn, CLTV and uplift versions and COPY one synthetic score
   row per customer and model into their score tables (not through the training services: this measures the
   planner, not the models).
2. Time the scoring read: ``campaigns.services.audience_frame`` — every score of every customer through the
   other apps' selectors (uplift, segmentation, churn, CLTV, customers) joined into one frame, audience filters
   applied.
3. Time the allocation: ``campaigns.services.compute_plan`` — option values for 3 channels, the LP-greedy
   multiple-choice knapsack under the budget, the three naive rules, segment/cluster summaries, holdout, power.
   Also the bare ``pipeline.allocate`` call.
4. Unless ``--no-store``, the whole ``plan_campaign`` service (read + allocation + messages rendered for the
   contacted customers + target rows written), for a budget that selects about ``--select`` customers.

    .venv/bin/python bench/campaigns_bench.py --customers 100000
    .venv/bin/python bench/campaigns_bench.py                      # 1,000,000 customers
"""

from __future__ import annotations

import argparse
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

COPY_CHUNK = 500_000
SEGMENTS = ["Champions", "Loyal", "Potential Loyalist", "New", "Promising", "Need Attention", "About to Sleep",
            "At Risk", "Can't Lose Them", "Hibernating", "Lost"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stage(name: str, fn: Callable[[], Any], results: dict[str, float]) -> Any:
    started, cpu_started = time.perf_counter(), time.process_time()
    value = fn()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    results[name] = seconds
    print(f"{name:<60} wall {seconds:8.2f} s  cpu {cpu:8.2f} s  peak RSS {peak_rss_mb():7.0f} MiB", flush=True)
    return value


def recreate_database(base_url: str, name: str) -> str:
    import psycopg

    admin_url = base_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return base_url.rsplit("/", 1)[0] + f"/{name}"


def copy_frame(cursor, table: str, frame: pd.DataFrame) -> None:
    sql = f"COPY {table} ({', '.join(chr(34) + c + chr(34) for c in frame.columns)}) FROM STDIN WITH (FORMAT csv)"
    for start in range(0, len(frame), COPY_CHUNK):
        buffer = io.StringIO()
        frame.iloc[start:start + COPY_CHUNK].to_csv(buffer, header=False, index=False, lineterminator="\n")
        with cursor.copy(sql) as copy:
            copy.write(buffer.getvalue())


def load(n: int, seed: int) -> None:
    from django.db import connection
    from django.utils import timezone

    from rfm_portal.mlops.models import ModelVersion

    rng = np.random.default_rng(seed)
    now = timezone.now()
    versions = {kind: ModelVersion.objects.create(kind=kind, version=1, status=ModelVersion.Status.ACTIVE,
                                                  activated_at=now, data_cutoff=now)
                for kind in ("uplift", "segmentation", "churn", "cltv")}
    ids = np.arange(1, n + 1)
    ts = now.isoformat()
    customers = pd.DataFrame({"id": ids, "external_id": [f"C{i:07d}" for i in ids],
                              "country": rng.choice(["United Kingdom", "France", "Germany", "Spain"], n),
                              "first_seen": ts, "attributes": "{}", "created_at": ts})
    uplift = rng.normal(0.03, 0.06, n)
    width = rng.uniform(0.02, 0.08, n)
    low, high = uplift - width, uplift + width
    baseline = rng.beta(2, 8, n)
    group = np.where(low > 0, "persuadable", np.where(high < 0, "sleeping_dog",
                     np.where(baseline > 0.5, "sure_thing", "lost_cause")))
    scores = pd.DataFrame({"customer_id": ids, "model_version_id": versions["uplift"].pk, "uplift": uplift,
                           "uplift_low": low, "uplift_high": high, "baseline": baseline,
                           "revenue_uplift": uplift * rng.gamma(4, 10, n), "group": group,
                           "expected_profit": 0.0, "contact": False, "scored_at": ts})
    segment = rng.choice(SEGMENTS, n)
    cluster = rng.integers(0, 5, n)
    rfm = pd.DataFrame({"model_version_id": versions["segmentation"].pk, "customer_id": ids,
                        "recency_days": rng.integers(0, 700, n), "frequency": rng.integers(1, 30, n),
                        "monetary": rng.gamma(2, 200, n).round(2), "first_purchase": ts, "last_purchase": ts,
                        "r_score": rng.integers(1, 6, n), "f_score": rng.integers(1, 6, n),
                        "m_score": rng.integers(1, 6, n), "rfm_code": "345", "segment": segment, "cluster": cluster,
                        "cluster_name": np.array(["Big spenders", "Regulars", "Occasional", "Lapsed", "New"])[cluster]})
    churn = pd.DataFrame({"customer_id": ids, "model_version_id": versions["churn"].pk,
                          "probability": rng.uniform(0, 1, n), "risk_band": "medium", "top_contributions": "[]",
                          "features": "{}", "scored_at": ts})
    clv = rng.gamma(2, 150, n)
    cltv = pd.DataFrame({"customer_id": ids, "model_version_id": versions["cltv"].pk, "first_purchase": "2024-01-01",
                         "frequency": rng.integers(0, 20, n), "recency": 10.0, "T": 50.0, "monetary": 40.0,
                         "p_alive": rng.uniform(0, 1, n), "expected_purchases_30d": 0.1,
                         "expected_purchases_90d": 0.3, "expected_purchases_365d": 1.0, "expected_aov": 40.0,
                         "clv": clv, "clv_p10": clv * 0.5, "clv_p50": clv, "clv_p90": clv * 1.5})
    with connection.cursor() as cursor:
        raw = cursor.cursor
        copy_frame(raw, "customers_customer", customers)
        cursor.execute("SELECT setval(pg_get_serial_sequence('customers_customer', 'id'), %s)", [n])
        copy_frame(raw, "uplift_upliftscore", scores)
        copy_frame(raw, "segmentation_rfmscore", rfm)
        copy_frame(raw, "churn_churnscore", churn)
        copy_frame(raw, "cltv_cltvscore", cltv)
        for table in ("customers_customer", "uplift_upliftscore", "segmentation_rfmscore", "churn_churnscore",
                      "cltv_cltvscore"):
            cursor.execute(f"VACUUM ANALYZE {table}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--database", default="rfm_bench_campaigns")
    parser.add_argument("--reuse", action="store_true", help="keep the loaded database from a previous run")
    parser.add_argument("--select", type=int, default=100_000, help="about how many customers the budget buys")
    parser.add_argument("--no-store", action="store_true", help="skip the full plan_campaign (messages + rows)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rfm_portal")
    url = base.rsplit("/", 1)[0] + f"/{args.database}" if args.reuse else recreate_database(base, args.database)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rfm_portal.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from campaigns import pipeline, services
    from campaigns.models import Campaign
    from rfm_portal.accounts.models import User

    results: dict[str, float] = {}
    print(f"campaign planner benchmark: {args.customers:,} customers, database {args.database}", flush=True)
    if not args.reuse:
        stage("migrate", lambda: call_command("migrate", verbosity=0), results)
        stage(f"load {args.customers:,} customers × 4 score tables (COPY)", lambda: load(args.customers, args.seed),
              results)
    user = User.objects.filter(username="bench").first() or User.objects.create_user("bench", role="admin")
    Campaign.objects.filter(name__startswith="bench").delete()
    channels = [{"name": "email", "cost": 0.05, "effect_factor": 1.0}, {"name": "sms", "cost": 0.15,
                                                                          "effect_factor": 1.2},
                {"name": "direct_mail", "cost": 0.9, "effect_factor": 1.6}]
    # A budget that buys about --select contacts (≈ the cheapest channel's cost + expected incentive).
    budget = args.select * (0.05 + 0.5 * 0.25)
    campaign = services.campaign_create(user=user, name="bench", goal="retain", budget=budget, channels=channels,
                                        incentive_cost=0.5, margin=0.4, holdout_share=0.1,
                                        segment_caps={"Champions": args.select // 20})
    frame, _ = stage("scoring read: audience_frame (5 selectors, joined)", lambda: services.audience_frame(campaign),
                     results)
    inputs = services.plan_inputs(campaign)
    plan = stage("allocation: compute_plan (3 channels, naive rules, segments, holdout)",
                 lambda: services.compute_plan(frame, inputs, set()), results)
    profit, spend, _ = pipeline.option_values(frame["uplift"].to_numpy(), frame["baseline"].to_numpy(),
                                              frame["revenue_uplift"].to_numpy(), inputs)
    eligible = frame["group"].to_numpy() != "sleeping_dog"
    alloc = stage("  of which pipeline.allocate alone", lambda: pipeline.allocate(profit, spend, eligible, budget),
                  results)
    t = plan["summary"]["totals"]
    total = results["scoring read: audience_frame (5 selectors, joined)"] + results[
        "allocation: compute_plan (3 channels, naive rules, segments, holdout)"]
    print(f"scoring read + allocation: {total:.2f} s for {len(frame):,} customers; selected {t['selected']:,} "
          f"(holdout {t['holdout']:,}), spend {t['spend']:,.0f} of {budget:,.0f}, expected profit {t['profit']:,.0f}, "
          f"LP bound {t['lp_bound']:,.0f}; bare allocate (no caps) {alloc.profit:,.0f} of {alloc.lp_bound:,.0f}",
          flush=True)
    if not args.no_store:
        stage(f"full plan_campaign (read, allocate, {t['contacts']:,} messages, target rows)",
              lambda: services.plan_campaign(campaign, user=user), results)


if __name__ == "__main__":
    main()
