"""A transactions file streamed in chunks (COPY path) imports exactly what the whole file would, all or nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.db import connection

from rfm_portal.customers import importing as im
from rfm_portal.customers import services
from rfm_portal.customers.models import Customer, ImportJob, Product, Transaction
from tests.customers.test_import_service import HEADER, messy_file, snapshot, wipe, write


@pytest.fixture
def chunk_rows(monkeypatch):
    """Set the chunk size of the COPY path (small, so a few hundred lines make many chunks)."""

    def set_size(rows: int) -> None:
        monkeypatch.setattr(services, "IMPORT_CHUNK_ROWS", rows)

    set_size(50)
    return set_size


def good(i: int, customer: int = 7, when: str = "2024-01-02 10:00") -> str:
    return f"{i},{customer},S{i % 5},d{i % 3},c,{when},{1 + i % 4},2.5,UK"


def test_a_bad_line_in_a_later_chunk_rejects_the_whole_file(db, tmp_path, chunk_rows):
    rows = [good(i) for i in range(400)]
    rows[337] = "x,7,S,,,2024-01-02 10:00,many,2.5,UK"  # line 339, in the 7th chunk
    job = services.import_transactions(write(tmp_path, "\n".join([HEADER, *rows])))
    assert job.status == ImportJob.Status.REJECTED
    assert job.errors == [{"line": 339, "reason": "quantity 'many' is not a number"}]
    assert (job.rows_total, job.rows_accepted, job.rows_rejected, job.rows_inserted) == (400, 399, 1, 0)
    assert Transaction.objects.count() == Customer.objects.count() == Product.objects.count() == 0


@pytest.mark.parametrize("skip_invalid", [False, True])
def test_a_malformed_line_in_a_later_chunk_imports_nothing(db, tmp_path, chunk_rows, skip_invalid):
    rows = [good(i) for i in range(300)]
    rows[250] += ",extra,more"  # line 252: more fields than the header
    job = services.import_transactions(write(tmp_path, "\n".join([HEADER, *rows])), skip_invalid=skip_invalid)
    assert job.status == ImportJob.Status.REJECTED
    assert "line 252" in job.message and "Nothing was imported" in job.message
    assert Transaction.objects.count() == Customer.objects.count() == Product.objects.count() == 0


def test_rejected_line_numbers_are_those_of_the_file_across_chunks(db, tmp_path, chunk_rows):
    lines = [HEADER]
    for i in range(500):
        if i % 97 == 0:
            lines.append(f"{i},,S,,,2024-01-02,1,1,UK")  # no customer id
        elif i % 61 == 0:
            lines.append("")  # blank lines keep their numbers
        elif i % 83 == 0:
            lines.append(f'{i},7,S,"two\nlines",,nope,1,1,UK')  # a quoted line break and a bad date
        else:
            lines.append(good(i))
    path = write(tmp_path, "\n".join(lines) + "\n")
    expected = im.validate_transactions(im.read_table(path)).errors
    assert len(expected) == 12 and max(line for line, _ in expected) > 400

    job = services.import_transactions(path, skip_invalid=True)
    assert [(e["line"], e["reason"]) for e in job.errors] == expected
    assert job.rows_rejected == len(expected)
    assert job.rows_inserted == job.rows_accepted == job.rows_total - len(expected)


def test_identical_lines_in_different_chunks_are_all_kept_with_the_whole_file_hashes(db, tmp_path, chunk_rows):
    repeated = "R1,7,S,,,2024-01-02 10:00,1,2.5,UK"
    rows = [good(i) for i in range(200)]
    for at in (3, 4, 60, 140, 199):  # twice in the first chunk, then once in three later chunks
        rows[at] = repeated
    path = write(tmp_path, "\n".join([HEADER, *rows]))
    whole = im.validate_transactions(im.read_table(path)).valid["row_hash"]

    job = services.import_transactions(path)
    assert (job.rows_inserted, job.rows_duplicate) == (200, 0)
    assert Transaction.objects.filter(invoice="R1").count() == 5
    assert set(Transaction.objects.values_list("row_hash", flat=True)) == set(whole)


@pytest.mark.parametrize("sizes", [(50, 1_000_000), (1_000_000, 50), (37, 101)])
def test_same_file_in_other_chunk_sizes_adds_nothing(db, tmp_path, chunk_rows, sizes):
    path = messy_file(tmp_path)
    chunk_rows(sizes[0])
    first = services.import_transactions(path)
    assert first.status == ImportJob.Status.SUCCEEDED and first.rows_inserted == first.rows_total > 600
    before = snapshot()
    chunk_rows(sizes[1])
    again = services.import_transactions(path)
    assert (again.rows_inserted, again.rows_duplicate) == (0, first.rows_inserted)
    assert snapshot() == before


def test_chunked_import_writes_what_the_orm_path_writes(db, tmp_path, chunk_rows):
    path = messy_file(tmp_path)
    chunk_rows(23)
    services.import_transactions(path, use_copy=True)
    by_chunks = snapshot()
    wipe()
    services.import_transactions(path, use_copy=False)
    assert by_chunks["transactions"] and snapshot() == by_chunks


def test_overlapping_chunked_files_only_add_the_new_lines(db, tmp_path, chunk_rows):
    chunk_rows(7)
    rows = [good(i) for i in range(60)]
    services.import_transactions(write(tmp_path, "\n".join([HEADER, *rows[:40]]), "a.csv"))
    job = services.import_transactions(write(tmp_path, "\n".join([HEADER, *rows[25:]]), "b.csv"))
    assert (job.rows_inserted, job.rows_duplicate) == (20, 15)
    assert Transaction.objects.count() == 60


def test_customer_and_product_text_come_from_the_last_chunk_that_has_them(db, tmp_path, chunk_rows):
    chunk_rows(2)
    text = "\n".join(
        [
            HEADER,
            "1,7,S,First,toys,2024-03-01 10:00,1,2,France",
            "2,7,S,,,2024-01-01 10:00,1,2,",  # earliest line, in the first chunk
            "3,7,S,Second,,2024-05-01 10:00,1,2,Spain",
            "4,8,T,,,2024-05-01 10:00,1,2,Italy",
            "5,7,S,,,2024-06-01 10:00,1,2,",  # the last chunk has no text for 7 or S
        ]
    )
    services.import_transactions(write(tmp_path, text))
    seven = Customer.objects.get(external_id="7")
    assert (seven.country, seven.first_seen) == ("Spain", datetime(2024, 1, 1, 10, tzinfo=UTC))
    assert Product.objects.get(sku="S").description == "Second"
    assert Product.objects.get(sku="S").category == "toys"


@pytest.mark.django_db(transaction=True)
def test_the_foreign_key_shortcut_writes_the_same_rows_and_is_switched_off_after(tmp_path, monkeypatch):
    path = messy_file(tmp_path)
    monkeypatch.setattr(services, "IMPORT_CHUNK_ROWS", 100)
    monkeypatch.setattr(services, "SKIP_FK_TRIGGERS_WHEN_ALLOWED", False)
    services.import_transactions(path)
    checked = snapshot()
    wipe()
    monkeypatch.setattr(services, "SKIP_FK_TRIGGERS_WHEN_ALLOWED", True)
    job = services.import_transactions(path)
    assert job.status == ImportJob.Status.SUCCEEDED and snapshot() == checked
    with connection.cursor() as cursor:
        cursor.execute("SHOW session_replication_role")
        assert cursor.fetchone()[0] == "origin"
    # Every key the shortcut wrote points at a row (inner joins drop dangling ones).
    rows = Transaction.objects.count()
    assert Transaction.objects.filter(customer__external_id__isnull=False, import_job__pk=job.pk).count() == rows
    with_product = Transaction.objects.exclude(product_id=None)
    assert with_product.filter(product__sku__isnull=False).count() == with_product.count() > 0


def _write_rows(tmp_path: Path, rows: list[str]) -> Path:
    return write(tmp_path, "\n".join([HEADER, *rows]))


def test_header_only_and_all_blank_files_are_rejected(db, tmp_path, chunk_rows):
    chunk_rows(2)
    for rows in ([], ["", "", "", "", ""]):
        job = services.import_transactions(_write_rows(tmp_path, rows))
        assert job.status == ImportJob.Status.REJECTED
        assert "header but no data rows" in job.message
