"""Writes for customer data: transaction and campaign-history imports.

An import reads, validates and writes in one database transaction, so an invalid row (unless
skip_invalid), a malformed line anywhere in the file or a crash half way leaves nothing behind.
Rows are inserted with ON CONFLICT DO NOTHING on a content key, so the same file twice adds
nothing.

Two write paths with the same results. On PostgreSQL a transactions file is streamed:
IMPORT_CHUNK_ROWS rows at a time are read and validated (importing.py, pure) in a worker thread
while the previous chunk is written: COPYed into a temporary staging table, then set-based
statements upsert its customers and products and INSERT ... SELECT its transactions (foreign keys
resolved by join). Memory does not grow with the file. Elsewhere (the embedded SQLite) the whole
file goes through the ORM's bulk_create in batches. `use_copy=False` forces the ORM path, which is
how the tests check both give the same rows. Campaign-history files are read whole (a repeated
customer and campaign is reported against its first line anywhere in the file).
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from rfm_portal.dashboard import summaries as page_summaries

from . import importing as im
from .models import CampaignHistory, Customer, ImportJob, Product, Transaction

if TYPE_CHECKING:
    from rfm_portal.accounts.authentication import APIKeyUser
    from rfm_portal.accounts.models import User

    Actor = User | APIKeyUser | None

logger = logging.getLogger(__name__)
T = TypeVar("T")

ORM_BATCH_SIZE = 2000
# File rows per chunk of a COPY-path transactions import: peak memory follows this, not the file.
IMPORT_CHUNK_ROWS = im.DEFAULT_CHUNK_ROWS

Progress = Callable[[int, str], None]


def _no_progress(percent: int, message: str) -> None:
    return None


LOOKUP_CHUNK = 500  # ids per `__in` query: well below SQLite's variable limit

Mapping_ = Mapping[str, str] | str | Sequence[str] | None


# --- Public entry points -------------------------------------------------------------------


def import_transactions(
    path: str | Path,
    *,
    mapping: Mapping_ = None,
    skip_invalid: bool = False,
    user: Actor = None,
    file_name: str | None = None,
    dayfirst: bool = False,
    use_copy: bool | None = None,
    **run: Any,
) -> ImportJob:
    """Import a transactions file (CSV or .xlsx). Returns the finished ImportJob.

    `mapping`: target field -> source column for layouts not recognised automatically.
    `skip_invalid`: import the valid rows and report the rest (default: any invalid row
    rejects the whole file). `dayfirst`: read 1/12/2010 as 1 December. `use_copy`: None
    picks COPY on PostgreSQL; False forces the ORM path.
    """
    copy = _use_copy(use_copy)
    return _run_import(
        kind=ImportJob.Kind.TRANSACTIONS,
        path=path,
        mapping=mapping,
        skip_invalid=skip_invalid,
        user=user,
        file_name=file_name,
        validate=lambda frame, resolved: im.validate_transactions(frame, resolved, dayfirst=dayfirst),
        # COPY: streamed in chunks through a staging table. ORM (SQLite, small files): the whole file.
        sink=_TransactionStage if copy else lambda job: _Sink(_write_transactions_orm),
        chunk_rows=IMPORT_CHUNK_ROWS if copy else None,
        **run,
    )


def import_campaign_history(
    path: str | Path,
    *,
    mapping: Mapping_ = None,
    skip_invalid: bool = False,
    user: Actor = None,
    file_name: str | None = None,
    use_copy: bool | None = None,
    **run: Any,
) -> ImportJob:
    """Import past campaign outcomes: customer_id, campaign, treated, converted, revenue, sent_at.

    One record per customer and campaign; one already stored is left as it is.
    Customers not yet known are created.
    """
    copy = _use_copy(use_copy)
    return _run_import(
        kind=ImportJob.Kind.CAMPAIGNS,
        path=path,
        mapping=mapping,
        skip_invalid=skip_invalid,
        user=user,
        file_name=file_name,
        validate=lambda frame, resolved: im.validate_campaigns(frame, resolved),
        # Whole file: a repeated customer and campaign is reported against its first line anywhere in it.
        sink=lambda job: _Sink(_write_campaigns_copy if copy else _write_campaigns_orm),
        **run,
    )


def import_file(
    path: str | Path,
    *,
    kind: str = ImportJob.Kind.TRANSACTIONS,
    mapping: Mapping_ = None,
    skip_invalid: bool = False,
    user: Actor = None,
    file_name: str | None = None,
    dayfirst: bool = False,
    **run: Any,
) -> ImportJob:
    """Dispatch on `kind` (the command, the upload page, the API and the background job share this).

    `run`: `job` (an existing pending ImportJob to fill), `progress(percent, message)`, `actor`
    (who imported, for the message, when that is not a User row).
    """
    if kind == ImportJob.Kind.CAMPAIGNS:
        return import_campaign_history(
            path, mapping=mapping, skip_invalid=skip_invalid, user=user, file_name=file_name, **run
        )
    return import_transactions(
        path, mapping=mapping, skip_invalid=skip_invalid, user=user, file_name=file_name, dayfirst=dayfirst, **run
    )


def import_uploaded_file(
    uploaded: UploadedFile,
    *,
    kind: str = ImportJob.Kind.TRANSACTIONS,
    mapping: Mapping_ = None,
    skip_invalid: bool = False,
    dayfirst: bool = False,
    user: Actor = None,
) -> ImportJob:
    """Import an uploaded file; large uploads are already on disk, small ones are spooled to it."""
    name = Path(uploaded.name or "upload.csv").name
    options = {"kind": kind, "mapping": mapping, "skip_invalid": skip_invalid, "dayfirst": dayfirst, "user": user}
    if hasattr(uploaded, "temporary_file_path"):
        return import_file(uploaded.temporary_file_path(), file_name=name, **options)
    handle, tmp = tempfile.mkstemp(suffix=Path(name).suffix.lower() or ".csv", prefix="rfm-import-")
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in uploaded.chunks():
                out.write(chunk)
        return import_file(tmp, file_name=name, **options)
    finally:
        os.unlink(tmp)


# --- Large uploads: on disk, imported by a background job ---------------------------------


def is_large_upload(uploaded: UploadedFile) -> bool:
    """Uploads above IMPORT_BACKGROUND_THRESHOLD_BYTES are imported by a worker, not the web process."""
    return (uploaded.size or 0) > settings.IMPORT_BACKGROUND_THRESHOLD_BYTES


def _store_upload(uploaded: UploadedFile, name: str) -> Path:
    """Move (or stream, in 1 MB chunks) the upload to IMPORT_SPOOL_DIR: the worker reads it from there."""
    spool = Path(settings.IMPORT_SPOOL_DIR)
    spool.mkdir(parents=True, exist_ok=True)
    target = spool / f"{uuid.uuid4().hex}{Path(name).suffix.lower()[:10] or '.csv'}"
    if hasattr(uploaded, "temporary_file_path"):
        shutil.copyfile(uploaded.temporary_file_path(), target)  # a disk-to-disk copy, never in memory
    else:
        with open(target, "wb") as out:
            for chunk in uploaded.chunks(1024 * 1024):
                out.write(chunk)
    return target


def queue_import(
    uploaded: UploadedFile,
    *,
    kind: str = ImportJob.Kind.TRANSACTIONS,
    mapping: Mapping[str, str] | None = None,
    skip_invalid: bool = False,
    dayfirst: bool = False,
    user: Actor = None,
) -> ImportJob:
    """Keep the upload on disk and import it as a Job (progress on the Jobs page). Returns the pending ImportJob.

    The import itself is the same all-or-nothing, idempotent run as a small upload's.
    Raises JobQueueUnavailable (the ImportJob failed, the file removed) when the broker is down.
    """
    from rfm_portal.mlops.progress import JobQueueUnavailable, submit_job

    from .tasks import import_file_task

    name = Path(uploaded.name or "upload.csv").name
    path = _store_upload(uploaded, name)
    job = ImportJob.objects.create(
        kind=kind,
        file_name=name[:255],
        file_sha256=_file_sha256(path),
        skip_invalid=skip_invalid,
        status=ImportJob.Status.PENDING,
        created_by=_real_user(user),
        message=f"{name} ({path.stat().st_size / 1e6:,.1f} MB) is queued for import in the background.",
    )
    actor = str(user) if user is not None and _real_user(user) is None else ""
    params = {
        "import_job_id": job.pk,
        "path": str(path),
        "mapping": dict(im.parse_mapping(mapping)),
        "dayfirst": dayfirst,
        "actor": actor,
    }
    try:
        background = submit_job(import_file_task, params, _real_user(user))
    except JobQueueUnavailable as error:
        path.unlink(missing_ok=True)
        job.job = error.job
        _finish(job, ImportJob.Status.FAILED, message=f"{error} Nothing was imported; upload the file again.")
        raise
    job.job = background
    job.message = f"{job.message} Follow it as job #{background.pk} on the Jobs page."
    job.save(update_fields=["job", "message"])
    return job


def run_queued_import(
    import_job_id: int,
    path: str,
    *,
    mapping: Mapping[str, str],
    dayfirst: bool,
    actor: str,
    progress: Progress,
) -> ImportJob:
    """The background half of queue_import: run the import on the stored file, then remove it."""
    job = ImportJob.objects.get(pk=import_job_id)
    try:
        if job.status != ImportJob.Status.PENDING:  # finished (or being run) already: never import twice
            return job
        return import_file(
            path,
            kind=job.kind,
            mapping=mapping,
            skip_invalid=job.skip_invalid,
            file_name=job.file_name,
            dayfirst=dayfirst,
            job=job,
            progress=progress,
            actor=actor,
        )
    finally:
        Path(path).unlink(missing_ok=True)


def fail_imports_of_job(job_id: int, reason: str) -> int:
    """The background job of an import was failed from outside (worker died, queue down): say so on the import."""
    unfinished = [ImportJob.Status.PENDING, ImportJob.Status.RUNNING]
    jobs = list(ImportJob.objects.filter(job_id=job_id, status__in=unfinished))
    for job in jobs:
        _finish(
            job,
            ImportJob.Status.FAILED,
            message=f"The background import stopped: {reason} Nothing was imported (imports are all or "
            "nothing); upload the file again.",
        )
    return len(jobs)


def _use_copy(use_copy: bool | None) -> bool:
    if use_copy and connection.vendor != "postgresql":
        raise ValueError("COPY needs PostgreSQL.")
    return connection.vendor == "postgresql" if use_copy is None else use_copy


def _real_user(user: Actor) -> User | None:
    # An API key integration is authenticated but is no User row; the job records it in its message.
    return user if user is not None and getattr(user, "pk", None) is not None else None


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class _Rejected(Exception):
    """Invalid rows in a file imported all-or-nothing: roll back whatever was staged."""


class _Sink:
    """Where validated rows go: kept and written at the end (whole-file paths) or staged per chunk (COPY)."""

    def __init__(self, write: Callable[[pd.DataFrame, ImportJob], int]) -> None:
        self.write = write
        self.frames: list[pd.DataFrame] = []

    def add(self, valid: pd.DataFrame) -> None:
        self.frames.append(valid)

    def finish(self, job: ImportJob, step: Progress) -> int:
        valid = pd.concat(self.frames, ignore_index=True) if len(self.frames) > 1 else self.frames[0]
        return self.write(valid, job) if len(valid) else 0


def _run_import(
    *,
    kind: str,
    path: str | Path,
    mapping: Mapping_,
    skip_invalid: bool,
    user: Actor,
    file_name: str | None,
    validate: Callable[[pd.DataFrame, dict[str, str]], im.ValidationResult],
    sink: Callable[[ImportJob], _Sink],
    chunk_rows: int | None = None,
    job: ImportJob | None = None,
    progress: Progress | None = None,
    actor: str = "",
) -> ImportJob:
    """Read, validate and write a file in one database transaction, `chunk_rows` file rows at a time.

    Every chunk is validated as it is read; while no row is invalid (or with skip_invalid) its
    valid rows go to `sink`. Rejected lines are counted in full and the first
    IMPORT_ERROR_REPORT_LIMIT kept, so memory depends on the chunk size, not on the file.
    Anything wrong (an invalid row without skip_invalid, a malformed line in a later chunk, a
    crash) rolls the whole transaction back: nothing is imported.
    """
    path = Path(path)
    step = progress or _no_progress
    # The job exists (and is committed when we are not inside an outer transaction) before
    # the work starts, so a failed import still leaves its record.
    if job is None:
        job = ImportJob.objects.create(
            kind=kind,
            file_name=(file_name or path.name)[:255],
            file_sha256=_file_sha256(path),
            skip_invalid=skip_invalid,
            status=ImportJob.Status.RUNNING,
            created_by=_real_user(user),
        )
    else:
        job.status = ImportJob.Status.RUNNING
        job.save(update_fields=["status"])
    if not actor and user is not None and _real_user(user) is None:
        actor = str(user)
    via = f" Imported through {actor}." if actor else ""
    limit = settings.IMPORT_ERROR_REPORT_LIMIT
    counts: dict[str, Any] = {"rows_total": 0, "rows_accepted": 0, "rows_rejected": 0, "errors": []}
    chunks: Iterator[tuple[pd.DataFrame, float]] = iter(())
    try:
        try:
            resolved = im.parse_mapping(mapping)
        except ValueError as exc:
            raise im.ImportFileError(str(exc)) from None
        job.column_mapping = resolved
        step(2, "Reading the file")
        with transaction.atomic():
            target = sink(job)
            chunks = im.iter_table(path, file_name or path.name, chunk_rows)
            # Chunk k+1 is read and validated in a worker thread while this thread writes chunk k.
            with closing(_read_ahead(_validated(chunks, validate, resolved))) as checked:
                for rows, fraction, result in checked:
                    counts["rows_total"] += rows
                    if isinstance(result, im.ImportFileError):
                        raise result
                    job.column_mapping = result.columns
                    counts["rows_accepted"] += len(result.valid)
                    counts["rows_rejected"] += result.rows_rejected
                    room = limit - len(counts["errors"])
                    counts["errors"] += [{"line": line, "reason": reason} for line, reason in result.errors[:room]]
                    if skip_invalid or not counts["rows_rejected"]:  # else only count the rest: nothing is written
                        target.add(result.valid)
                    step(2 + int(68 * fraction), f"Checked {counts['rows_total']:,} rows")
            if not counts["rows_total"]:
                raise im.ImportFileError("The file has a header but no data rows.")
            if counts["rows_rejected"] and not skip_invalid:
                raise _Rejected
            accepted = counts["rows_accepted"]
            step(70, f"Writing {accepted:,} valid rows in one transaction")
            inserted = target.finish(job, step) if accepted else 0
            duplicate = accepted - inserted
            rejected = counts["rows_rejected"]
            skipped = f" {rejected:,} invalid rows were skipped." if rejected else ""
            return _finish(
                job,
                ImportJob.Status.SUCCEEDED,
                message=f"{inserted:,} new rows imported, {duplicate:,} already present.{skipped}{via}",
                rows_inserted=inserted,
                rows_duplicate=duplicate,
                **counts,
            )
    except im.ImportFileError as exc:
        # A file-level problem (a required column missing, a malformed line): the whole file is rejected.
        rows = counts["rows_total"] + sum(len(frame) for frame, _ in _rest(chunks))
        return _finish(
            job,
            ImportJob.Status.REJECTED,
            message=f"{exc} Nothing was imported.{via}",
            rows_total=rows,
            rows_accepted=0,
            rows_rejected=rows,
            errors=[{"line": 1, "reason": str(exc)}],
        )
    except _Rejected:
        return _finish(
            job,
            ImportJob.Status.REJECTED,
            message=(
                f"{counts['rows_rejected']:,} of {counts['rows_total']:,} rows are invalid, so nothing was "
                f"imported. Fix them, or import again skipping invalid rows.{via}"
            ),
            **counts,
        )
    except Exception as exc:  # a bug, an I/O or database error: the job says so rather than staying "running"
        logger.exception("Import %s of %s failed", job.pk, job.file_name)
        _finish(job, ImportJob.Status.FAILED, message=f"The import failed and nothing was imported: {exc}", **counts)
        raise


def _validated(
    chunks: Iterator[tuple[pd.DataFrame, float]],
    validate: Callable[[pd.DataFrame, dict[str, str]], im.ValidationResult],
    mapping: dict[str, str],
) -> Iterator[tuple[int, float, im.ValidationResult | im.ImportFileError]]:
    """(rows, fraction of the file read, validation) per chunk; a file-level error in a chunk's
    validation (a required column missing) ends it, handed over with that chunk's rows so they count."""
    for frame, fraction in chunks:
        try:
            result = validate(frame, mapping)
        except im.ImportFileError as exc:
            yield len(frame), fraction, exc
            return
        yield len(frame), fraction, result


