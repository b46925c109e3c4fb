"""The import's two speed-ups keep it all or nothing: reading ahead in a worker thread, and rebuilding
the indexes of an empty transaction table instead of maintaining them."""

from __future__ import annotations

import threading

import psycopg
import pytest
from django.db import connection

from rfm_portal.customers import importing as im
from rfm_portal.customers import services
from rfm_portal.customers.models import Customer, ImportJob, Product, Transaction
from tests.customers.test_import_chunks import good
from tests.customers.test_import_service import HEADER, messy_file, snapshot, wipe, write

TX = Transaction._meta.db_table


def read_ahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "import-read-ahead"]


def index_definitions() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s ORDER BY indexname", [TX])
        return [row[0] for row in cursor.fetchall()]


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(services, "IMPORT_CHUNK_ROWS", 50)


# --- _read_ahead on its own ----------------------------------------------------------------


def test_read_ahead_yields_every_item_in_order_from_another_thread():
    produced_in = []

    def items():
        for i in range(5):
            produced_in.append(threading.current_thread().name)
            yield i

    assert list(services._read_ahead(items())) == [0, 1, 2, 3, 4]
    assert set(produced_in) == {"import-read-ahead"}
    assert not read_ahead_threads()


def test_read_ahead_raises_the_workers_error_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise ValueError("chunk 3 is broken")

    seen = []
    with pytest.raises(ValueError, match="chunk 3 is broken"):
        for item in services._read_ahead(items()):
            seen.append(item)
    assert seen == [1, 2]
    assert not read_ahead_threads()


def test_read_ahead_stops_the_worker_when_the_caller_stops_early():
    produced = []

    def items():
        for i in range(1000):
            produced.append(i)
            yield i

    ahead = services._read_ahead(items())
    assert next(ahead) == 0
    ahead.close()  # what a `for` loop left by an exception does
    assert not read_ahead_threads()
    assert len(produced) <= 3  # the one handed over, the one waiting, the one being made: no more


# --- The import with a worker reading ahead ------------------------------------------------


def test_an_error_reading_a_later_chunk_while_one_is_written_rolls_everything_back(db, tmp_path, small_chunks):
    calls = {"validated": 0}
    validate = im.validate_transactions

    def failing_third(frame, mapping=None, dayfirst=False):
        calls["validated"] += 1
        if calls["validated"] == 3:
            raise RuntimeError("disk gone")
        return validate(frame, mapping, dayfirst=dayfirst)

    written = []
    add = services._TransactionStage.add

    def add_and_count(self, valid):
        add(self, valid)
        written.append(len(valid))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(im, "validate_transactions", failing_third)
        patch.setattr(services._TransactionStage, "add", add_and_count)
        path = write(tmp_path, "\n".join([HEADER, *(good(i) for i in range(200))]))
        with pytest.raises(RuntimeError, match="disk gone"):
            services.import_transactions(path)
    assert written == [50, 50]  # two chunks were staged before the third failed
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.FAILED and "disk gone" in job.message
    assert Transaction.objects.count() == Customer.objects.count() == Product.objects.count() == 0
    assert not read_ahead_threads()


def test_a_database_error_writing_a_chunk_stops_the_reader_and_imports_nothing(db, tmp_path, small_chunks):
    add = services._TransactionStage.add
    calls = {"added": 0}

    def failing_second(self, valid):
        calls["added"] += 1
        if calls["added"] == 2:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 / 0")
        add(self, valid)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(services._TransactionStage, "add", failing_second)
        path = write(tmp_path, "\n".join([HEADER, *(good(i) for i in range(400))]))
        with pytest.raises(Exception, match="division by zero"):
            services.import_transactions(path)
    assert ImportJob.objects.get().status == ImportJob.Status.FAILED
    assert Transaction.objects.count() == Customer.objects.count() == Product.objects.count() == 0
    assert not read_ahead_threads()


def test_a_missing_column_still_counts_every_row_of_the_rejected_file(db, tmp_path, small_chunks):
    rows = [line.rsplit(",", 2)[0] for line in (good(i) for i in range(175))]
    path = write(tmp_path, "\n".join(["invoice,customer_id,sku,description,category,invoiced_at,quantity", *rows]))
    job = services.import_transactions(path)
    assert job.status == ImportJob.Status.REJECTED and "unit_price" in job.message
    assert job.rows_total == job.rows_rejected == 175
    assert not read_ahead_threads()


# --- An empty transaction table: indexes rebuilt, not maintained ---------------------------


@pytest.fixture
def index_builds(monkeypatch) -> list[list[str]]:
    """The CREATE INDEX statements each import ran after its INSERT (an empty list: none)."""
    builds: list[list[str]] = []
    create = services._create_indexes

    def recorded(cursor, definitions):
        builds.append(list(definitions))
        create(cursor, definitions)

    monkeypatch.setattr(services, "_create_indexes", recorded)
    return builds


