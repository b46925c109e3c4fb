"""Server time and HTML size of every page a logged-in user opens, on a database of N generated customers.

Builds (or with ``--reuse`` reuses) the scratch database ``rfm_pages_bench_<N>``: the repository's generator
(``rfm_portal.customers.generator``, continuous acquisition, as the demo) writes N customers' transactions and
their randomised past campaign, both imported through the product's import service, then every model is trained
through the product's services: segmentation, CLTV, churn, uplift and embeddings. Uplift is trained with a lighter
``UpliftConfig`` (``--uplift-trees`` trees, ``--uplift-bootstrap`` T-learner refits, 2 nuisance folds, 60 boosting
rounds) because its default took 758 s at 100k, and embeddings with ``--embedding-epochs`` (default 3, the product's
default is 15); both still score every customer, which is what the pages read. A campaign is planned so that the
campaign pages have a plan and targets.

Then every navigation page and the detail pages behind them (customer table with its sorts and filters,
customer-360, segments, CLTV, churn with the at-risk and win-back lists, uplift, lookalikes, campaigns,
live feed, models, jobs, imports, API docs, the admin pages as an admin) are fetched through Django's test client
(the whole request: middleware, view, template) as the analyst, and as the admin for admin pages: one warm-up
request, then ``--repeat`` timed ones. Prints per page the median server time, the HTML bytes and the status, the
pages over the budget (300 ms, 500 KB), and the load average.

Run from the repository root (PostgreSQL on localhost)::

    .venv/bin/python bench/pages_bench.py --customers 100000            # build, measure, drop
    .venv/bin/python bench/pages_bench.py --customers 100000 --keep     # keep the database for --reuse
    .venv/bin/python bench/pages_bench.py --customers 100000 --reuse --keep
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BUDGET_MS = 300.0
BUDGET_BYTES = 500_000


def _admin_url(base_url: str) -> str:
    return base_url.rsplit("/", 1)[0] + "/postgres"


def database_exists(base_url: str, name: str) -> bool:
    import psycopg

    with psycopg.connect(_admin_url(base_url), autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def recreate_database(base_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(_admin_url(base_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(base_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(_admin_url(base_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def build(n: int, seed: int, uplift_trees: int, uplift_bootstrap: int, embedding_epochs: int) -> dict[str, float]:
    """Generate, import and train everything; returns the seconds of each stage."""
    from django.conf import settings
    from django.core.management import call_command

    from rfm_portal.customers import generator
    from rfm_portal.customers.services import import_campaign_history, import_transactions

    stages: dict[str, float] = {}
    call_command("migrate", interactive=False, verbosity=0)
    out = Path(settings.VAR_DIR) / f"pages_bench_{n}"
    began = time.perf_counter()
    data = generator.generate(n, seed, params=generator.GeneratorParams(acquisition_share=1.0))
    paths = generator.write_outputs(data, out, prefix="bench")
    stages["generate"] = time.perf_counter() - began
    began = time.perf_counter()
    job = import_transactions(paths["transactions"], file_name=paths["transactions"].name)
    if job.status != "succeeded":
        raise SystemExit(f"import failed: {job.message}")
    stages["import transactions"] = time.perf_counter() - began
    began = time.perf_counter()
    job = import_campaign_history(paths["campaigns"], file_name=paths["campaigns"].name)
    if job.status != "succeeded":
        raise SystemExit(f"campaign import failed: {job.message}")
    stages["import campaigns"] = time.perf_counter() - began
    print(f"generated and imported {n:,} customers: " + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items()),
          flush=True)

    from churn.services import train_churn_model
    from cltv.services import train_cltv_model
    from embeddings.services import train_embeddings_model
    from segmentation.services import train_segmentation
    from uplift.pipeline import UpliftConfig
    from uplift.services import train_uplift_model

    light_uplift = UpliftConfig(forest_trees=uplift_trees, bootstrap=uplift_bootstrap, nuisance_cv=2, gbm_iter=60)
    for name, train in (("segmentation", train_segmentation), ("cltv", train_cltv_model),
                        ("churn", train_churn_model), ("uplift", lambda: train_uplift_model(config=light_uplift)),
                        ("embeddings", lambda: train_embeddings_model(epochs=embedding_epochs))):
        began = time.perf_counter()
        train()
        stages[f"train {name}"] = time.perf_counter() - began
        print(f"trained {name} in {stages[f'train {name}']:.1f} s", flush=True)
    for path in paths.values():
        path.unlink(missing_ok=True)
    return stages


def ensure_fixtures() -> dict[str, Any]:
    """Users, a planned campaign and ids for the detail pages (idempotent, so --reuse works)."""
    from campaigns.models import Campaign
    from campaigns.services import CampaignError, campaign_create, plan_campaign
    from rfm_portal.accounts import services as account_services
    from rfm_portal.accounts.models import User
    from rfm_portal.customers.models import Customer, ImportJob, Transaction
    from rfm_portal.mlops.models import ModelVersion

    analyst = account_services.demo_user_ensure(username="bench-analyst", role=User.Role.ANALYST,
                                                password="bench-analyst-password")
    admin = account_services.demo_user_ensure(username="bench-admin", role=User.Role.ADMIN,
                                              password="bench-admin-password")
    campaign = Campaign.objects.filter(name="Pages bench").first()
    if campaign is None:
        campaign = campaign_create(user=User.objects.get(username=admin.username), name="Pages bench",
                                   goal="retain", budget=5000.0)
    if not campaign.plan:
        began = time.perf_counter()
        try:
            campaign = plan_campaign(campaign, user=User.objects.get(username=admin.username))
            print(f"planned the bench campaign in {time.perf_counter() - began:.1f} s", flush=True)
        except CampaignError as error:  # e.g. --reuse of a database whose models are still training
            print(f"bench campaign not planned: {error}", flush=True)
    # The customer with the most transaction lines: the heaviest customer-360 page.
    from django.db.models import Count

    busiest = (Transaction.objects.values("customer_id").annotate(n=Count("id")).order_by("-n", "customer_id")
               .first())
    return {
        "analyst": User.objects.get(username=analyst.username),
        "admin": User.objects.get(username=admin.username),
        "customer": Customer.objects.get(pk=busiest["customer_id"]).external_id,
        "typical_customer": Customer.objects.order_by("pk").values_list("external_id", flat=True)[
            Customer.objects.count() // 2],
        "import_job": ImportJob.objects.order_by("pk").first().pk,
        "campaign": campaign.pk,
        "model_versions": {mv.kind: mv.pk for mv in ModelVersion.objects.filter(status="active").order_by("pk")},
        "country": Customer.objects.exclude(country="").values_list("country", flat=True).order_by("pk").first(),
    }


def page_list(d: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(name, path, as admin) of every page."""
    from django.urls import reverse

    from rfm_portal.dashboard.navigation import CAPABILITIES

    pages = [(f"nav: {cap.title}", reverse(cap.url_name), cap.admin_only) for cap in CAPABILITIES]
    customers = reverse("customers:list")
    pages += [
        ("customers ?order=-revenue", customers + "?order=-revenue", False),
        ("customers ?order=revenue", customers + "?order=revenue", False),
        ("customers ?order=-orders", customers + "?order=-orders", False),
        ("customers ?order=-last_purchase", customers + "?order=-last_purchase", False),
        ("customers ?order=-churn_risk", customers + "?order=-churn_risk", False),
        ("customers page 1000 (default order)", customers + "?page=1000", False),
        ("customers ?order=-churn_risk page 1000", customers + "?order=-churn_risk&page=1000", False),
        ("customers ?order=clv_p50 (lowest first)", customers + "?order=clv_p50", False),
        ("customers ?segments=At Risk&min_clv=100", customers + "?segments=At+Risk&min_clv=100", False),
        ("customers ?countries=<c>&order=-revenue", customers + f"?countries={d['country']}&order=-revenue", False),
        ("customers ?search=1&order=-revenue", customers + "?search=1&order=-revenue", False),
        ("customers ?min_clv=100&order=-revenue", customers + "?min_clv=100&order=-revenue", False),
        ("customer-360 (busiest)", reverse("customers:detail", args=[d["customer"]]), False),
        ("customer-360 (typical)", reverse("customers:detail", args=[d["typical_customer"]]), False),
        ("import detail", reverse("customers:import-detail", args=[d["import_job"]]), False),
        ("segments clusters", reverse("segmentation:clusters"), False),
        ("segments k-search", reverse("segmentation:k-search"), False),
        ("segments migration", reverse("segmentation:migration"), False),
        ("segments members", reverse("segmentation:members"), False),
        ("churn at-risk", reverse("churn:at-risk"), False),
        ("churn at-risk ?order=-churn_risk", reverse("churn:at-risk") + "?order=-churn_risk", False),
        ("churn at-risk page 100", reverse("churn:at-risk") + "?page=100", False),
        ("churn win-back", reverse("churn:win-back"), False),
        ("churn win-back ?order=-clv_p50", reverse("churn:win-back") + "?order=-clv_p50", False),
        ("uplift members", reverse("uplift:members"), False),
        ("lookalikes builder", reverse("embeddings:builder"), False),
        ("campaign new (planner form)", reverse("campaigns:new"), False),
        ("campaign edit (planner form)", reverse("campaigns:edit", args=[d["campaign"]]), False),
        ("campaign detail (planned)", reverse("campaigns:detail", args=[d["campaign"]]), False),
        ("campaign targets", reverse("campaigns:targets", args=[d["campaign"]]), False),
        ("campaign templates", reverse("campaigns:templates"), False),
        ("live wall", reverse("streaming:wall"), False),
        ("api docs (swagger)", reverse("api-docs"), False),
        ("api redoc", reverse("api-redoc"), False),
        ("api schema", reverse("api-schema"), False),
    ]
    pages += [(f"model version: {kind}", reverse("mlops:model-detail", args=[pk]), False)
              for kind, pk in sorted(d["model_versions"].items())]
    pages += [(f"model card: {kind}", reverse("mlops:model-card", args=[pk]), False)
              for kind, pk in sorted(d["model_versions"].items())]
    return pages


