"""The import services against PostgreSQL: COPY path and ORM path."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from rfm_portal.customers import services
from rfm_portal.customers.models import CampaignHistory, Customer, ImportJob, Product, Transaction

FILES = Path(__file__).parent / "files"
RETAIL = FILES / "online_retail_sample.csv"
HEADER = "invoice,customer_id,sku,description,category,invoiced_at,quantity,unit_price,country"
BOTH_PATHS = pytest.mark.parametrize("use_copy", [True, False], ids=["copy", "orm"])


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def snapshot() -> dict[str, list[tuple]]:
    """Everything an import writes, in a comparable form (database ids left out)."""
    return {
        "transactions": list(
            Transaction.objects.order_by("row_hash").values_list(
                "invoice",
                "customer__external_id",
                "product__sku",
                "invoiced_at",
                "quantity",
                "unit_price",
                "amount",
                "is_return",
                "row_hash",
            )
        ),
        "customers": list(Customer.objects.order_by("external_id").values_list("external_id", "country", "first_seen")),
        "products": list(Product.objects.order_by("sku").values_list("sku", "description", "category")),
        "campaigns": list(
            CampaignHistory.objects.order_by("campaign", "customer__external_id").values_list(
                "customer__external_id", "campaign", "treated", "converted", "revenue", "sent_at"
            )
        ),
    }


def wipe() -> None:
    Transaction.objects.all().delete()
    CampaignHistory.objects.all().delete()
    Customer.objects.all().delete()
    Product.objects.all().delete()


def messy_file(tmp_path: Path, rows: int = 600, seed: int = 7) -> Path:
    """Random but deterministic lines with the awkward bits: quotes, commas, accents, repeats, returns."""
    rng = np.random.default_rng(seed)
    descriptions = ['MUG, "BIG"', "Crème brûlée dish", "plain", "", "Tab\there"]
    lines = [HEADER]
    for i in range(rows):
        customer = f"{rng.integers(1, 40)}{'.0' if rng.random() < 0.2 else ''}"
        sku = f"SKU{rng.integers(1, 25)}" if rng.random() < 0.9 else ""
        description = descriptions[rng.integers(len(descriptions))].replace('"', '""')
        quantity = int(rng.integers(-3, 12))
        invoice = f"{'C' if rng.random() < 0.05 else ''}{1000 + i // 3}"
        when = f"2024-0{rng.integers(1, 10)}-1{rng.integers(0, 10)} 1{rng.integers(0, 10)}:{rng.integers(10, 60)}"
        price = f"{rng.integers(0, 5000) / 100:.2f}"
        extra = f"cat{rng.integers(3)},{when},{quantity},{price},C{rng.integers(4)}"
        line = f'{invoice},{customer},{sku},"{description}",{extra}'
        lines.append(line)
        if rng.random() < 0.05:
            lines.append(line)  # a genuine identical duplicate line
    return write(tmp_path, "\n".join(lines) + "\n", "messy.csv")


# --- Validation outcome ------------------------------------------------------------------


@BOTH_PATHS
def test_any_invalid_row_rejects_the_whole_file(db, use_copy):
    job = services.import_transactions(RETAIL, use_copy=use_copy)
    assert job.status == ImportJob.Status.REJECTED
    assert (job.rows_total, job.rows_accepted, job.rows_rejected, job.rows_inserted) == (9, 8, 1, 0)
    assert job.errors == [{"line": 6, "reason": "no customer id"}]
    assert "nothing was imported" in job.message
    assert job.finished_at is not None
    assert Transaction.objects.count() == Customer.objects.count() == Product.objects.count() == 0


@BOTH_PATHS
def test_skip_invalid_imports_the_valid_rows_of_an_online_retail_file(db, use_copy, admin):
    job = services.import_transactions(RETAIL, skip_invalid=True, use_copy=use_copy, user=admin)
    assert job.status == ImportJob.Status.SUCCEEDED
    assert (job.rows_total, job.rows_accepted, job.rows_inserted, job.rows_duplicate, job.rows_rejected) == (
        9,
        8,
        8,
        0,
        1,
    )
    assert job.errors == [{"line": 6, "reason": "no customer id"}]
    assert job.created_by == admin
    assert job.file_name == "online_retail_sample.csv"
    assert len(job.file_sha256) == 64
    assert job.column_mapping["customer_id"] == "CustomerID"
    assert Transaction.objects.count() == 8
    assert set(Transaction.objects.values_list("import_job", flat=True)) == {job.pk}
    # The identical lines 3 and 4 are both kept.
    assert Transaction.objects.filter(invoice="536365", product__sku="71053").count() == 2
    returns = Transaction.objects.filter(is_return=True).order_by("invoice")
    assert [(t.invoice, t.quantity, t.amount) for t in returns] == [
        ("536520", -3, Decimal("-3.7500")),
        ("C536379", -1, Decimal("-27.5000")),
        ("C536383", -1, Decimal("-4.6500")),
    ]
    first = Transaction.objects.get(invoice="536365", product__sku="85123A")
    assert first.invoiced_at == datetime(2010, 12, 1, 8, 26, tzinfo=UTC)
    assert (first.quantity, first.unit_price, first.amount) == (6, Decimal("2.5500"), Decimal("15.3000"))
    customer = Customer.objects.get(external_id="17850")
    assert (customer.country, customer.first_seen) == ("United Kingdom", datetime(2010, 12, 1, 8, 26, tzinfo=UTC))
    assert Customer.objects.get(external_id="12583").country == "France"
    assert not Customer.objects.filter(external_id="17850.0").exists()
    assert Product.objects.get(sku="22633").description == "HAND WARMER UNION JACK, RED"


@BOTH_PATHS
def test_same_file_twice_adds_nothing(db, use_copy, tmp_path):
    path = messy_file(tmp_path)
    first = services.import_transactions(path, use_copy=use_copy)
    assert first.status == ImportJob.Status.SUCCEEDED
    assert first.rows_inserted == first.rows_accepted == first.rows_total > 600
    before = snapshot()
    second = services.import_transactions(path, use_copy=use_copy)
    assert second.status == ImportJob.Status.SUCCEEDED
    assert (second.rows_inserted, second.rows_duplicate) == (0, first.rows_accepted)
    assert "0 new rows imported" in second.message
    assert snapshot() == before


@BOTH_PATHS
def test_overlapping_files_only_add_the_new_lines(db, use_copy, tmp_path):
    rows = [f"{i},7,S,,,2024-01-0{i} 10:00,1,2.5,UK" for i in range(1, 6)]
    services.import_transactions(write(tmp_path, "\n".join([HEADER, *rows[:3]]), "a.csv"), use_copy=use_copy)
    job = services.import_transactions(write(tmp_path, "\n".join([HEADER, *rows[1:]]), "b.csv"), use_copy=use_copy)
    assert (job.rows_inserted, job.rows_duplicate) == (2, 2)
    assert sorted(Transaction.objects.values_list("invoice", flat=True)) == ["1", "2", "3", "4", "5"]


def test_copy_and_orm_paths_write_identical_rows(db, tmp_path):
    path = messy_file(tmp_path)
    services.import_transactions(path, use_copy=True)
    services.import_transactions(RETAIL, use_copy=True, skip_invalid=True)
    by_copy = snapshot()
    wipe()
    services.import_transactions(path, use_copy=False)
    services.import_transactions(RETAIL, use_copy=False, skip_invalid=True)
    by_orm = snapshot()
    assert by_copy["transactions"] and by_copy == by_orm
    # The awkward text survived the CSV round trip of COPY.
    assert Product.objects.filter(description='MUG, "BIG"').exists()
    assert Product.objects.filter(description="Crème brûlée dish").exists()


@BOTH_PATHS
def test_customers_and_products_are_upserted(db, use_copy, tmp_path):
    Customer.objects.create(external_id="7", country="Spain", first_seen=datetime(2024, 6, 1, tzinfo=UTC))
    Customer.objects.create(external_id="8", country="Spain", first_seen=datetime(2020, 1, 1, tzinfo=UTC))
    Customer.objects.create(external_id="9", country="Spain", first_seen=None)
    Product.objects.create(sku="S", description="Old", category="kept")
    text = "\n".join(
        [
            HEADER,
            "1,7,S,New,,2024-03-01 10:00,1,2,France",
            "2,8,S,,,2024-03-01 10:00,1,2,",
            "3,9,,,,2024-02-01 10:00,1,2,Italy",
        ]
    )
    services.import_transactions(write(tmp_path, text), use_copy=use_copy)
    customers = {c.external_id: (c.country, c.first_seen) for c in Customer.objects.all()}
    assert customers == {
        "7": ("France", datetime(2024, 3, 1, 10, tzinfo=UTC)),  # earlier transaction, new country
        "8": ("Spain", datetime(2020, 1, 1, tzinfo=UTC)),  # already earlier; no country in the file
        "9": ("Italy", datetime(2024, 2, 1, 10, tzinfo=UTC)),
    }
    product = Product.objects.get(sku="S")
    assert (product.description, product.category) == ("New", "kept")
    assert Transaction.objects.get(invoice="3").product is None


@pytest.mark.django_db(transaction=True)
@BOTH_PATHS
def test_a_crash_half_way_leaves_nothing(monkeypatch, use_copy, tmp_path):
    path = messy_file(tmp_path)
    if use_copy:
        monkeypatch.setattr(services, "IMPORT_CHUNK_ROWS", 100)  # several chunks staged
        real = services._upsert_products_sql

        def upsert_then_crash(cursor, table):
            real(cursor, table)  # customers and products are written by now
            raise RuntimeError("disk full")

        monkeypatch.setattr(services, "_upsert_products_sql", upsert_then_crash)
    else:
        monkeypatch.setattr(services, "ORM_BATCH_SIZE", 50)
        real = Transaction.objects.bulk_create
        calls = []

        def insert_then_crash(objs, **kwargs):
            calls.append(len(objs))
            if len(calls) == 3:  # two batches are in by now
                raise RuntimeError("disk full")
            return real(objs, **kwargs)

        monkeypatch.setattr(Transaction.objects, "bulk_create", insert_then_crash)
    with pytest.raises(RuntimeError, match="disk full"):
        services.import_transactions(path, use_copy=use_copy)
    assert Transaction.objects.count() == Customer.objects.count() == Product.objects.count() == 0
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.FAILED
    assert "disk full" in job.message
    assert job.rows_inserted == 0


def test_missing_required_column_rejects_the_file_naming_it(db, tmp_path):
    text = "InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,Country\n"
    text += "1,S,1,12/1/2010 8:26,2.5,UK\n2,S,1,12/1/2010 8:26,2.5,UK\n"
    job = services.import_transactions(write(tmp_path, text))
    assert job.status == ImportJob.Status.REJECTED
    assert "Missing required column customer_id" in job.message
    assert "'InvoiceNo', 'StockCode', 'Quantity', 'InvoiceDate', 'UnitPrice', 'Country'" in job.message
    assert job.errors[0]["line"] == 1
    assert (job.rows_total, job.rows_rejected) == (2, 2)
    assert Transaction.objects.count() == 0


def test_unreadable_file_is_rejected(db, tmp_path):
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a workbook")
    job = services.import_transactions(path)
    assert job.status == ImportJob.Status.REJECTED
    assert "not a readable .xlsx workbook" in job.message


def test_error_list_is_capped_but_the_count_is_exact(db, tmp_path, settings):
    settings.IMPORT_ERROR_REPORT_LIMIT = 3
    rows = [f"{i},,S,,,2024-01-01,1,1,UK" for i in range(5)] + ["9,7,S,,,2024-01-01,1,1,UK"]
    job = services.import_transactions(write(tmp_path, "\n".join([HEADER, *rows])), skip_invalid=True)
    assert job.rows_rejected == 5
    assert [e["line"] for e in job.errors] == [2, 3, 4]
    assert job.rows_inserted == 1


@BOTH_PATHS
def test_explicit_mapping_for_another_layout(db, tmp_path, use_copy):
    text = "Bon;Kunde;Zeit;Menge;Preis;Artikel\nB1;K1;2024-05-01 12:00;2;9,99;X\n"
    mapping = {
        "invoice": "Bon",
        "customer_id": "Kunde",
        "invoiced_at": "Zeit",
        "quantity": "Menge",
        "unit_price": "Preis",
        "sku": "Artikel",
    }
    rejected = services.import_transactions(write(tmp_path, text), mapping=mapping, use_copy=use_copy)
    # "9,99" is not a number here (decimal comma): rejected with its line, not misread as 999.
    assert rejected.errors == [{"line": 2, "reason": "unit_price '9,99' is not a number"}]
    fixed = write(tmp_path, text.replace("9,99", "9.99"), "fixed.csv")
    job = services.import_transactions(
        fixed,
        mapping="invoice=Bon\ncustomer_id=Kunde\ninvoiced_at=Zeit\nquantity=Menge\nunit_price=Preis\nsku=Artikel",
        use_copy=use_copy,
    )
    assert job.status == ImportJob.Status.SUCCEEDED
    assert job.column_mapping == mapping
    t = Transaction.objects.get()
    assert (t.invoice, t.customer.external_id, t.product.sku, t.amount) == ("B1", "K1", "X", Decimal("19.9800"))


def test_api_key_imports_are_recorded_without_a_user(db, api_key, tmp_path):
    from rfm_portal.accounts.authentication import APIKeyUser

    job = services.import_transactions(RETAIL, skip_invalid=True, user=APIKeyUser(api_key[0]))
    assert job.created_by is None
    assert f"api-key:{api_key[0].prefix}" in job.message


# --- Campaign history --------------------------------------------------------------------

CAMPAIGNS = "customer_id,campaign,treated,converted,revenue,sent_at\n"


@BOTH_PATHS
def test_campaign_history_import_is_idempotent_and_creates_customers(db, tmp_path, use_copy):
    existing = Customer.objects.create(external_id="7", country="UK")
    CampaignHistory.objects.create(
        customer=existing, campaign="winter", treated=False, converted=False, sent_at=datetime(2023, 12, 1, tzinfo=UTC)
    )
    text = CAMPAIGNS + "7,spring,1,1,12.50,2024-03-01\n8.0,spring,0,0,,3/1/2024 9:00\n7,winter,1,1,99,2023-12-01\n"
    path = write(tmp_path, text)
    job = services.import_campaign_history(path, use_copy=use_copy)
    assert job.status == ImportJob.Status.SUCCEEDED
    assert job.kind == ImportJob.Kind.CAMPAIGNS
    assert (job.rows_total, job.rows_inserted, job.rows_duplicate) == (3, 2, 1)
    assert Customer.objects.get(external_id="8").first_seen is None
    spring = CampaignHistory.objects.get(customer__external_id="7", campaign="spring")
    assert (spring.treated, spring.converted, spring.revenue) == (True, True, Decimal("12.5000"))
    assert CampaignHistory.objects.get(campaign="winter").treated is False  # the stored record is left as it is
    again = services.import_campaign_history(path, use_copy=use_copy)
    assert (again.rows_inserted, again.rows_duplicate) == (0, 3)
    assert CampaignHistory.objects.count() == 3


def test_campaign_copy_and_orm_paths_agree(db, tmp_path):
    path = write(
        tmp_path,
        CAMPAIGNS + "".join(f"{i % 7},c{i % 3},{i % 2},{i % 5 == 0},{i}.25,2024-03-0{1 + i % 9}\n" for i in range(40)),
    )
    job = services.import_campaign_history(path, use_copy=True, skip_invalid=True)
    by_copy = snapshot()
    wipe()
    services.import_campaign_history(path, use_copy=False, skip_invalid=True)
    assert by_copy["campaigns"] and snapshot() == by_copy
    assert job.rows_rejected == 40 - 21  # 7 customers × 3 campaigns; the rest are repeats
    assert job.errors[0]["reason"].startswith("customer already has a record for this campaign on line ")


def test_invalid_campaign_file_imports_nothing(db, tmp_path):
    job = services.import_campaign_history(
        write(tmp_path, CAMPAIGNS + "7,spring,1,0,0,2024-03-01\n8,spring,2,0,0,2024-03-01\n")
    )
    assert job.status == ImportJob.Status.REJECTED
    assert job.errors == [{"line": 3, "reason": "treated '2' is not 0/1/true/false"}]
    assert CampaignHistory.objects.count() == Customer.objects.count() == 0
