"""Job progress for every Celery task: the Job row is the record, the `jobs` group the live feed.

A task is written as a plain function taking a JobReporter and the job's params:

    @job_task(name="mlops.recompute_customer_first_seen")
    def recompute_customer_first_seen(reporter: JobReporter, batch_size: int = 500) -> dict:
        reporter.report(50, "half way")
        return {"updated": 12}

and queued with `submit_job(recompute_customer_first_seen, params, user)`. The wrapper
marks the job running, then succeeded with the returned dict as its result, or failed
with the error; each change is pushed to `/ws/jobs/`.

No job hangs: while it runs, a thread beats `heartbeat_at` every JOB_HEARTBEAT_SECONDS.
`reap_stale_jobs` (beat, every JOB_REAPER_INTERVAL_SECONDS, and at each worker start)
fails a running job whose heartbeat is older than JOB_STALE_AFTER_SECONDS (its worker
died: kill -9, out of memory, a lost machine) together with the model version it was
training, and a job still pending after JOB_PENDING_TIMEOUT_SECONDS. A message the broker
redelivers later (late acks) finds the job finished and does nothing, so no job runs twice.
A job that cannot be queued (broker down) is failed at once: JobQueueUnavailable.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connections, transaction
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerOperationalError

from .consumers import JOBS_GROUP
from .models import Job, ModelVersion

logger = logging.getLogger(__name__)

State = Job.State

# The job whose task body runs in this context: lets the registry link a new model version
# to its job (start_model_version), so a dead job's version can be failed with it.
current_job: contextvars.ContextVar[Job | None] = contextvars.ContextVar("current_job", default=None)

QUEUE_UNAVAILABLE = "The job queue is unavailable, so the job was not started. Try again in a minute."


class JobQueueUnavailable(RuntimeError):
    """The broker refused the task (e.g. Redis unreachable); the job has been marked failed."""

    retry_after = 30

    def __init__(self, job: Job, cause: BaseException) -> None:
        super().__init__(QUEUE_UNAVAILABLE)
        self.job = job
        self.cause = cause


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


def _on_own_connection(work: Callable[[], Any], timeout: float = 30) -> None:
    """Run a short write on a thread of its own, so on its own connection, committed at once."""

    def run() -> None:
        try:
            work()
        except Exception:
            logger.warning("progress write failed", exc_info=True)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name="job-progress", daemon=True)
    thread.start()
    thread.join(timeout)


class JobReporter:
    """Handed to a task body: writes progress to the Job row and pushes it live.

    A report made inside the task's own transaction (e.g. an import's all-or-nothing write)
    goes through a connection of its own: written on the task's connection it would stay
    invisible until the commit and hold the row lock the heartbeat thread then waits for.
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self._base_depth = len(transaction.get_connection().atomic_blocks)

    def report(self, progress: int, message: str = "") -> None:
        fields = {"progress": max(0, min(100, int(progress))), "message": message[:500], "heartbeat_at": timezone.now()}
        if len(transaction.get_connection().atomic_blocks) <= self._base_depth:
            _save(self.job, **fields)
            return
        for name, value in fields.items():
            setattr(self.job, name, value)
        job_id = self.job.pk
        if transaction.get_connection().vendor == "postgresql":
            _on_own_connection(lambda: Job.objects.filter(pk=job_id).update(**fields))
        # SQLite (embedded runs) has one writer at a time: the row catches up at the next report
        # outside the transaction; the live feed gets every report.
        broadcast(self.job)

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
    """Create the job and queue its task (once the surrounding transaction, if any, commits).

    The task id is chosen here so the row names its task before any worker sees it.
    Outside a transaction the task is queued at once and a broker failure raises
    JobQueueUnavailable (the job is failed first); inside one, it is queued on commit and
    a broker failure only fails the job, since the caller's work is already committed.
    """
    job = start_job(task.name, params, user)
    job.task_id = str(uuid.uuid4())
    job.save(update_fields=["task_id"])
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: _enqueue_or_fail(task, job, raise_error=False))
    else:
        _enqueue_or_fail(task, job, raise_error=True)
    return job


# What a failed publish raises: kombu's wrapper, or the socket error itself on some paths.
BROKER_ERRORS = (BrokerOperationalError, ConnectionError, OSError, TimeoutError)


def _enqueue_or_fail(task: Task, job: Job, *, raise_error: bool) -> None:
    try:
        task.apply_async(args=[job.pk], task_id=job.task_id)
    except BROKER_ERRORS as error:
        logger.error("could not queue job %s (%s): %s", job.pk, job.kind, error)
        mark_failed(job, f"{QUEUE_UNAVAILABLE} ({type(error).__name__}: {error})")
        if raise_error:
            raise JobQueueUnavailable(job, error) from error


def mark_running(job: Job, task_id: str | None) -> Job:
    now = timezone.now()
    fields: dict[str, Any] = {
        "state": State.RUNNING,
        "started_at": now,
        "heartbeat_at": now,
        "error": "",
        "progress": 0,
    }
    if task_id:
        fields["task_id"] = task_id
    return _save(job, **fields)


def mark_succeeded(job: Job, result: dict[str, Any] | None) -> Job:
    return _save(
        job, state=State.SUCCEEDED, progress=100, result=result or {}, finished_at=timezone.now(), message="Done"
    )


# Sent whenever a job is marked failed (by its task, the reaper or a down queue), so work
# linked to it (e.g. an ImportJob) can say so too.
job_failed = Signal()


