"""Writes for customer data: transaction and campaign-history imports.

An import reads and validates the whole file first (importing.py, pure), then writes
everything (customers, products, rows, the job's counts) in one database transaction,
so a crash half way leaves no rows behind. Rows are inserted with ON CONFLICT DO
NOTHING on a content key, so the same file twice adds nothing.

Two write paths with the same results: on PostgreSQL the rows go through COPY into
temporary staging tables and INSERT ... SELECT (foreign keys resolved by join); elsewhere
(the embedded SQLite) through the ORM's bulk_create in batches. `use_copy=False` forces
the ORM path, which is how the tests check both give the same rows.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, transaction
from django.utils import timezone

from rfm_portal.dashboard import summaries as page_summaries

from . import importing as im
from .models import CampaignHistory, Customer, ImportJob, Product, Transaction

if TYPE_CHECKING:
    from rfm_portal.accounts.authentication import APIKeyUser
    from rfm_portal.accounts.models import User

    Actor = User | APIKeyUser | None

logger = logging.getLogger(__name__)

ORM_BATCH_SIZE = 2000
COPY_PROGRESS_ROWS = 100_000

Progress = Callable[[int, str], None]


def _no_progress(percent: int, message: str) -> None:
    return None


# The running import's progress callback, read by the COPY loop (set only around the writes).
_write_progress: contextvars.ContextVar[Progress | None] = contextvars.ContextVar("import_progress", default=None)
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
        write=_write_transactions_copy if copy else _write_transactions_orm,
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
        write=_write_campaigns_copy if copy else _write_campaigns_orm,
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


def _run_import(
    *,
    kind: str,
    path: str | Path,
    mapping: Mapping_,
    skip_invalid: bool,
    user: Actor,
    file_name: str | None,
    validate: Callable[[pd.DataFrame, dict[str, str]], im.ValidationResult],
    write: Callable[[pd.DataFrame, ImportJob], int],
    job: ImportJob | None = None,
    progress: Progress | None = None,
    actor: str = "",
) -> ImportJob:
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
    frame: pd.DataFrame | None = None
    try:
        try:
            resolved = im.parse_mapping(mapping)
        except ValueError as exc:
            raise im.ImportFileError(str(exc)) from None
        job.column_mapping = resolved
        step(5, "Reading the file")
        frame = im.read_table(path, file_name or path.name)
        step(30, f"Checking {len(frame):,} rows")
        result = validate(frame, resolved)
    except im.ImportFileError as exc:
        rows = 0 if frame is None else len(frame)
        return _finish(
            job,
            ImportJob.Status.REJECTED,
            message=f"{exc} Nothing was imported.{via}",
            rows_total=rows,
            rows_rejected=rows,
            errors=[{"line": 1, "reason": str(exc)}],
        )
    except Exception as exc:  # a bug or an I/O error: the job says so rather than staying "running"
        _finish(job, ImportJob.Status.FAILED, message=f"The import failed and nothing was imported: {exc}")
        raise

    limit = settings.IMPORT_ERROR_REPORT_LIMIT
    job.column_mapping = result.columns
    counts = {
        "rows_total": len(frame),
        "rows_accepted": len(result.valid),
        "rows_rejected": result.rows_rejected,
        "errors": [{"line": line, "reason": reason} for line, reason in result.errors[:limit]],
    }
    if result.rows_rejected and not skip_invalid:
        return _finish(
            job,
            ImportJob.Status.REJECTED,
            message=(
                f"{result.rows_rejected:,} of {len(frame):,} rows are invalid, so nothing was imported. "
                f"Fix them, or import again skipping invalid rows.{via}"
            ),
            **counts,
        )

    step(50, f"Writing {len(result.valid):,} valid rows in one transaction")
    token = _write_progress.set(step)
    try:
        with transaction.atomic():
            inserted = write(result.valid, job) if len(result.valid) else 0
            duplicate = len(result.valid) - inserted
            skipped = f" {result.rows_rejected:,} invalid rows were skipped." if result.rows_rejected else ""
            return _finish(
                job,
                ImportJob.Status.SUCCEEDED,
                message=f"{inserted:,} new rows imported, {duplicate:,} already present.{skipped}{via}",
                rows_inserted=inserted,
                rows_duplicate=duplicate,
                **counts,
            )
    except Exception as exc:
        logger.exception("Import %s of %s failed", job.pk, job.file_name)
        _finish(job, ImportJob.Status.FAILED, message=f"The import failed and nothing was imported: {exc}", **counts)
        raise
    finally:
        _write_progress.reset(token)


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


def _copy_rows(cursor, table: str, columns: Sequence[tuple[str, str]], values: Sequence[list]) -> None:
    """Create a temporary table and fill it with binary COPY (progress every COPY_PROGRESS_ROWS rows)."""
    cursor.execute(f"DROP TABLE IF EXISTS {table}")
    cursor.execute(f"CREATE TEMPORARY TABLE {table} ({', '.join(f'{n} {t}' for n, t in columns)}) ON COMMIT DROP")
    step = _write_progress.get()
    total = len(values[0]) if values else 0
    with cursor.cursor.copy(f"COPY {table} FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([t for _, t in columns])
        for done, row in enumerate(zip(*values, strict=True), start=1):
            copy.write_row(row)
            if step is not None and done % COPY_PROGRESS_ROWS == 0:
                step(50 + 40 * done // total, f"Copied {done:,} of {total:,} rows ({table.removeprefix('rfm_stage_')})")
    cursor.execute(f"ANALYZE {table}")  # row counts for the planner: hash joins, not nested loops


def _upsert_customers_sql(cursor, table: str) -> None:
    # The WHERE skips rows that would not change, so a repeated import rewrites nothing.
    customer = _q(Customer._meta.db_table)
    cursor.execute(
        f"""
        INSERT INTO {customer} AS c (external_id, country, first_seen, attributes, created_at)
        SELECT s.external_id, s.country, {EPOCH} + s.first_seen_us * interval '1 microsecond', '{{}}'::jsonb, now()
        FROM {table} s
        ON CONFLICT (external_id) DO UPDATE SET
            first_seen = LEAST(c.first_seen, EXCLUDED.first_seen),
            country = CASE WHEN EXCLUDED.country <> '' THEN EXCLUDED.country ELSE c.country END
        WHERE c.first_seen IS DISTINCT FROM LEAST(c.first_seen, EXCLUDED.first_seen)
           OR (EXCLUDED.country <> '' AND EXCLUDED.country <> c.country)
        """
    )


def _write_transactions_copy(valid: pd.DataFrame, job: ImportJob) -> int:
    customers, products = im.customer_summary(valid), im.product_summary(valid)
    product, tx = _q(Product._meta.db_table), _q(Transaction._meta.db_table)
    customer = _q(Customer._meta.db_table)
    with connection.cursor() as cursor:
        _copy_rows(
            cursor,
            "rfm_stage_customer",
            [("external_id", "text"), ("country", "text"), ("first_seen_us", "int8")],
            [customers["external_id"].tolist(), customers["country"].tolist(), _micros(customers["first_seen"])],
        )
        _upsert_customers_sql(cursor, "rfm_stage_customer")
        _copy_rows(
            cursor,
            "rfm_stage_product",
            [("sku", "text"), ("description", "text"), ("category", "text")],
            [products[c].tolist() for c in ("sku", "description", "category")],
        )
        cursor.execute(
            f"""
            INSERT INTO {product} AS p (sku, description, category)
            SELECT s.sku, s.description, s.category FROM rfm_stage_product s
            ON CONFLICT (sku) DO UPDATE SET
                description = CASE WHEN EXCLUDED.description <> '' THEN EXCLUDED.description ELSE p.description END,
                category = CASE WHEN EXCLUDED.category <> '' THEN EXCLUDED.category ELSE p.category END
            WHERE (EXCLUDED.description <> '' AND EXCLUDED.description <> p.description)
               OR (EXCLUDED.category <> '' AND EXCLUDED.category <> p.category)
            """
        )
        _copy_rows(
            cursor,
            "rfm_stage_transaction",
            [
                ("invoice", "text"),
                ("customer_id", "text"),
                ("sku", "text"),
                ("invoiced_us", "int8"),
                ("quantity", "int4"),
                ("unit_price_e4", "int8"),
                ("amount_e4", "int8"),
                ("is_return", "bool"),
                ("row_hash", "text"),
            ],
            [
                valid["invoice"].tolist(),
                valid["customer_id"].tolist(),
                valid["sku"].replace("", None).tolist(),  # no sku: no product (NULL joins nothing)
                _micros(valid["invoiced_at"]),
                valid["quantity"].tolist(),
                valid["unit_price_e4"].tolist(),
                valid["amount_e4"].tolist(),
                valid["is_return"].tolist(),
                valid["row_hash"].tolist(),
            ],
        )
        # Sorted by row_hash, the inserts into the unique index on it go in order instead of at
        # random: noticeably less page churn on big files. Ids are not in file order (nothing
        # relies on that; listings order by invoiced_at).
        cursor.execute(
            f"""
            INSERT INTO {tx} (invoice, customer_id, product_id, invoiced_at, quantity, unit_price, amount,
                              is_return, row_hash, import_job_id)
            SELECT s.invoice, c.id, p.id, {EPOCH} + s.invoiced_us * interval '1 microsecond', s.quantity,
                   s.unit_price_e4 * 0.0001, s.amount_e4 * 0.0001, s.is_return, s.row_hash, %s
            FROM rfm_stage_transaction s
            JOIN {customer} c ON c.external_id = s.customer_id
            LEFT JOIN {product} p ON p.sku = s.sku
            ORDER BY s.row_hash
            ON CONFLICT (row_hash) DO NOTHING
            """,
            [job.pk],
        )
        inserted = cursor.rowcount
        for table in ("rfm_stage_customer", "rfm_stage_product", "rfm_stage_transaction"):
            cursor.execute(f"DROP TABLE {table}")
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