def _read_ahead(items: Iterator[T]) -> Iterator[T]:
    """`items`, each produced in a worker thread while the caller works on the one before.

    An import's database work (psycopg releases the GIL while PostgreSQL runs) then overlaps the
    reading and validating of the next chunk, which is pure Python and pandas. At most one item
    waits ready, so memory stays a few chunks. An exception raised by `items` is raised here, in
    the caller's thread, where its item would have come (inside the caller's transaction, which
    it rolls back). When the caller stops early (its own error), the worker stops after the item
    it is producing; `items` is then left where it was, never run by two threads at once.
    """
    ready: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                ready.put((False, item))
                if stop.is_set():
                    return
            ready.put((True, None))
        except BaseException as exc:  # handed to the caller, which raises it
            ready.put((True, exc))

    worker = threading.Thread(target=produce, name="import-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            finished, value = ready.get()
            if finished:
                if value is not None:
                    raise value
                return
            yield value
    finally:
        stop.set()
        while worker.is_alive():  # unblock a worker waiting to hand over an item nobody will take
            try:
                ready.get(timeout=0.05)
            except queue.Empty:
                pass
        worker.join()


def _rest(chunks: Iterator[tuple[pd.DataFrame, float]]) -> Iterator[tuple[pd.DataFrame, float]]:
    """The chunks not read yet (to count the rows of a rejected file); a second error ends the count."""
    try:
        yield from chunks
    except im.ImportFileError:
        return


def _finish(job: ImportJob, status: str, *, message: str, **counts) -> ImportJob:
    for name, value in counts.items():
        setattr(job, name, value)
    job.status = status
    job.message = message
    job.finished_at = timezone.now()
    if status != ImportJob.Status.SUCCEEDED:
        job.rows_inserted = job.rows_duplicate = 0
    else:  # the pages' stored aggregates follow the new data once it commits
        page_summaries.data_changed("import")
    job.save()
    return job


def _chunks(values: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _datetimes(values: pd.Series) -> list:
    return [ts.to_pydatetime() for ts in values]


def _e4(value: int) -> Decimal:
    return Decimal(int(value)).scaleb(-4)


# --- PostgreSQL: COPY into staging, INSERT ... SELECT ---------------------------------------


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


# Staging columns: (name, PostgreSQL type, how to get the values from the frame). Binary COPY
# needs no quoting or escaping, and timestamps travel as integer microseconds since the epoch
# (exact; converted back in SQL), which keeps the Python side to one pass of tolist().
EPOCH = "timestamptz 'epoch'"


def _micros(values: pd.Series) -> list[int]:
    return values.dt.tz_convert(None).to_numpy().astype("datetime64[us]").astype("int64").tolist()


def _create_stage(cursor, table: str, columns: Sequence[tuple[str, str]]) -> None:
    cursor.execute(f"DROP TABLE IF EXISTS {table}")
    cursor.execute(f"CREATE TEMPORARY TABLE {table} ({', '.join(f'{n} {t}' for n, t in columns)}) ON COMMIT DROP")


def _copy_into(cursor, table: str, columns: Sequence[tuple[str, str]], values: Sequence[list]) -> None:
    """Append rows (one list per column) to a staging table with binary COPY."""
    with cursor.cursor.copy(f"COPY {table} ({', '.join(n for n, _ in columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([t for _, t in columns])
        for row in zip(*values, strict=True):
            copy.write_row(row)


def _copy_rows(cursor, table: str, columns: Sequence[tuple[str, str]], values: Sequence[list]) -> None:
    """Create a temporary table and fill it with binary COPY."""
    _create_stage(cursor, table, columns)
    _copy_into(cursor, table, columns, values)
    cursor.execute(f"ANALYZE {table}")  # row counts for the planner: hash joins, not nested loops


def _upsert_customers_sql(cursor, table: str) -> None:
    """From a staging table of (chunk, external_id, country, first_seen_us), one row per customer and chunk:
    the earliest first_seen wins, the country of the last chunk that has one replaces."""
    # The WHERE skips rows that would not change, so a repeated import rewrites nothing. It still
    # locks every customer of the file until commit (ON CONFLICT DO UPDATE locks the rows it
    # conflicts with even when the WHERE is false), which the transaction insert relies on.
    customer = _q(Customer._meta.db_table)
    cursor.execute(
        f"""
        INSERT INTO {customer} AS c (external_id, country, first_seen, attributes, created_at)
        SELECT s.external_id,
               coalesce((array_agg(s.country ORDER BY s.chunk DESC) FILTER (WHERE s.country <> ''))[1], ''),
               {EPOCH} + min(s.first_seen_us) * interval '1 microsecond', '{{}}'::jsonb, now()
        FROM {table} s
        GROUP BY s.external_id
        ORDER BY s.external_id
        ON CONFLICT (external_id) DO UPDATE SET
            first_seen = LEAST(c.first_seen, EXCLUDED.first_seen),
            country = CASE WHEN EXCLUDED.country <> '' THEN EXCLUDED.country ELSE c.country END
        WHERE c.first_seen IS DISTINCT FROM LEAST(c.first_seen, EXCLUDED.first_seen)
           OR (EXCLUDED.country <> '' AND EXCLUDED.country <> c.country)
        """
    )


def _upsert_products_sql(cursor, table: str) -> None:
    """From (chunk, sku, description, category) per sku and chunk: the last non-empty text replaces."""
    product = _q(Product._meta.db_table)
    cursor.execute(
        f"""
        INSERT INTO {product} AS p (sku, description, category)
        SELECT s.sku,
               coalesce((array_agg(s.description ORDER BY s.chunk DESC) FILTER (WHERE s.description <> ''))[1], ''),
               coalesce((array_agg(s.category ORDER BY s.chunk DESC) FILTER (WHERE s.category <> ''))[1], '')
        FROM {table} s
        GROUP BY s.sku
        ORDER BY s.sku
        ON CONFLICT (sku) DO UPDATE SET
            description = CASE WHEN EXCLUDED.description <> '' THEN EXCLUDED.description ELSE p.description END,
            category = CASE WHEN EXCLUDED.category <> '' THEN EXCLUDED.category ELSE p.category END
        WHERE (EXCLUDED.description <> '' AND EXCLUDED.description <> p.description)
           OR (EXCLUDED.category <> '' AND EXCLUDED.category <> p.category)
        """
    )


# When the database role may set session_replication_role (a superuser, as in docker-compose, or
# GRANT SET ON PARAMETER session_replication_role on PostgreSQL 15+), the transaction INSERTs skip
# the per-row foreign-key triggers: they are half of their cost. The INSERT ... SELECT itself
# guarantees the keys (it joins the customer and product tables, whose rows this transaction inserted
# or locked by its upserts, and it locks the import job), and the other side's triggers still stop a
# concurrent delete of a referenced row. False: always let PostgreSQL check every row.
SKIP_FK_TRIGGERS_WHEN_ALLOWED = True

# An import into an EMPTY transaction table (a new portal's first load) drops the table's non-unique
# indexes (customer + date, date, product, import job), inserts, and builds them again at the end: one
# sort per index instead of a random B-tree insert per row and index. The primary key and the unique
# row_hash stay (ON CONFLICT needs the latter; each chunk's rows arrive in the order of both, so they
# are cheap). This holds the transaction table's ACCESS EXCLUSIVE lock until commit (every reader of
# transactions, i.e. pages, scoring and the event stream, waits for the import to finish) and SHARE ROW
# EXCLUSIVE on customers and products (their readers go on; their writers wait), so no other writer
# can hold a customer row the import needs while waiting for the table. The locks are taken only when
# free at once (NOWAIT), otherwise, or when the table has rows, the import takes the ordinary path.
# DDL is transactional: a rollback restores the indexes.
REBUILD_INDEXES_OF_EMPTY_TABLE = True
INDEX_BUILD_MEMORY = "256MB"  # maintenance_work_mem while they are built: sorts of 1M rows stay in memory
SORT_MEMORY = "64MB"  # work_mem of the import: a chunk's INSERT sorts its 100k rows in memory
# Chunks are written as they come, each upserting its customers and products, so two imports of
# overlapping customers could lock the same rows in opposite orders: transactions imports write one
# at a time (a second waits for the first to commit before it starts reading).
IMPORT_LOCK = "rfm_portal.customers.transactions_import"

STAGE_CHUNK = "rfm_stage_chunk"  # the chunk being written
STAGE_TRANSACTION = "rfm_stage_transaction"  # every chunk written so far, for the repeats across chunks
STAGE_CUSTOMER = "rfm_stage_customer"
STAGE_PRODUCT = "rfm_stage_product"
STAGE_TRANSACTION_COLUMNS = (
    ("line", "int8"),
    ("invoice", "text"),
    ("customer_id", "text"),
    ("sku", "text"),  # "" when the line has none (then no product)
    ("invoiced_us", "int8"),
    ("quantity", "int4"),
    ("unit_price_e4", "int8"),
    ("amount_e4", "int8"),
    ("is_return", "bool"),
    ("occurrence", "int4"),  # among the identical lines of its chunk
    ("row_hash", "text"),  # of that occurrence number
)
STAGE_CUSTOMER_COLUMNS = (("chunk", "int4"), ("external_id", "text"), ("country", "text"), ("first_seen_us", "int8"))
STAGE_PRODUCT_COLUMNS = (("chunk", "int4"), ("sku", "text"), ("description", "text"), ("category", "text"))
IDENTITY_SQL = "invoice, customer_id, sku, invoiced_us, quantity, unit_price_e4"  # importing.ROW_IDENTITY


class _TransactionStage(_Sink):
    """PostgreSQL: each chunk is written as it comes (while the next one is read and validated): its rows
    are COPYed into a temporary staging table, its customers and products upserted, its transactions
    inserted. finish() adds the lines whose identity repeats across chunks (see _insert_repeats) and
    builds dropped indexes. Everything is inside the import's transaction: a rollback leaves nothing.

    Upserting per chunk gives what one upsert of the whole file gives: the earliest first_seen wins and
    the text of the last chunk that has some replaces, chunk after chunk."""

    def __init__(self, job: ImportJob) -> None:
        self.job = job
        self.chunks = 0
        self.inserted = 0
        self.dropped_indexes: list[str] = []
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [IMPORT_LOCK])
            cursor.execute("SELECT set_config('work_mem', %s, true)", [SORT_MEMORY])
            cursor.execute(f"SELECT 1 FROM {_q(ImportJob._meta.db_table)} WHERE id = %s FOR KEY SHARE", [job.pk])
            self.skip_fk = SKIP_FK_TRIGGERS_WHEN_ALLOWED and _may_skip_fk_triggers(cursor)
            for table in (STAGE_CHUNK, STAGE_TRANSACTION):
                _create_stage(cursor, table, STAGE_TRANSACTION_COLUMNS)
            _create_stage(cursor, STAGE_CUSTOMER, STAGE_CUSTOMER_COLUMNS)
            _create_stage(cursor, STAGE_PRODUCT, STAGE_PRODUCT_COLUMNS)

    def add(self, valid: pd.DataFrame) -> None:
        if valid.empty:
            return
        self.chunks += 1
        customers, products = im.customer_summary(valid), im.product_summary(valid)
        with connection.cursor() as cursor:
            if self.chunks == 1 and REBUILD_INDEXES_OF_EMPTY_TABLE:
                self.dropped_indexes = _drop_secondary_indexes_if_empty(cursor)
            cursor.execute(f"TRUNCATE {STAGE_CHUNK}, {STAGE_CUSTOMER}, {STAGE_PRODUCT}")
            _copy_into(
                cursor,
                STAGE_CUSTOMER,
                STAGE_CUSTOMER_COLUMNS,
                [
                    [self.chunks] * len(customers),
                    customers["external_id"].tolist(),
                    customers["country"].tolist(),
                    _micros(customers["first_seen"]),
                ],
            )
            _copy_into(
                cursor,
                STAGE_PRODUCT,
                STAGE_PRODUCT_COLUMNS,
                [[self.chunks] * len(products)] + [products[c].tolist() for c in ("sku", "description", "category")],
            )
            _copy_into(
                cursor,
                STAGE_CHUNK,
                STAGE_TRANSACTION_COLUMNS,
                [
                    valid[im.LINE].tolist(),
                    valid["invoice"].tolist(),
                    valid["customer_id"].tolist(),
                    valid["sku"].tolist(),
                    _micros(valid["invoiced_at"]),
                    valid["quantity"].tolist(),
                    valid["unit_price_e4"].tolist(),
                    valid["amount_e4"].tolist(),
                    valid["is_return"].tolist(),
                    valid["occurrence"].tolist(),
                    valid["row_hash"].tolist(),
                ],
            )
            _upsert_customers_sql(cursor, STAGE_CUSTOMER)
            _upsert_products_sql(cursor, STAGE_PRODUCT)
            self.inserted += _insert_transactions(cursor, self.job, self.skip_fk, f"{STAGE_CHUNK} s")
            cursor.execute(f"INSERT INTO {STAGE_TRANSACTION} SELECT * FROM {STAGE_CHUNK}")

    def finish(self, job: ImportJob, step: Progress) -> int:
        with connection.cursor() as cursor:
            if self.chunks > 1:
                step(75, "Adding the lines repeated across chunks")
                self.inserted += _insert_repeats(cursor, self.job, self.skip_fk)
            if self.dropped_indexes:
                step(85, "Indexing the transactions")
                _create_indexes(cursor, self.dropped_indexes)
            for table in (STAGE_CHUNK, STAGE_TRANSACTION, STAGE_CUSTOMER, STAGE_PRODUCT):
                cursor.execute(f"DROP TABLE {table}")
        return self.inserted


def _insert_transactions(cursor, job: ImportJob, skip_fk: bool, source: str, row_hash: str = "s.row_hash") -> int:
    """INSERT ... SELECT the staged lines of `source` (aliased s) into the transaction table; how many were new."""
    tx, customer, product = (_q(m._meta.db_table) for m in (Transaction, Customer, Product))
    if skip_fk:
        cursor.execute("SELECT current_setting('session_replication_role')")
        role = cursor.fetchone()[0]
        cursor.execute("SET LOCAL session_replication_role = replica")
    # Sorted by row_hash, the inserts into the unique index on it go in order instead of at random:
    # noticeably less page churn on big files. Ids are not in file order (nothing relies on that;
    # listings order by invoiced_at). Byte order ("C") is the index's order for hex digits in any
    # collation, and PostgreSQL sorts it with abbreviated keys.
    cursor.execute(
        f"""
        INSERT INTO {tx} (invoice, customer_id, product_id, invoiced_at, quantity, unit_price, amount,
                          is_return, row_hash, import_job_id)
        SELECT s.invoice, c.id, p.id, {EPOCH} + s.invoiced_us * interval '1 microsecond', s.quantity,
               s.unit_price_e4 * 0.0001, s.amount_e4 * 0.0001, s.is_return, {row_hash}, %s
        FROM {source}
        JOIN {customer} c ON c.external_id = s.customer_id
        LEFT JOIN {product} p ON s.sku <> '' AND p.sku = s.sku
        ORDER BY {row_hash} COLLATE "C"
        ON CONFLICT (row_hash) DO NOTHING
        """,
        [job.pk],
    )
    inserted = cursor.rowcount
    if skip_fk:
        cursor.execute("SELECT set_config('session_replication_role', %s, true)", [role])
    return inserted


class _TableInUse(Exception):
    """The transaction table has rows, or another session is using one of the tables: keep the indexes."""


def _drop_secondary_indexes_if_empty(cursor) -> list[str]:
    """Drop the non-unique indexes of the transaction table when it is empty and the tables are free
    (see REBUILD_INDEXES_OF_EMPTY_TABLE); their CREATE INDEX statements."""
    tx, customer, product = (_q(m._meta.db_table) for m in (Transaction, Customer, Product))
    cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {tx})")
    if cursor.fetchone()[0]:
        return []
    try:
        with transaction.atomic():  # a savepoint: rolling it back releases the locks again
            cursor.execute(f"LOCK TABLE {customer}, {product} IN SHARE ROW EXCLUSIVE MODE NOWAIT")
            cursor.execute(f"LOCK TABLE {tx} IN ACCESS EXCLUSIVE MODE NOWAIT")
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {tx})")
            if cursor.fetchone()[0]:
                raise _TableInUse
            cursor.execute(
                """
                SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index
                WHERE indrelid = %s::regclass AND NOT indisunique AND NOT indisprimary ORDER BY 1
                """,
                [tx],
            )
            indexes = cursor.fetchall()
            for name, _ in indexes:
                cursor.execute(f"DROP INDEX {name}")
    except _TableInUse:
        return []
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != "55P03":  # lock_not_available: someone is using it
            raise
        return []
    return [definition for _, definition in indexes]