def mark_failed(job: Job, error: str) -> Job:
    job = _save(job, state=State.FAILED, error=error, finished_at=timezone.now(), message="Failed")
    job_failed.send(sender=Job, job=job, error=error)
    return job


# --- Liveness: heartbeats and the reaper ----------------------------------------------


class Heartbeat:
    """A daemon thread that stamps the running job's heartbeat_at until stopped.

    It dies with its process, which is the point: a worker killed with -9 stops beating.
    """

    def __init__(self, job_id: int, interval: float | None = None) -> None:
        self.job_id = job_id
        self.interval = float(interval if interval is not None else settings.JOB_HEARTBEAT_SECONDS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"job-{job_id}-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    Job.objects.filter(pk=self.job_id, state=State.RUNNING).update(heartbeat_at=timezone.now())
                except Exception:  # a database blip: the next beat tries again
                    logger.warning("heartbeat of job %s failed", self.job_id, exc_info=True)
        finally:
            connections.close_all()  # this thread's own connection


def heartbeat_is_fresh(job: Job, now=None) -> bool:
    beat = job.heartbeat_at or job.started_at
    now = now or timezone.now()
    return beat is not None and now - beat < timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS)


def _fail_training_version(job: Job, reason: str) -> None:
    if job.model_version_id:
        failed = ModelVersion.objects.filter(pk=job.model_version_id, status=ModelVersion.Status.TRAINING).update(
            status=ModelVersion.Status.FAILED, error=reason
        )
        if failed:
            from .signals import model_training_failed

            failed_version = ModelVersion.objects.get(pk=job.model_version_id)
            model_training_failed.send(sender=ModelVersion, model_version=failed_version)


def fail_dead_job(job: Job, reason: str) -> Job:
    """Fail a job whose worker is gone, and the model version it was training (the active one is untouched)."""
    _fail_training_version(job, reason)
    return mark_failed(job, reason)


def reap_stale_jobs(now=None) -> dict[str, int]:
    """Fail running jobs without a recent heartbeat, long-pending jobs, and orphaned trainings.

    Safe to run anywhere, any number of times at once: each job is re-checked under its row lock.
    """
    now = now or timezone.now()
    stale_after = settings.JOB_STALE_AFTER_SECONDS
    stale_before = now - timedelta(seconds=stale_after)
    dead = Job.objects.filter(state=State.RUNNING).filter(
        Q(heartbeat_at__lt=stale_before) | Q(heartbeat_at__isnull=True, started_at__lt=stale_before)
    )
    pending_timeout = settings.JOB_PENDING_TIMEOUT_SECONDS
    forgotten = Job.objects.filter(state=State.PENDING, created_at__lt=now - timedelta(seconds=pending_timeout))
    counts = {"running": 0, "pending": 0, "model_versions": 0}
    for job_id in list(dead.values_list("pk", flat=True)):
        with transaction.atomic():
            job = Job.objects.select_for_update().filter(pk=job_id, state=State.RUNNING).first()
            if job is None or heartbeat_is_fresh(job, now):
                continue
            fail_dead_job(
                job,
                f"The worker running this job stopped (no sign of life for over {stale_after} s): it was "
                f"restarted, killed or ran out of memory. Nothing it had done was kept and the active model "
                f"is unchanged. Start the job again.",
            )
            counts["running"] += 1
    for job_id in list(forgotten.values_list("pk", flat=True)):
        with transaction.atomic():
            job = Job.objects.select_for_update().filter(pk=job_id, state=State.PENDING).first()
            if job is None:
                continue
            mark_failed(
                job,
                f"No worker picked this job up within {pending_timeout // 60} minutes: the job queue or its "
                f"workers were down. Check that a Celery worker is running, then start the job again.",
            )
            counts["pending"] += 1
    # A training with no live job beyond the longest a task may run (e.g. a killed management command).
    limit = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + stale_after)
    counts["model_versions"] = (
        ModelVersion.objects.filter(status=ModelVersion.Status.TRAINING, created_at__lt=limit)
        .exclude(jobs__state__in=[State.RUNNING, State.PENDING])
        .update(status=ModelVersion.Status.FAILED, error="The training stopped without finishing (its process died).")
    )
    if any(counts.values()):
        logger.warning("reaped stale jobs: %s", counts)
    return counts


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
            # Claim the job under a row lock. Late acks mean a message can come back (worker
            # lost, visibility timeout): a finished job, or one another live worker is
            # running, is left alone; one whose worker died is failed, never run twice.
            with transaction.atomic():
                job = Job.objects.select_for_update().filter(pk=job_id).first()
                if job is None:
                    logger.warning("job %s vanished before its task ran", job_id)
                    return None
                if job.state in (State.SUCCEEDED, State.FAILED):
                    logger.info("job %s is already %s; redelivered message ignored", job_id, job.state)
                    return job.result if job.state == State.SUCCEEDED else None
                if job.state == State.RUNNING:
                    if not heartbeat_is_fresh(job):
                        fail_dead_job(job, "The worker running this job stopped before finishing. Start it again.")
                    return None
                mark_running(job, self.request.id)
            token = current_job.set(job)
            try:
                with Heartbeat(job.pk):
                    result = fn(JobReporter(job), **job.params)
            except SoftTimeLimitExceeded:
                mark_failed(job, f"Timed out after {self.soft_time_limit} s.")
                raise
            except Exception as error:
                mark_failed(job, f"{type(error).__name__}: {error}")
                raise
            finally:
                current_job.reset(token)
            mark_succeeded(job, result)
            return result

        return run

    return decorator
