"""Job progress for every Celery task: the Job row is the record, the `jobs` group the live feed.

A task is written as a plain function taking a JobReporter and the job's params:

    @job_task(name="mlops.recompute_customer_first_seen")
    def recompute_customer_first_seen(reporter: JobReporter, batch_size: int = 500) -> dict:
        reporter.report(50, "half way")
        return {"updated": 12}

and queued with `submit_job(recompute_customer_first_seen, params, user)`. The wrapper
marks the job running, then succeeded with the returned dict as its result, or failed
with the error; each change is pushed to `/ws/jobs/`.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .consumers import JOBS_GROUP
from .models import Job

logger = logging.getLogger(__name__)

State = Job.State


def job_payload(job: Job) -> dict[str, Any]:
    """What the Jobs page and the websocket show of a job."""
    return {
        "id": job.pk,
        "kind": job.kind,
        "state": job.state,
        "state_display": job.get_state_display(),
        "progress": job.progress,
        "message": job.message,
        "error": job.error,
        "result": job.result,
        "created_by": job.created_by.username if job.created_by_id and job.created_by else None,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def broadcast(job: Job) -> None:
    """Push the job's state to every open Jobs page. Progress must never break the work."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(JOBS_GROUP, {"type": "job.progress", "job": job_payload(job)})
    except Exception:
        logger.warning("could not push progress of job %s", job.pk, exc_info=True)


def _save(job: Job, **fields: Any) -> Job:
    for name, value in fields.items():
        setattr(job, name, value)
    job.save(update_fields=list(fields))
    broadcast(job)
    return job


class JobReporter:
    """Handed to a task body: writes progress to the Job row and pushes it live."""

    def __init__(self, job: Job) -> None:
        self.job = job

    def report(self, progress: int, message: str = "") -> None:
        _save(self.job, progress=max(0, min(100, int(progress))), message=message[:500])

    def step(self, done: int, total: int, message: str = "") -> None:
        """Progress as done/total of the work."""
        self.report(100 * done // total if total else 100, message)


def report(job: Job, progress: int, message: str = "") -> None:
    JobReporter(job).report(progress, message)


def start_job(kind: str, params: dict[str, Any] | None = None, user=None) -> Job:
    """A pending Job row, shown at once on the Jobs page."""
    job = Job.objects.create(kind=kind, params=params or {}, created_by=user if getattr(user, "pk", None) else None)
    broadcast(job)
    return job


def submit_job(task: Task, params: dict[str, Any] | None = None, user=None) -> Job:
    """Create the job and queue its task once the surrounding transaction commits.

    The task id is chosen here so the row names its task before any worker sees it.
    """
    job = start_job(task.name, params, user)
    job.task_id = str(uuid.uuid4())
    job.save(update_fields=["task_id"])
    transaction.on_commit(lambda: task.apply_async(args=[job.pk], task_id=job.task_id))
    return job


def mark_running(job: Job, task_id: str | None) -> Job:
    fields: dict[str, Any] = {"state": State.RUNNING, "started_at": timezone.now(), "error": "", "progress": 0}
    if task_id:
        fields["task_id"] = task_id
    return _save(job, **fields)


def mark_succeeded(job: Job, result: dict[str, Any] | None) -> Job:
    return _save(
        job, state=State.SUCCEEDED, progress=100, result=result or {}, finished_at=timezone.now(), message="Done"
    )


def mark_failed(job: Job, error: str) -> Job:
    return _save(job, state=State.FAILED, error=error, finished_at=timezone.now(), message="Failed")


class JobTask(Task):
    """Base for job tasks: late acks (a crashed worker's job is redelivered), time limits.

    The soft limit raises SoftTimeLimitExceeded inside the task, so the job is marked
    failed before the hard limit kills the process (prefork pool; solo/threads ignore both).
    """

    acks_late = True
    reject_on_worker_lost = True
    soft_time_limit = settings.CELERY_TASK_SOFT_TIME_LIMIT
    time_limit = settings.CELERY_TASK_TIME_LIMIT
    max_retries = 0


def job_task(name: str, **task_options: Any) -> Callable[[Callable[..., dict | None]], Task]:
    """Turn `fn(reporter, **params) -> dict | None` into a Celery task taking a job id."""

    def decorator(fn: Callable[..., dict | None]) -> Task:
        @shared_task(bind=True, base=JobTask, name=name, **task_options)
        @functools.wraps(fn)
        def run(self: Task, job_id: int) -> dict | None:
            # Claim the job under a row lock: a redelivered message for a finished job,
            # or a duplicate arriving while another worker runs it, does nothing.
            with transaction.atomic():
                job = Job.objects.select_for_update().filter(pk=job_id).first()
                if job is None:
                    logger.warning("job %s vanished before its task ran", job_id)
                    return None
                if job.state == State.SUCCEEDED:
                    return job.result
                if job.state == State.RUNNING and job.task_id and job.task_id != self.request.id:
                    return None
                mark_running(job, self.request.id)
            try:
                result = fn(JobReporter(job), **job.params)
            except SoftTimeLimitExceeded:
                mark_failed(job, f"Timed out after {self.soft_time_limit} s.")
                raise
            except Exception as error:
                mark_failed(job, f"{type(error).__name__}: {error}")
                raise
            mark_succeeded(job, result)
            return result

        return run

    return decorator
