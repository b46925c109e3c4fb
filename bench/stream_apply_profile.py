"""Where a consumer's batch time goes: ``apply_events`` in-process, batch by batch, with the time split.

For each batch size: wall time per batch, this process's CPU per batch, the PostgreSQL backend's CPU
per batch (from /proc), and the time spent waiting for the database (round trips counted); plus the
top functions by cumulative time (cProfile) of a further run of the largest size (apart, so the
profiler's overhead is not in the figures). Simulated events (``streaming.producer``)
on the caller's database (DATABASE_URL; needs data and active models, e.g. ``manage.py setup_demo``);
rows written are deleted afterwards.

    .venv/bin/python bench/stream_apply_profile.py [--sizes 10 50 250] [--events 1500]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rfm_portal.settings")
os.environ.setdefault("DEBUG", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 250])
    parser.add_argument("--events", type=int, default=1500, help="events per batch size")
    args = parser.parse_args()
    import django
    import psycopg

    django.setup()
    from django.db import connection

    from bench.stream_bench import cpu_seconds
    from rfm_portal.customers.models import Customer, Transaction
    from streaming.models import LiveRisk, RiskChange, StreamEvent
    from streaming.producer import Simulator, load_history
    from streaming.services import apply_events

    base = set(Customer.objects.values_list("pk", flat=True))
    history, clock_start = load_history()
    sim = Simulator(history, clock_start, seed=11)
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        backend = cur.fetchone()[0]
    waits = {"n": 0, "s": 0.0}
    # Every statement, the ORM's and the bulk ones alike, goes through psycopg's Cursor.execute
    # (commits through the connection: one more round trip per batch, not counted).
    execute = psycopg.Cursor.execute

    def timed(self, *a, **k):
        t = time.perf_counter()
        try:
            return execute(self, *a, **k)
        finally:
            waits["n"] += 1
            waits["s"] += time.perf_counter() - t

    psycopg.Cursor.execute = timed

    apply_events(sim.events(20))  # warm: models loaded, imports done
    rows = []
    profile = cProfile.Profile()
    try:
        for size in args.sizes:
            n_batches = max(1, args.events // size)
            batches = [sim.events(size) for _ in range(n_batches)]
            waits.update(n=0, s=0.0)
            wall0, cpu0, pg0 = time.perf_counter(), time.process_time(), cpu_seconds(backend)
            for batch in batches:
                apply_events(batch)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            pg = cpu_seconds(backend) - pg0
            rows.append((size, 1000 * wall / n_batches, 1000 * cpu / n_batches, 1000 * pg / n_batches,
                         waits["n"] / n_batches, 1000 * waits["s"] / n_batches, size * n_batches / wall,
                         os.getloadavg()[0]))
        # the profile: more batches of the largest size, apart (the profiler's overhead is not in the figures)
        size = max(args.sizes)
        for batch in [sim.events(size) for _ in range(max(1, args.events // size))]:
            profile.enable()
            apply_events(batch)
            profile.disable()
    finally:
        RiskChange.objects.all().delete()
        LiveRisk.objects.all().delete()
        StreamEvent.objects.all().delete()
        Transaction.objects.filter(import_job__isnull=True).delete()
        Customer.objects.exclude(pk__in=base).delete()
    print("| batch | wall / batch | consumer CPU / batch | PostgreSQL CPU / batch | statements / batch | "
          "waiting on them / batch | events/s (one process) | load avg |")
    print("|---|---|---|---|---|---|---|---|")
    for size, wall, cpu, pg, q, wait, eps, load in rows:
        print(f"| {size} | {wall:.1f} ms | {cpu:.1f} ms | {pg:.1f} ms | {q:.1f} | {wait:.1f} ms | {eps:.0f} | "
              f"{load:.1f} |")
    print("(statements: every cursor execute, ORM and bulk; plus the commit)")
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(35)
    if os.environ.get("PROFILE_DUMP"):
        profile.dump_stats(os.environ["PROFILE_DUMP"])
    print(out.getvalue())


if __name__ == "__main__":
    main()
