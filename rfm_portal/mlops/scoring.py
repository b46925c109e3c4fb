"""Batch scoring spread over Celery workers: every customer under one model version, in chunks.

A run (``ScoringRun``) splits the customers into chunks of consecutive pks (``ScoringChunk``) and
sends one ``mlops.score_chunk`` task per chunk as a Celery ``group``. Each chunk, wherever it runs,
loads the version's artifact (once per process, ``load_version``), reads its customers from the
database, scores them with the model's registered :class:`ChunkScorer` and replaces its score rows
(delete-then-``COPY``) in the one transaction that also holds the chunk's row lock.

The process that started the run (the training job, or a "score all customers" job) does not wait
idle for the group: it claims pending chunks itself, last first, while other workers take them from
the queue first first. So one worker process scores everything (no deadlock waiting on its own
subtasks, and no result backend needed), and each added worker process takes a share. The run ends
when every chunk is done; a failed chunk fails the run — the caller (the model's service) then fails
the version and deletes its rows, and the active version is never touched, since its rows are keyed
by another version. A chunk claimed twice (redelivered task, retry) finds itself done and skips; a
worker that dies mid-chunk rolls its transaction back and the chunk is pending again.

Without ``SELECT … SKIP LOCKED`` (SQLite, the embedded mode) or inside a transaction the chunks
would not be visible to other workers, so the same chunks run in this process one after another.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from rfm_portal.core.bulk_write import copy_rows

from .models import ModelVersion, ScoringChunk, ScoringRun
from .services import load_version

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.2


class ProgressReporter(Protocol):
    def report(self, progress: int, message: str = "") -> None: ...


class ScoringFailed(RuntimeError):
    """A chunk of a scoring run failed; the run is failed and its version must not be promoted."""


@dataclass
class ScoredChunk:
    """What a scorer returns for its customers: the score model's columns (``customer_id`` included;
    ``model_version_id`` is added here) and JSON-safe aggregates the model sums over chunks."""

    columns: dict[str, Sequence[Any]]
    summary: dict[str, Any] = field(default_factory=dict)


# scorer(version, loaded artifact, customer pks of the chunk in pk order, run params) -> ScoredChunk
ScoreFunction = Callable[[ModelVersion, Any, list[int], dict[str, Any]], ScoredChunk]


@dataclass(frozen=True)
class ChunkScorer:
    """How one model kind scores a chunk of customers and where its rows go.

    ``pk_align(version)``: chunk boundaries fall on multiples of it, for scorers whose random draws are
    seeded per block of pks (CLTV), so any chunking gives the same rows. ``params``: the run parameters of a
    plain "score all customers" run of a version (a training passes its own).
    """

    kind: str
    score_model: type[models.Model]
    score: ScoreFunction
    params: Callable[[ModelVersion], dict[str, Any]] = lambda mv: {}
    pk_align: Callable[[ModelVersion], int] = lambda mv: 1


_SCORERS: dict[str, ChunkScorer] = {}


def register_scorer(scorer: ChunkScorer) -> None:
    """Declared by each app (AppConfig.ready): the core never imports a capability app."""
    _SCORERS[scorer.kind] = scorer


def scorer_for(kind: str) -> ChunkScorer:
    try:
        return _SCORERS[kind]
    except KeyError:
        raise LookupError(f"no batch scorer is registered for model kind {kind!r}") from None


def scorable_kinds() -> list[str]:
    return sorted(_SCORERS)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --- planning ------------------------------------------------------------------------------------


def chunk_bounds(chunk_size: int, pk_align: int = 1) -> list[tuple[int, int, int]]:
    """(first pk, last pk, customers) of consecutive chunks of about ``chunk_size`` customers each.

    Computed in the database (one window query, one row per chunk back). The ranges cover every pk
    from the smallest to the largest customer, so they tile the customers with no gap or overlap.
    """
    from rfm_portal.customers.models import Customer

    table = connection.ops.quote_name(Customer._meta.db_table)
    pk = connection.ops.quote_name(Customer._meta.pk.column)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT MIN(id), COUNT(*) FROM (SELECT {pk} AS id, (ROW_NUMBER() OVER (ORDER BY {pk}) - 1) / %s AS b "
            f"FROM {table}) numbered GROUP BY b ORDER BY b",
            [int(chunk_size)],
        )
        starts = cursor.fetchall()
        cursor.execute(f"SELECT MAX({pk}) FROM {table}")
        (last_pk,) = cursor.fetchone()
    merged: list[list[int]] = []
    for first, count in starts:
        first = (int(first) // pk_align) * pk_align
        if merged and merged[-1][0] == first:
            merged[-1][1] += int(count)
        else:
            merged.append([first, int(count)])
    return [
        (first, (merged[i + 1][0] - 1) if i + 1 < len(merged) else int(last_pk), count)
        for i, (first, count) in enumerate(merged)
    ]


def plan_run(mv: ModelVersion, params: dict[str, Any] | None = None, *, chunk_size: int | None = None,
             job=None) -> ScoringRun:
    scorer = scorer_for(mv.kind)
    size = int(chunk_size or settings.SCORING_CHUNK_SIZE)
    if size < 1:
        raise ValueError("chunk_size must be at least 1")
    bounds = chunk_bounds(size, max(1, int(scorer.pk_align(mv))))
    run_params = {"scored_at": timezone.now().isoformat(), **(params or {})}
    with transaction.atomic():
        run = ScoringRun.objects.create(
            model_version=mv, job=job, params=run_params, chunk_size=size, chunks_total=len(bounds),
            customers_total=sum(b[2] for b in bounds),
        )
        ScoringChunk.objects.bulk_create([
            ScoringChunk(run=run, number=i, first_customer_id=first, last_customer_id=last, customers=count)
            for i, (first, last, count) in enumerate(bounds)
        ])
    return run


# --- one chunk -----------------------------------------------------------------------------------


def process_chunk(chunk_id: int) -> str:
    """Score and write one chunk if it is still pending and nobody holds it; returns its state then
    (``skipped`` when it was not this call's to do)."""
    from rfm_portal.customers.models import Customer

    started, cpu_started = time.monotonic(), time.process_time()
    with transaction.atomic():
        chunk = (
            ScoringChunk.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("run__model_version")
            .filter(pk=chunk_id, state=ScoringChunk.State.PENDING)
            .first()
        )
        if chunk is None or chunk.run.state != ScoringRun.State.RUNNING:
            return "skipped"
        run, mv = chunk.run, chunk.run.model_version
        first, last = chunk.first_customer_id, chunk.last_customer_id
        try:
            with transaction.atomic():
                scorer = scorer_for(mv.kind)
                pks = list(Customer.objects.filter(pk__range=(first, last)).order_by("pk").values_list("pk", flat=True))
                scored = scorer.score(mv, load_version(mv), pks, run.params) if pks else None
                old = scorer.score_model.objects.filter(model_version=mv, customer_id__gte=first, customer_id__lte=last)
                old.delete()
                written = 0
                if scored is not None:
                    ids = scored.columns["customer_id"]
                    if len(ids) and not all(first <= int(c) <= last for c in (min(ids), max(ids))):
                        raise ScoringFailed(f"the {mv.kind} scorer returned customers outside {first}–{last}")
                    written = copy_rows(scorer.score_model, {"model_version_id": [mv.pk] * len(ids), **scored.columns})
        except Exception as error:
            logger.exception("scoring chunk %s (customers %s-%s) of %s failed", chunk.number, first, last, mv)
            chunk.state, chunk.error = ScoringChunk.State.FAILED, f"{type(error).__name__}: {error}"[:10_000]
        else:
            chunk.state, chunk.rows_written = ScoringChunk.State.DONE, written
            chunk.summary = scored.summary if scored is not None else {}
        chunk.worker = worker_name()
        chunk.seconds = time.monotonic() - started
        chunk.cpu_seconds = time.process_time() - cpu_started
        chunk.finished_at = timezone.now()
        chunk.save(update_fields=["state", "error", "rows_written", "summary", "worker", "seconds", "cpu_seconds",
                                  "finished_at"])
    return chunk.state


# --- the run -------------------------------------------------------------------------------------


def _shared_with_workers() -> bool:
    """Can other processes see and claim this run's chunks?"""
    return connection.features.has_select_for_update_skip_locked and not connection.in_atomic_block


def _dispatch(run: ScoringRun, chunk_ids: list[int]) -> None:
    from celery import group

    from .progress import BROKER_ERRORS
    from .tasks import score_chunk_task

    try:
        group(score_chunk_task.si(chunk_id) for chunk_id in chunk_ids).apply_async()
    except BROKER_ERRORS as error:  # the chunks still get scored: here, one after another
        logger.warning("could not queue the chunks of scoring run %s (%s); scoring them in this process", run.pk,
                       error)


def _counts(run: ScoringRun) -> dict[str, int]:
    rows = ScoringChunk.objects.filter(run=run).values("state").annotate(n=Count("id"), rows=Sum("rows_written"))
    counts = {state: 0 for state in ScoringChunk.State.values} | {"rows": 0}
    for row in rows:
        counts[row["state"]] = row["n"]
        counts["rows"] += row["rows"] or 0
    return counts


def _fail_run(run: ScoringRun, error: str) -> None:
    ScoringRun.objects.filter(pk=run.pk).update(state=ScoringRun.State.FAILED, error=error[:10_000],
                                                finished_at=timezone.now())
    # Wait for chunks other workers are still writing (their row locks), so that once this returns
    # no more rows of the run appear and the caller can delete them all.
    with transaction.atomic():
        list(ScoringChunk.objects.select_for_update().filter(run=run).values_list("pk", flat=True))
    run.refresh_from_db()


def score_all_customers(
    mv: ModelVersion,
    params: dict[str, Any] | None = None,
    *,
    chunk_size: int | None = None,
    progress: ProgressReporter | None = None,
    span: tuple[int, int] = (0, 100),
    job=None,
) -> ScoringRun:
    """Score every customer under ``mv`` in chunks shared with the Celery workers; returns the finished run.

    ``params`` go to every chunk (default: the scorer's own for the version). Progress is reported
    within ``span`` as chunks finish anywhere. Raises :class:`ScoringFailed` when a chunk fails (the
    run is failed first and no chunk is still writing).
    """
    scorer = scorer_for(mv.kind)
    run = plan_run(mv, scorer.params(mv) if params is None else params, chunk_size=chunk_size, job=job)
    chunk_ids = list(ScoringChunk.objects.filter(run=run).order_by("number").values_list("pk", flat=True))
    shared = _shared_with_workers()
    if shared and len(chunk_ids) > 1:
        _dispatch(run, chunk_ids)
    low, high = span
    last_report = -1
    while True:
        pending = list(ScoringChunk.objects.filter(run=run, state=ScoringChunk.State.PENDING)
                       .order_by("-number").values_list("pk", flat=True))
        worked = False
        for chunk_id in pending:  # the last pending chunk nobody holds (workers start from the first)
            if process_chunk(chunk_id) != "skipped":
                worked = True
                break
        counts = _counts(run)
        done = counts[ScoringChunk.State.DONE]
        if progress is not None and done != last_report:
            last_report = done
            workers = ScoringChunk.objects.filter(run=run, state=ScoringChunk.State.DONE).values("worker").distinct()
            progress.report(low + (high - low) * done // max(run.chunks_total, 1),
                            f"{counts['rows']:,} customers scored: {done} of {run.chunks_total} chunks "
                            f"({workers.count()} worker process{'es' if workers.count() != 1 else ''})")
        if counts[ScoringChunk.State.FAILED]:
            failed = ScoringChunk.objects.filter(run=run, state=ScoringChunk.State.FAILED).order_by("number").first()
            message = (f"Scoring chunk {failed.number + 1} of {run.chunks_total} (customers "
                       f"{failed.first_customer_id}–{failed.last_customer_id}) failed: {failed.error}")
            _fail_run(run, message)
            raise ScoringFailed(message)
        if done == run.chunks_total:
            ScoringRun.objects.filter(pk=run.pk).update(state=ScoringRun.State.SUCCEEDED, finished_at=timezone.now())
            run.refresh_from_db()
            return run
        if not worked:
            time.sleep(POLL_SECONDS)  # every pending chunk is held by another worker


def chunk_summaries(run: ScoringRun) -> list[dict[str, Any]]:
    """The per-chunk aggregates of a finished run, in chunk order."""
    return list(ScoringChunk.objects.filter(run=run).order_by("number").values_list("summary", flat=True))


def rows_written(run: ScoringRun) -> int:
    return int(ScoringChunk.objects.filter(run=run).aggregate(n=Sum("rows_written"))["n"] or 0)


def score_version(model_version_id: int, *, chunk_size: int | None = None,
                  reporter: ProgressReporter | None = None) -> dict[str, Any]:
    """The "score all customers" job: (re)write every customer's scores under a finished version.

    Each chunk replaces its customers' rows in one transaction, so readers of an active version see
    old or new rows of a chunk, never none; the scores are a function of the version and its cut-off,
    so a run that fails half-way leaves every row valid.
    """
    from .progress import current_job

    mv = ModelVersion.objects.get(pk=model_version_id)
    if mv.status not in (ModelVersion.Status.READY, ModelVersion.Status.ACTIVE, ModelVersion.Status.RETIRED):
        raise ScoringFailed(f"{mv} cannot be scored: only a ready, active or retired version has a finished model")
    started = time.monotonic()
    run = score_all_customers(mv, chunk_size=chunk_size, progress=reporter, job=current_job.get())
    workers = ScoringChunk.objects.filter(run=run).values("worker").distinct().count()
    return {"model_version_id": mv.pk, "kind": mv.kind, "version": mv.version, "scoring_run": run.pk,
            "rows": rows_written(run), "chunks": run.chunks_total, "worker_processes": workers,
            "seconds": round(time.monotonic() - started, 3)}
