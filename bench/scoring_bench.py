"""Batch scoring spread over Celery workers: 1 vs 2 worker processes, and the score write alone (ORM vs COPY).

One command::

    .venv/bin/python bench/scoring_bench.py [--customers 100000] [--chunk-size N] [--keep-db]

1. Recreates a scratch PostgreSQL database ``rfm_scoring_bench`` owned by a login role of that name
   capped at 12 connections, generates ``--customers`` customers with the seeded generator (about
   10 transaction lines each), imports them and their campaign through the ordinary imports, and
   trains segmentation, CLTV, churn and uplift (their own chunked scoring runs in this process).
2. For 1 and then 2 real ``celery -A rfm_portal worker`` processes (prefork, concurrency 1 each, on
   the Redis db of REDIS_URL, default db 8) runs the "score all customers" job (``mlops.score_version``)
   of the CLTV, churn and uplift versions: the job's worker claims chunks from one end while the other
   worker takes them from the queue. Prints per model the job's wall time (started → finished, as the
   Job row records it), rows/s, the CPU seconds the chunks used, the worker processes that did chunks,
   the speed-up 1 → 2 and the 1-minute load average at that moment.
3. The score write alone, on the same rows: ORM ``bulk_create`` (as the services wrote before) vs
   ``copy_rows`` (binary COPY), for ChurnScore (two JSON fields) and CLTVScore.

Segmentation has no "score all customers" run (its scores are quintile ranks among all customers and
the fit's own cluster labels, so its scoring is its fit); embeddings store no per-customer rows.
The database is dropped at the end (unless ``--keep-db``); workers are always stopped.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serving_load_bench import PG_ADMIN_URL, recreate_database  # noqa: E402 - bench/ is on sys.path as the script's dir

DATABASE = "rfm_scoring_bench"
CONN_LIMIT = 12
KINDS = ("cltv", "churn", "uplift")
JOB_TIMEOUT = 3600


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'DROP ROLE IF EXISTS "{name}"')


def start_workers(n: int, env: dict[str, str], logs: Path) -> list[subprocess.Popen]:
    procs = []
    for i in range(n):
        command = [sys.executable, "-m", "celery", "-A", "rfm_portal", "worker", "--pool", "prefork",
                   "--concurrency", "1", "--hostname", f"bench{i}@scoring-bench", "--loglevel", "WARNING",
                   "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
        with open(logs / f"worker{i}.log", "ab") as log:
            procs.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True))
    return procs


def stop_workers(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def wait_for_workers(n: int, timeout: float = 180) -> None:
    from rfm_portal.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0) or []) >= n:
            return
    raise RuntimeError(f"{n} worker(s) did not answer within {timeout} s")


def prepare(customers: int, seed: int) -> dict[str, object]:
    from django.core.management import call_command

    from churn import services as churn_services
    from cltv import services as cltv_services
    from rfm_portal.customers.generator import generate, write_outputs
    from rfm_portal.customers.services import import_campaign_history, import_transactions
    from segmentation import services as segmentation_services
    from uplift import services as uplift_services

    call_command("migrate", verbosity=0)
    t0 = time.perf_counter()
    data = generate(customers, seed=seed)
    paths = write_outputs(data, tempfile.mkdtemp(prefix="scoring_bench_data_"), prefix="bench")
    job = import_transactions(paths["transactions"], file_name="bench.csv")
    assert job.status == "succeeded", job.message
    campaigns = import_campaign_history(paths["campaigns"], file_name="bench_campaigns.csv")
    print(f"generated and imported {customers:,} customers ({job.rows_inserted:,} lines, "
          f"{campaigns.rows_inserted:,} campaign rows) in {time.perf_counter() - t0:.0f} s", flush=True)
    versions: dict[str, object] = {}
    for kind, train in (("segmentation", segmentation_services.train_segmentation),
                        ("cltv", cltv_services.train_cltv_model),
                        ("churn", lambda: churn_services.train_churn_model()[0]),
                        ("uplift", lambda: uplift_services.train_uplift_model()[0])):
        t0 = time.perf_counter()
        versions[kind] = train()
        print(f"trained {kind} in {time.perf_counter() - t0:.0f} s (load {loadavg():.1f})", flush=True)
    return versions


def run_score_job(mv, chunk_size: int) -> dict[str, float]:
    from django.db.models import Sum

    from rfm_portal.mlops.models import Job, ScoringChunk, ScoringRun
    from rfm_portal.mlops.progress import submit_job
    from rfm_portal.mlops.tasks import score_version_task

    load_before = loadavg()
    job = submit_job(score_version_task, {"model_version_id": mv.pk, "chunk_size": chunk_size})
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.state in (Job.State.SUCCEEDED, Job.State.FAILED):
            break
        time.sleep(0.2)
    if job.state != Job.State.SUCCEEDED:
        raise RuntimeError(f"scoring job of {mv} ended {job.state}: {job.error}")
    run = ScoringRun.objects.get(pk=job.result["scoring_run"])
    chunks = ScoringChunk.objects.filter(run=run)
    sums = chunks.aggregate(cpu=Sum("cpu_seconds"), busy=Sum("seconds"))
    return {
        "wall": (job.finished_at - job.started_at).total_seconds(),
        "rows": job.result["rows"],
        "chunks": run.chunks_total,
        "workers": chunks.values("worker").distinct().count(),
        "cpu": float(sums["cpu"] or 0.0),
        "load": max(load_before, loadavg()),
    }


def write_step(model, version_kind: str, fields: tuple[str, ...], source_mv) -> dict[str, float]:
    """Write the rows of ``source_mv`` again under a scratch version: ORM bulk_create, then copy_rows."""
    from django.db import transaction

    from rfm_portal.core.bulk_write import copy_rows
    from rfm_portal.mlops.models import ModelVersion

    rows = list(model.objects.filter(model_version=source_mv).values_list(*fields))
    columns = {name: [row[i] for row in rows] for i, name in enumerate(fields)}
    out: dict[str, float] = {"rows": len(rows)}
    for method in ("orm", "copy"):
        scratch = ModelVersion.objects.create(kind=version_kind, version=1 if method == "orm" else 2)
        load = loadavg()
        wall, cpu = time.perf_counter(), time.process_time()
        with transaction.atomic():
            if method == "orm":  # as the services wrote their scores before (batches of 2,000)
                model.objects.bulk_create(
                    [model(model_version=scratch, **dict(zip(fields, row, strict=True))) for row in rows],
                    batch_size=2000)
            else:
                copy_rows(model, {"model_version_id": [scratch.pk] * len(rows), **columns})
        out[f"{method}_wall"] = time.perf_counter() - wall
        out[f"{method}_cpu"] = time.process_time() - cpu
        out[f"{method}_load"] = max(load, loadavg())
        assert model.objects.filter(model_version=scratch).count() == len(rows)
        scratch.delete()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="customers per chunk (default: customers / 20, at least 1,000)")
    parser.add_argument("--workers", default="1,2", help="worker process counts to compare")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    chunk_size = args.chunk_size or max(1_000, args.customers // 20)
    counts = [int(n) for n in args.workers.split(",")]

    url = recreate_database(DATABASE, CONN_LIMIT)
    var = tempfile.mkdtemp(prefix="scoring_bench_")
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/8"
    env = dict(os.environ, DATABASE_URL=url, REDIS_URL=redis_url, DEBUG="1", RFM_VAR_DIR=var,
               ARTIFACT_ROOT=str(Path(var) / "artifacts"), CHANNELS_PREFIX="rfm-scoring-bench",
               DB_POOL_MAX_SIZE="3", PYTHONPATH=str(ROOT), DJANGO_SETTINGS_MODULE="rfm_portal.settings")
    os.environ.update({**env, "DB_POOL_MAX_SIZE": "2"})
    import django

    django.setup()
    from churn.models import ChurnScore
    from cltv.models import CLTVScore
    from cltv.services import SCORE_COLUMNS
    from rfm_portal.celery import app

    procs: list[subprocess.Popen] = []
    results: dict[int, dict[str, dict[str, float]]] = {}
    try:
        print(f"machine: {os.cpu_count()} cores, load {loadavg():.2f}; {args.customers:,} customers, "
              f"chunks of {chunk_size:,}", flush=True)
        versions = prepare(args.customers, args.seed)
        for n in counts:
            app.control.purge()  # chunk messages queued while training ran in this process
            procs = start_workers(n, env, Path(var))
            wait_for_workers(n)
            results[n] = {}
            for kind in KINDS:
                results[n][kind] = r = run_score_job(versions[kind], chunk_size)
                print(f"{n} worker(s) {kind:7s}: {r['wall']:7.1f} s  {r['rows'] / r['wall']:8,.0f} rows/s  "
                      f"{r['rows']:,} rows in {r['chunks']} chunks by {r['workers']} process(es), "
                      f"chunk CPU {r['cpu']:.1f} s, load {r['load']:.1f}", flush=True)
            stop_workers(procs)
            procs = []
        print("\n| model | rows | 1 worker: s (rows/s) | 2 workers: s (rows/s) | speed-up | chunk CPU s 1 / 2 "
              "| load 1 / 2 |")
        print("|---|---|---|---|---|---|---|")
        for kind in KINDS:
            one, two = results[counts[0]][kind], results[counts[-1]][kind]
            print(f"| {kind} | {one['rows']:,} | {one['wall']:.1f} ({one['rows'] / one['wall']:,.0f}) | "
                  f"{two['wall']:.1f} ({two['rows'] / two['wall']:,.0f}) | {one['wall'] / two['wall']:.2f}× | "
                  f"{one['cpu']:.1f} / {two['cpu']:.1f} | {one['load']:.1f} / {two['load']:.1f} |")
        print("\nscore write alone (same rows, one transaction):")
        print("| rows of | rows | ORM bulk_create: s (CPU s) | COPY: s (CPU s) | speed-up (wall) | load |")
        print("|---|---|---|---|---|---|")
        for label, model, fields, mv in (
            ("ChurnScore", ChurnScore, ("customer_id", "probability", "risk_band", "top_contributions", "features",
                                        "scored_at"), versions["churn"]),
            ("CLTVScore", CLTVScore, ("customer_id", "first_purchase", "frequency", "recency", "T", "monetary",
                                      *SCORE_COLUMNS), versions["cltv"]),
        ):
            w = write_step(model, f"bench_write_{label.lower()}", fields, mv)
            print(f"| {label} | {w['rows']:,} | {w['orm_wall']:.2f} ({w['orm_cpu']:.2f}) | "
                  f"{w['copy_wall']:.2f} ({w['copy_cpu']:.2f}) | {w['orm_wall'] / w['copy_wall']:.1f}× | "
                  f"{w['orm_load']:.1f} / {w['copy_load']:.1f} |", flush=True)
        print(f"\nload average at the end: {Path('/proc/loadavg').read_text().strip()}")
    finally:
        stop_workers(procs)
        from django.db import connections

        connections.close_all()
        connections["default"].close_pool()
        if not args.keep_db:
            drop_database(DATABASE)


if __name__ == "__main__":
    main()