def _create_indexes(cursor, definitions: Sequence[str]) -> None:
    # A table with deferred foreign-key checks pending (when the import does not skip them) cannot be
    # indexed: run the checks now, as COMMIT would have, then defer again.
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    cursor.execute("SELECT current_setting('maintenance_work_mem')")
    memory = cursor.fetchone()[0]
    cursor.execute("SELECT set_config('maintenance_work_mem', %s, true)", [INDEX_BUILD_MEMORY])
    for definition in definitions:
        cursor.execute(definition)
    cursor.execute("SELECT set_config('maintenance_work_mem', %s, true)", [memory])


def _may_skip_fk_triggers(cursor) -> bool:
    if connection.pg_version >= 150000:
        cursor.execute("SELECT has_parameter_privilege('session_replication_role', 'SET')")
    else:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    return bool(cursor.fetchone()[0])


def _insert_repeats(cursor, job: ImportJob, skip_fk: bool) -> int:
    """Insert the lines whose identity repeats in several chunks under their occurrence number in the whole
    file; how many were new.

    Each chunk numbered its identical lines from 0 and was written with those hashes, so an identity
    seen c_1, c_2, ... times in chunks 1, 2, ... has occurrences 0 .. max(c_j) - 1 written, where the
    whole file has 0 .. sum(c_j) - 1: the same rows (a line's identity fixes every column written), only
    the higher numbers missing. Those identities (few: identical lines are rare and mostly adjacent) are
    fetched, numbered in line order and inserted again with ON CONFLICT DO NOTHING, which adds exactly
    the missing ones: the table ends with the hashes of the file read in one piece.
    """
    cursor.execute(f"ANALYZE {STAGE_TRANSACTION}")  # row counts for the planner: hash joins, not nested loops
    cursor.execute(
        f"""
        WITH repeated AS (
            SELECT {IDENTITY_SQL} FROM {STAGE_TRANSACTION} WHERE occurrence = 0
            GROUP BY {IDENTITY_SQL} HAVING count(*) > 1
        )
        SELECT s.line, {", ".join(f"s.{c}" for c in IDENTITY_SQL.split(", "))}
        FROM {STAGE_TRANSACTION} s JOIN repeated USING ({IDENTITY_SQL})
        ORDER BY s.line
        """
    )
    rows = cursor.fetchall()
    if not rows:
        return 0
    lines = pd.DataFrame(rows, columns=[im.LINE, *IDENTITY_SQL.split(", ")])
    lines["invoiced_at"] = pd.to_datetime(lines.pop("invoiced_us"), unit="us", utc=True)
    occurrence = im.occurrences(lines)
    _copy_rows(
        cursor,
        "rfm_stage_rehash",
        [("line", "int8"), ("row_hash", "text")],
        [lines[im.LINE].tolist(), im.row_hashes(lines, occurrence)],
    )
    source = f"{STAGE_TRANSACTION} s JOIN rfm_stage_rehash r ON r.line = s.line"
    inserted = _insert_transactions(cursor, job, skip_fk, source, row_hash="r.row_hash")
    cursor.execute("DROP TABLE rfm_stage_rehash")
    return inserted


