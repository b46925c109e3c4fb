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