def test_an_import_into_an_empty_table_rebuilds_the_same_indexes_and_writes_the_same_rows(
    db, tmp_path, small_chunks, index_builds, monkeypatch
):
    path = messy_file(tmp_path)
    indexes = index_definitions()
    monkeypatch.setattr(services, "REBUILD_INDEXES_OF_EMPTY_TABLE", False)
    services.import_transactions(path)
    maintained = snapshot()
    assert index_builds == []
    wipe()

    monkeypatch.setattr(services, "REBUILD_INDEXES_OF_EMPTY_TABLE", True)
    job = services.import_transactions(path)
    assert job.status == ImportJob.Status.SUCCEEDED and snapshot() == maintained
    # The four non-unique ones were dropped and built again; the pk and row_hash's unique index stayed.
    assert len(index_builds) == 1 and len(index_builds[0]) == 4
    assert all("UNIQUE" not in definition for definition in index_builds[0])
    assert index_definitions() == indexes

    again = services.import_transactions(path)  # the table has rows now: the ordinary path
    assert (again.rows_inserted, again.rows_duplicate) == (0, job.rows_inserted)
    assert len(index_builds) == 1 and index_definitions() == indexes


def test_a_failure_after_the_indexes_were_dropped_restores_them(db, tmp_path, small_chunks, monkeypatch):
    indexes = index_definitions()

    def broken(cursor, definitions):
        raise RuntimeError("index build interrupted")

    monkeypatch.setattr(services, "_create_indexes", broken)
    with pytest.raises(RuntimeError, match="index build interrupted"):
        services.import_transactions(messy_file(tmp_path))
    assert ImportJob.objects.get().status == ImportJob.Status.FAILED
    assert Transaction.objects.count() == Customer.objects.count() == 0
    assert index_definitions() == indexes


@pytest.mark.django_db(transaction=True)
def test_an_empty_table_another_session_is_reading_keeps_its_indexes(tmp_path, index_builds, monkeypatch):
    monkeypatch.setattr(services, "IMPORT_CHUNK_ROWS", 50)
    url = connection.settings_dict
    dsn = f"host={url['HOST']} port={url['PORT']} user={url['USER']} dbname={url['NAME']}"
    with psycopg.connect(dsn) as reader:  # holds ACCESS SHARE on the table until it ends
        reader.execute(f"SELECT count(*) FROM {TX}").fetchone()
        job = services.import_transactions(messy_file(tmp_path))
        reader.rollback()
    assert job.status == ImportJob.Status.SUCCEEDED and job.rows_inserted > 600
    assert index_builds == []  # the lock was not free at once: the ordinary path, no waiting
    wipe()


# --- Chunks written as they come: lines repeated across chunks -----------------------------


def test_a_later_chunk_with_more_copies_of_a_line_than_earlier_ones_gets_the_whole_file_hashes(
    db, tmp_path, monkeypatch
):
    monkeypatch.setattr(services, "IMPORT_CHUNK_ROWS", 10)
    repeated = "R1,7,S,,,2024-01-02 10:00,1,2.5,UK"
    rows = [good(i) for i in range(40)]
    for at in (2, 11, 12, 13, 25, 27):  # once in chunk 1, three times in chunk 2, twice in chunk 3
        rows[at] = repeated
    path = write(tmp_path, "\n".join([HEADER, *rows]))
    whole = im.validate_transactions(im.read_table(path)).valid["row_hash"]

    job = services.import_transactions(path)
    assert (job.rows_inserted, job.rows_duplicate) == (40, 0)
    assert sorted(Transaction.objects.values_list("row_hash", flat=True)) == sorted(whole)
    monkeypatch.setattr(services, "IMPORT_CHUNK_ROWS", 1000)  # the same file in one piece adds nothing
    again = services.import_transactions(path)
    assert (again.rows_inserted, again.rows_duplicate) == (0, 40)
    assert Transaction.objects.filter(invoice="R1").count() == 6


def test_a_transactions_import_waits_for_another_one_to_finish(db, tmp_path):
    """Chunks upsert their customers as they come, so two imports at once could deadlock: they take turns."""
    settings = connection.settings_dict
    dsn = f"host={settings['HOST']} port={settings['PORT']} user={settings['USER']} dbname={settings['NAME']}"
    with psycopg.connect(dsn, autocommit=True) as other:  # an import running elsewhere holds the lock
        other.execute("SELECT pg_advisory_lock(hashtext(%s))", [services.IMPORT_LOCK])
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '300ms'")
        with pytest.raises(Exception, match="lock timeout"):
            services.import_transactions(messy_file(tmp_path))
    assert ImportJob.objects.get().status == ImportJob.Status.FAILED
    assert Transaction.objects.count() == Customer.objects.count() == 0
