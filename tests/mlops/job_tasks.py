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
