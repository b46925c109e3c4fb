"""The tests' own job task: reports each step, and fails on request."""

from __future__ import annotations

from rfm_portal.mlops.progress import JobReporter, job_task

CALLS: list[int] = []


@job_task(name="tests.mlops.count_to")
def count_to(reporter: JobReporter, n: int = 4, fail_at: int | None = None) -> dict[str, int]:
    CALLS.append(reporter.job.pk)
    for i in range(1, n + 1):
        if i == fail_at:
            raise ValueError(f"step {i} went wrong")
        reporter.step(i, n, f"step {i} of {n}")
    return {"counted": n}


@job_task(name="tests.mlops.train_slowly")
def train_slowly(reporter: JobReporter, kind: str = "tests-slow", seconds: float = 120) -> dict[str, int]:
    """A training that registers its version, reports progress, then works for a long time (to be killed)."""
    import time

    from rfm_portal.mlops.services import start_model_version

    mv = start_model_version(kind, {"seconds": seconds})
    reporter.report(15, f"training v{mv.version}")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.1)
    return {"version": mv.version}


@job_task(name="tests.mlops.report_in_transaction")
def report_in_transaction(reporter: JobReporter) -> dict:
    """Reports progress inside its own transaction and looks at the Job row from another connection."""
    from django.db import connection, transaction
    from django.utils import timezone

    from rfm_portal.mlops.models import Job

    from .helpers import run_in_threads

    def progress_seen_elsewhere() -> int:
        return Job.objects.get(pk=reporter.job.pk).progress

    def heartbeat_elsewhere() -> int:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")  # a lock held by the task would fail this
            return Job.objects.filter(pk=reporter.job.pk).update(heartbeat_at=timezone.now())

    with transaction.atomic():
        reporter.report(40, "inside the transaction")
        seen, beats = run_in_threads([progress_seen_elsewhere, heartbeat_elsewhere])
    return {"seen": seen, "beats": beats if isinstance(beats, int) else repr(beats)}