def _write_campaigns_copy(valid: pd.DataFrame, job: ImportJob) -> int:
    customer, history = _q(Customer._meta.db_table), _q(CampaignHistory._meta.db_table)
    with connection.cursor() as cursor:
        _copy_rows(
            cursor,
            "rfm_stage_campaign",
            [
                ("line", "int8"),
                ("customer_id", "text"),
                ("campaign", "text"),
                ("treated", "bool"),
                ("converted", "bool"),
                ("revenue_e4", "int8"),
                ("sent_us", "int8"),
            ],
            [valid[c].tolist() for c in ("line", "customer_id", "campaign", "treated", "converted", "revenue_e4")]
            + [_micros(valid["sent_at"])],
        )
        cursor.execute(
            f"""
            INSERT INTO {customer} (external_id, country, attributes, created_at)
            SELECT DISTINCT s.customer_id, '', '{{}}'::jsonb, now() FROM rfm_stage_campaign s
            ON CONFLICT (external_id) DO NOTHING
            """
        )
        cursor.execute(
            f"""
            INSERT INTO {history} (customer_id, campaign, treated, converted, revenue, sent_at)
            SELECT c.id, s.campaign, s.treated, s.converted, s.revenue_e4 * 0.0001,
                   {EPOCH} + s.sent_us * interval '1 microsecond'
            FROM rfm_stage_campaign s JOIN {customer} c ON c.external_id = s.customer_id
            ORDER BY s.line
            ON CONFLICT (customer_id, campaign) DO NOTHING
            """
        )
        inserted = cursor.rowcount
        cursor.execute("DROP TABLE rfm_stage_campaign")
    return inserted


