"""CDNOW: the pure conversion, and load_cdnow end to end through the product's own import."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pandas as pd
import pytest
from django.core.management import call_command
from django.db.models import Count, Sum

from rfm_portal.customers import cdnow, importing
from rfm_portal.customers.models import Customer, ImportJob, Product, Transaction

MASTER_LINES = 69_659
MASTER_CUSTOMERS = 23_570
SAMPLE_LINES = 6_919
SAMPLE_CUSTOMERS = 2_357

MASTER_TEXT = """ customer_id  date number_of_cds  dollar_value
 00001 19970101  1   11.77
 00002 19970112  1   12.00
 00002 19970112  5   77.00
 00003 19970102  2   20.76
 00003 19970330  1    0.00
"""
SAMPLE_TEXT = """ 00002 0001 19970112  1   12.00
 00002 0001 19970112  5   77.00
"""


def test_conversion_of_a_few_lines(tmp_path):
    path = tmp_path / "CDNOW_master.txt"
    path.write_text(MASTER_TEXT)
    frame = cdnow.to_transactions(cdnow.read_raw(path))
    assert tuple(frame.columns) == cdnow.SCHEMA
    assert frame.to_dict("records") == [
        {"invoice": "00001-19970101-1", "customer_id": "00001", "sku": "CD", "description": "1 CD",
         "category": "music", "invoiced_at": "1997-01-01 00:00:00", "quantity": "1", "unit_price": "11.77",
         "country": ""},
        {"invoice": "00002-19970112-1", "customer_id": "00002", "sku": "CD", "description": "1 CD",
         "category": "music", "invoiced_at": "1997-01-12 00:00:00", "quantity": "1", "unit_price": "12.00",
         "country": ""},
        {"invoice": "00002-19970112-2", "customer_id": "00002", "sku": "CD", "description": "5 CDs",
         "category": "music", "invoiced_at": "1997-01-12 00:00:00", "quantity": "1", "unit_price": "77.00",
         "country": ""},
        {"invoice": "00003-19970102-1", "customer_id": "00003", "sku": "CD", "description": "2 CDs",
         "category": "music", "invoiced_at": "1997-01-02 00:00:00", "quantity": "1", "unit_price": "20.76",
         "country": ""},
        {"invoice": "00003-19970330-1", "customer_id": "00003", "sku": "CD", "description": "1 CD",
         "category": "music", "invoiced_at": "1997-03-30 00:00:00", "quantity": "1", "unit_price": "0.00",
         "country": ""},
    ]  # fmt: skip


def test_converted_file_passes_the_importer_validation_unchanged(tmp_path):
    raw = tmp_path / "CDNOW_master.txt"
    raw.write_text(MASTER_TEXT)
    csv = cdnow.write_csv(cdnow.to_transactions(cdnow.read_raw(raw)), tmp_path / "cdnow.csv")
    result = importing.validate_transactions(importing.read_table(csv))
    assert result.errors == []  # the zero-value line is kept: a zero price is valid
    assert result.valid["amount_e4"].tolist() == [117_700, 120_000, 770_000, 207_600, 0]
    assert not result.valid["is_return"].any()
    assert result.valid["row_hash"].is_unique


def test_sample_layout_gives_the_same_rows_as_the_master(tmp_path):
    master, sample = tmp_path / "CDNOW_master.txt", tmp_path / "CDNOW_sample.txt"
    master.write_text(MASTER_TEXT)
    sample.write_text(SAMPLE_TEXT)
    from_master = cdnow.to_transactions(cdnow.read_raw(master))
    from_sample = cdnow.to_transactions(cdnow.read_raw(sample))
    expected = from_master[from_master["customer_id"] == "00002"].reset_index(drop=True)
    pd.testing.assert_frame_equal(from_sample, expected)


def test_whole_shipped_files_convert_completely():
    master = cdnow.read_raw(cdnow.dataset_path(cdnow.MASTER))
    frame = cdnow.to_transactions(master)
    assert len(frame) == MASTER_LINES and frame["customer_id"].nunique() == MASTER_CUSTOMERS
    assert frame["invoice"].is_unique and frame["invoice"].str.len().max() <= importing.MAX_INVOICE
    assert not frame["invoice"].str.startswith("C").any()  # "C…" would be read as a cancellation
    assert frame["unit_price"].map(Decimal).sum() == master["dollars"].map(Decimal).sum()
    assert (frame["unit_price"].map(Decimal) == 0).sum() == 80
    sample = cdnow.to_transactions(cdnow.read_raw(cdnow.dataset_path(cdnow.SAMPLE)))
    assert len(sample) == SAMPLE_LINES and sample["customer_id"].nunique() == SAMPLE_CUSTOMERS
    # The sample's rows are the master's rows for those customers, invoice numbers included.
    subset = frame[frame["customer_id"].isin(set(sample["customer_id"]))]
    pd.testing.assert_frame_equal(
        sample.sort_values("invoice", ignore_index=True), subset.sort_values("invoice", ignore_index=True)
    )


def test_missing_dataset_is_reported():
    with pytest.raises(FileNotFoundError):
        cdnow.dataset_path("no_such_file.txt")


@pytest.mark.django_db
def test_load_cdnow_imports_the_master_file_and_the_sample_adds_nothing():
    raw = cdnow.read_raw(cdnow.dataset_path(cdnow.MASTER))
    out = StringIO()
    call_command("load_cdnow", stdout=out)
    job = ImportJob.objects.get()
    assert (job.status, job.file_name, job.kind) == (ImportJob.Status.SUCCEEDED, "CDNOW_master.txt", "transactions")
    assert (job.rows_total, job.rows_inserted, job.rows_rejected) == (MASTER_LINES, MASTER_LINES, 0)
    assert Transaction.objects.count() == MASTER_LINES
    assert Customer.objects.count() == MASTER_CUSTOMERS
    assert Customer.objects.filter(external_id="00001").exists()
    assert list(Product.objects.values_list("sku", "category")) == [("CD", "music")]
    totals = Transaction.objects.aggregate(amount=Sum("amount"), quantity=Sum("quantity"))
    assert totals["amount"] == raw["dollars"].map(Decimal).sum()
    assert totals["quantity"] == MASTER_LINES
    per_customer = dict(
        Transaction.objects.values("customer__external_id")
        .annotate(n=Count("id"))
        .values_list("customer__external_id", "n")
    )
    assert per_customer == raw.groupby("customer_id").size().to_dict()
    first = Customer.objects.get(external_id="00002")
    assert first.first_seen.date().isoformat() == "1997-01-12"
    assert "69,659 new" in out.getvalue()

    # The sample is a subset of the master: loading it is accepted and adds nothing.
    call_command("load_cdnow", sample=True, skip_invalid=True, stdout=StringIO())
    sample_job = ImportJob.objects.get(file_name="CDNOW_sample.txt")
    assert (sample_job.status, sample_job.skip_invalid) == (ImportJob.Status.SUCCEEDED, True)
    assert (sample_job.rows_inserted, sample_job.rows_duplicate) == (0, SAMPLE_LINES)
    assert Transaction.objects.count() == MASTER_LINES


@pytest.mark.django_db
def test_imported_sample_reproduces_the_published_bgnbd_and_gamma_gamma_fits():
    """CDNOW 1/10 sample, 39-week calibration (to 1997-09-30). BG/NBD (Fader, Hardie & Lee 2005):
    r=0.243, α=4.414 (weeks), a=0.793, b=2.426. Gamma-Gamma (Fader, Hardie & Lee 2005b; lifetimes'
    documentation): p=6.25, q=3.74, v=15.44. The imported rows, summarised by lifetimes, give both."""
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    call_command("load_cdnow", sample=True, stdout=StringIO())
    rows = pd.DataFrame(
        Transaction.objects.values_list("customer__external_id", "invoiced_at", "amount"),
        columns=["customer_id", "invoiced_at", "amount"],
    )
    assert len(rows) == SAMPLE_LINES
    rows["day"] = rows["invoiced_at"].dt.tz_convert(None).dt.normalize()
    rows["amount"] = rows["amount"].astype(float)
    calibration = rows[rows["day"] <= "1997-09-30"]
    summary = summary_data_from_transaction_data(
        calibration, "customer_id", "day", monetary_value_col="amount", observation_period_end="1997-09-30", freq="D"
    )
    assert len(summary) == SAMPLE_CUSTOMERS
    weeks = summary.assign(recency=summary["recency"] / 7, T=summary["T"] / 7)
    bg = BetaGeoFitter().fit(weeks["frequency"], weeks["recency"], weeks["T"])
    for name, value in {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}.items():
        assert bg.params_[name] == pytest.approx(value, rel=0.01), name
    repeat = weeks[weeks["frequency"] > 0]
    gg = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
    for name, value in {"p": 6.25, "q": 3.74, "v": 15.44}.items():
        assert gg.params_[name] == pytest.approx(value, rel=0.01), name
