"""Work run in this process (not through Celery) but recorded as a Job, so the Jobs page lists it too.

`setup_demo` trains the first models this way: the new user sees those trainings on the Jobs page
with their progress history and a link to the model version each made.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .models import ModelVersion
from .progress import JobReporter, mark_failed, mark_running, mark_succeeded, start_job


def run_recorded(kind: str, work: Callable[[JobReporter], Any], user=None) -> Any:
    """Run `work(reporter)` as Job `kind`; a ModelVersion it returns (or the first of a list/tuple) is linked."""
    job = start_job(kind, {}, user)
    mark_running(job, None)
    reporter = JobReporter(job)
    try:
        result = work(reporter)
    except Exception as error:
        mark_failed(job, f"{type(error).__name__}: {error}")
        raise
    made = result[0] if isinstance(result, tuple | list) and result else result
    summary: dict[str, Any] = {}
    if isinstance(made, ModelVersion):
        job.model_version = made
        job.save(update_fields=["model_version"])
        summary = {"model_version_id": made.pk, "kind": made.kind, "version": made.version}
    mark_succeeded(job, summary)
    return result


def call_with_reporter(fn: Callable[..., Any], reporter: JobReporter) -> Any:
    """`fn(reporter=reporter)` when fn takes a reporter (progress on the Jobs page), else `fn()`."""
    if "reporter" in inspect.signature(fn).parameters:
        return fn(reporter=reporter)
    return fn()