# --- Any database: the ORM in batches -------------------------------------------------------


def _existing(model, field: str, keys: Sequence[str]) -> dict:
    found = {}
    for chunk in _chunks(keys, LOOKUP_CHUNK):
        found.update({getattr(obj, field): obj for obj in model.objects.filter(**{f"{field}__in": chunk})})
    return found


def _upsert_customers_orm(summary: pd.DataFrame) -> dict[str, int]:
    """Same rules as the SQL path: earliest first_seen wins, a non-empty country replaces."""
    keys = summary["external_id"].tolist()
    existing = _existing(Customer, "external_id", keys)
    new, changed = [], []
    first_seen_values = _datetimes(summary["first_seen"])
    for key, country, first_seen in zip(keys, summary["country"], first_seen_values, strict=True):
        current = existing.get(key)
        if current is None:
            new.append(Customer(external_id=key, country=country, first_seen=first_seen))
            continue
        merged_first = first_seen if current.first_seen is None else min(current.first_seen, first_seen)
        merged_country = country or current.country
        if (merged_first, merged_country) != (current.first_seen, current.country):
            current.first_seen, current.country = merged_first, merged_country
            changed.append(current)
    Customer.objects.bulk_create(new, batch_size=ORM_BATCH_SIZE)
    Customer.objects.bulk_update(changed, ["first_seen", "country"], batch_size=ORM_BATCH_SIZE)
    return {key: obj.pk for key, obj in _existing(Customer, "external_id", keys).items()}