def _backend_cpu_seconds() -> float:
    """CPU seconds used so far by this connection's PostgreSQL backend (same machine: /proc/<pid>/stat)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # PostgreSQL on another machine: database CPU unknown
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def profile(d: dict[str, Any], only: str, lines: int = 30) -> None:
    """cProfile one request of each page matching ``only`` (after a warm-up) and print where the time goes,
    with the SQL statements and their times (DEBUG is on in the bench)."""
    import cProfile
    import pstats

    from django.db import connection, reset_queries
    from django.test import Client

    clients = {False: Client(), True: Client()}
    clients[False].force_login(d["analyst"])
    clients[True].force_login(d["admin"])
    for name, path, as_admin in page_list(d):
        if only not in name and only not in path:
            continue
        client = clients[as_admin]
        client.get(path)
        reset_queries()
        profiler = cProfile.Profile()
        profiler.enable()
        response = client.get(path)
        _ = b"".join(response.streaming_content) if response.streaming else response.content
        profiler.disable()
        print(f"\n=== {name} ({path}) ===")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(lines)
        for query in sorted(connection.queries, key=lambda q: -float(q["time"]))[:12]:
            print(f"{float(query['time']) * 1000:8.1f} ms  {query['sql'][:600]}")


def measure(d: dict[str, Any], repeat: int, only: str = "") -> list[dict[str, Any]]:
    """Wall time per request (the server time a user waits for) and CPU time (this process + its PostgreSQL
    backend), which holds up better than wall time on a loaded machine."""
    from django.test import Client

    analyst, admin = Client(), Client()
    analyst.force_login(d["analyst"])
    admin.force_login(d["admin"])
    results = []
    for name, path, as_admin in page_list(d):
        if only and only not in name and only not in path:
            continue
        client = admin if as_admin else analyst
        times, cpus, size, status = [], [], 0, 0
        for i in range(repeat + 1):
            db_cpu = _backend_cpu_seconds()
            cpu = time.process_time()
            began = time.perf_counter()
            response = client.get(path)
            body = b"".join(response.streaming_content) if response.streaming else response.content
            elapsed = time.perf_counter() - began
            cpu = time.process_time() - cpu + _backend_cpu_seconds() - db_cpu
            if i:  # the first request warms per-process caches (models, templates): not counted
                times.append(elapsed)
                cpus.append(cpu)
            size, status = len(body), response.status_code
        ms = statistics.median(times) * 1000
        cpu_ms = statistics.median(cpus) * 1000
        over = [w for w, bad in (("time", ms > BUDGET_MS), ("size", size > BUDGET_BYTES)) if bad]
        results.append({"name": name, "path": path, "ms": ms, "min_ms": min(times) * 1000, "cpu_ms": cpu_ms,
                        "bytes": size, "status": status, "over": over})
        print(f"{name:<44} {ms:8.1f} ms (min {min(times) * 1000:7.1f}, cpu {cpu_ms:7.1f})  {size / 1000:8.1f} KB  "
              f"{status}"
              f"{'  OVER ' + '+'.join(over) if over else ''}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--repeat", type=int, default=5, help="timed requests per page (after one warm-up)")
    parser.add_argument("--reuse", action="store_true", help="reuse rfm_pages_bench_<N> if it exists")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards (default: drop it)")
    parser.add_argument("--only", default="", help="measure only pages whose name or path contains this")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the pages matching --only (one request each) instead of timing them")
    parser.add_argument("--uplift-trees", type=int, default=48)
    parser.add_argument("--uplift-bootstrap", type=int, default=5)
    parser.add_argument("--embedding-epochs", type=int, default=3)
    args = parser.parse_args()

    base_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rfm_pages")
    name = f"rfm_pages_bench_{args.customers}"
    reuse = args.reuse and database_exists(base_url, name)
    if not reuse:
        recreate_database(base_url, name)
    os.environ["DATABASE_URL"] = base_url.rsplit("/", 1)[0] + f"/{name}"
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("SECRET_KEY", "pages-bench-secret-key-not-for-production-0123456789abcdef")
    os.environ.setdefault("RFM_VAR_DIR", str(ROOT / "var" / "bench"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rfm_portal.settings")
    import django

    django.setup()
    from django.conf import settings

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    from django.core.management import call_command
    from django.db import connection

    try:
        if reuse:
            call_command("migrate", interactive=False, verbosity=0)  # new migrations (e.g. indexes) apply
            print(f"reusing database {name}", flush=True)
        else:
            stages = build(args.customers, args.seed, args.uplift_trees, args.uplift_bootstrap, args.embedding_epochs)
            print("build: " + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items()), flush=True)
        fixtures = ensure_fixtures()
        with connection.cursor() as cursor:  # what autovacuum does soon after a bulk load
            cursor.execute("ANALYZE")
        from rfm_portal.customers.models import Customer, Transaction

        print(f"data: {Customer.objects.count():,} customers, {Transaction.objects.count():,} transaction lines; "
              f"load average before measuring {loadavg()}", flush=True)
        if args.profile:
            profile(fixtures, args.only)
            return
        results = measure(fixtures, args.repeat, args.only)
        over = [r for r in results if r["over"]]
        print(f"\n{len(results)} pages, median of {args.repeat}; budget {BUDGET_MS:.0f} ms and "
              f"{BUDGET_BYTES / 1000:.0f} KB; over budget: {len(over)}"
              + "".join(f"\n  {r['name']}: {r['ms']:.0f} ms, {r['bytes'] / 1000:.0f} KB" for r in over))
        if results:
            print(f"slowest: {max(results, key=lambda r: r['ms'])['name']}  "
                  f"largest: {max(results, key=lambda r: r['bytes'])['name']}")
        print(f"load average after measuring {loadavg()}")
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database(base_url, name)
            print(f"dropped {name}")


if __name__ == "__main__":
    main()