def _upsert_products_orm(summary: pd.DataFrame) -> dict[str, int]:
    keys = summary["sku"].tolist()
    existing = _existing(Product, "sku", keys)
    new, changed = [], []
    for key, description, category in zip(keys, summary["description"], summary["category"], strict=True):
        current = existing.get(key)
        if current is None:
            new.append(Product(sku=key, description=description, category=category))
            continue
        merged = (description or current.description, category or current.category)
        if merged != (current.description, current.category):
            current.description, current.category = merged
            changed.append(current)
    Product.objects.bulk_create(new, batch_size=ORM_BATCH_SIZE)
    Product.objects.bulk_update(changed, ["description", "category"], batch_size=ORM_BATCH_SIZE)
    return {key: obj.pk for key, obj in _existing(Product, "sku", keys).items()}


def _write_transactions_orm(valid: pd.DataFrame, job: ImportJob) -> int:
    customer_ids = _upsert_customers_orm(im.customer_summary(valid))
    product_ids = _upsert_products_orm(im.product_summary(valid))
    for start in range(0, len(valid), ORM_BATCH_SIZE):
        batch = valid.iloc[start : start + ORM_BATCH_SIZE]
        objects = [
            Transaction(
                invoice=invoice,
                customer_id=customer_ids[customer],
                product_id=product_ids.get(sku) if sku else None,
                invoiced_at=invoiced_at,
                quantity=int(quantity),
                unit_price=_e4(price),
                amount=_e4(amount),
                is_return=bool(is_return),
                row_hash=row_hash,
                import_job=job,
            )
            for invoice, customer, sku, invoiced_at, quantity, price, amount, is_return, row_hash in zip(
                batch["invoice"],
                batch["customer_id"],
                batch["sku"],
                _datetimes(batch["invoiced_at"]),
                batch["quantity"],
                batch["unit_price_e4"],
                batch["amount_e4"],
                batch["is_return"],
                batch["row_hash"],
                strict=True,
            )
        ]
        Transaction.objects.bulk_create(objects, ignore_conflicts=True)
    # ignore_conflicts reports no counts; rows that were new carry this job's id.
    return Transaction.objects.filter(import_job=job).count()


def _write_campaigns_orm(valid: pd.DataFrame, job: ImportJob) -> int:
    keys = sorted(valid["customer_id"].unique())
    existing = _existing(Customer, "external_id", keys)
    Customer.objects.bulk_create(
        [Customer(external_id=k) for k in keys if k not in existing], batch_size=ORM_BATCH_SIZE
    )
    customer_ids = {k: c.pk for k, c in _existing(Customer, "external_id", keys).items()}
    campaigns = CampaignHistory.objects.filter(campaign__in=valid["campaign"].unique().tolist())
    before = campaigns.count()
    objects = [
        CampaignHistory(
            customer_id=customer_ids[customer],
            campaign=campaign,
            treated=bool(treated),
            converted=bool(converted),
            revenue=_e4(revenue),
            sent_at=sent_at,
        )
        for customer, campaign, treated, converted, revenue, sent_at in zip(
            valid["customer_id"],
            valid["campaign"],
            valid["treated"],
            valid["converted"],
            valid["revenue_e4"],
            _datetimes(valid["sent_at"]),
            strict=True,
        )
    ]
    CampaignHistory.objects.bulk_create(objects, batch_size=ORM_BATCH_SIZE, ignore_conflicts=True)
    return campaigns.count() - before


# --- Audiences -----------------------------------------------------------------------------

AUDIENCE_MAX_MEMBERS = 1_000_000


def _can_change_audience(audience, user) -> bool:
    from rfm_portal.accounts.permissions import is_portal_admin

    return is_portal_admin(user) or (audience.created_by_id is not None and audience.created_by_id == user.pk)


def _clean_audience_name(name: str, exclude_pk: int | None = None) -> str:
    from .audiences import AudienceError
    from .models import Audience

    name = (name or "").strip()
    if not name:
        raise AudienceError("An audience needs a name.")
    if len(name) > 120:
        raise AudienceError("Names are at most 120 characters.")
    clash = Audience.objects.filter(name__iexact=name)
    if exclude_pk is not None:
        clash = clash.exclude(pk=exclude_pk)
    if clash.exists():
        raise AudienceError(f"An audience called {name!r} already exists; choose another name.")
    return name


def audience_create(
    *,
    name: str,
    kind: str,
    user=None,
    description: str = "",
    source: str = "",
    filter: dict | None = None,
    customer_ids: Sequence[int] | None = None,
    scores: Sequence[float | None] | None = None,
):
    """Save an audience. ``kind="filter"`` stores ``filter`` (validated keys, see audiences.py);
    ``kind="fixed"`` stores ``customer_ids`` (Customer pks, in rank order, duplicates dropped) with
    optional per-member ``scores``. All or nothing."""
    from .audiences import AudienceError, apply_filter, clean_filter
    from .models import Audience, AudienceMember

    name = _clean_audience_name(name)
    if kind == Audience.Kind.FILTER:
        if customer_ids:
            raise AudienceError("A filter audience has no fixed members.")
        spec = clean_filter(filter or {})
        with transaction.atomic():
            audience = Audience.objects.create(
                name=name, description=description, kind=kind, filter=spec, source=source[:255],
                created_by=_real_user(user), size=apply_filter(Customer.objects.all(), spec).count())
        return audience
    if kind != Audience.Kind.FIXED:
        raise AudienceError(f"Unknown audience kind {kind!r}: use 'filter' or 'fixed'.")
    if filter:
        raise AudienceError("A fixed-list audience has no filter.")
    ids = list(dict.fromkeys(int(i) for i in (customer_ids or [])))
    if not ids:
        raise AudienceError("A fixed-list audience needs at least one customer.")
    if len(ids) > AUDIENCE_MAX_MEMBERS:
        raise AudienceError(f"At most {AUDIENCE_MAX_MEMBERS:,} customers per audience.")
    if scores is not None and len(scores) != len(customer_ids or []):
        raise AudienceError("One score per customer id, or none.")
    score_of = dict(zip([int(i) for i in customer_ids or []], scores, strict=True)) if scores is not None else {}
    known = set()
    for chunk in _chunks(ids, 10_000):
        known.update(Customer.objects.filter(pk__in=chunk).values_list("pk", flat=True))
    missing = [i for i in ids if i not in known]
    if missing:
        raise AudienceError(f"{len(missing)} customer id(s) do not exist, e.g. {missing[:5]}.")
    with transaction.atomic():
        audience = Audience.objects.create(name=name, description=description, kind=kind, source=source[:255],
                                           created_by=_real_user(user), size=len(ids))
        AudienceMember.objects.bulk_create(
            [AudienceMember(audience=audience, customer_id=cid, rank=rank, score=score_of.get(cid))
             for rank, cid in enumerate(ids, start=1)],
            batch_size=ORM_BATCH_SIZE,
        )
    return audience


def audience_update(audience, *, user, name: str | None = None, description: str | None = None,
                    filter: dict | None = None):
    """Rename, re-describe or (filter audiences) change the filter. Owner or admin only."""
    from django.core.exceptions import PermissionDenied

    from .audiences import AudienceError, apply_filter, clean_filter

    if not _can_change_audience(audience, user):
        raise PermissionDenied("Only the audience's creator or an admin can change it.")
    fields = []
    if name is not None:
        audience.name = _clean_audience_name(name, exclude_pk=audience.pk)
        fields.append("name")
    if description is not None:
        audience.description = description
        fields.append("description")
    if filter is not None:
        if audience.kind != audience.Kind.FILTER:
            raise AudienceError("Only a filter audience has a filter.")
        audience.filter = clean_filter(filter)
        audience.size = apply_filter(Customer.objects.all(), audience.filter).count()
        fields += ["filter", "size"]
    if fields:
        audience.save(update_fields=[*fields, "updated_at"])
    return audience


def audience_delete(audience, *, user) -> None:
    """Delete an audience (its members go with it). Owner or admin only."""
    from django.core.exceptions import PermissionDenied

    if not _can_change_audience(audience, user):
        raise PermissionDenied("Only the audience's creator or an admin can delete it.")
    audience.delete()
