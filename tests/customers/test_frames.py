"""``customers.frames``: the COPY reader returns exactly what the ORM path returned.

The reference below is the ORM query the training services used before the COPY reader (one
``values_list`` with the amount cast to float in SQL). Data: returns and cancellations, a line
without a product, products without a category, invoices with tabs, backslashes and newlines,
times written in several time zones, and amounts whose float conversion is not trivial.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from django.db.models import FloatField
from django.db.models.functions import Cast

from cltv.services import transaction_days
from rfm_portal.customers import frames
from rfm_portal.customers.features import build_features
from rfm_portal.customers.models import Customer, Product, Transaction
from segmentation import selectors as segmentation_selectors

pytestmark = pytest.mark.django_db

TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")


def _orm_transactions(customer_pks=None, before=None) -> pd.DataFrame:
    qs = Transaction.objects.all()
    if customer_pks is not None:
        qs = qs.filter(customer_id__in=customer_pks)
    if before is not None:
        qs = qs.filter(invoiced_at__lt=before)
    rows = list(qs.annotate(amount_f=Cast("amount", FloatField())).values_list(
        "customer_id", "invoice", "invoiced_at", "amount_f", "quantity", "is_return", "product_id",
        "product__category"))
    cust, inv, at, amount, qty, ret, product, cat = zip(*rows, strict=True)
    return pd.DataFrame({
        "customer_id": np.asarray(cust, dtype=np.int64), "invoice": list(inv),
        "invoiced_at": pd.to_datetime(list(at), utc=True), "amount": np.asarray(amount, dtype=np.float64),
        "quantity": np.asarray(qty, dtype=np.int64), "is_return": np.asarray(ret, dtype=bool),
        "product_id": [-1 if p is None else p for p in product], "category": [c or "" for c in cat],
    })


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Plain dtypes, rows in one order (the reader promises no order)."""
    out = frame.copy()
    for name in out.columns:
        if isinstance(out[name].dtype, pd.CategoricalDtype):
            out[name] = out[name].astype(str)
        elif name in ("customer_id", "quantity", "product_id"):
            out[name] = out[name].astype(np.int64)
    return out.sort_values(list(out.columns)).reset_index(drop=True)


@pytest.fixture
def lines() -> list[Customer]:
    mug = Product.objects.create(sku="MUG", description="Mug", category="Home & Kitchen")
    odd = Product.objects.create(sku="ODD", description="Odd", category="")
    scarf = Product.objects.create(sku="SCARF", description="Scarf", category="Fashion\tWinter")
    a = Customer.objects.create(external_id="A", country="United Kingdom")
    b = Customer.objects.create(external_id="B", country="")
    c = Customer.objects.create(external_id="C")
    rows = [
        (a, "536365", mug, dt.datetime(2024, 1, 1, 8, 30, tzinfo=dt.UTC), 6, "2.55"),
        (a, "536365", scarf, dt.datetime(2024, 1, 1, 8, 30, tzinfo=dt.UTC), 1, "0.1"),
        (a, "C536365", mug, dt.datetime(2024, 1, 3, 23, 59, 59, 999999, tzinfo=dt.UTC), -2, "2.55"),
        (a, "536400", None, dt.datetime(2024, 1, 5, 9, 0, tzinfo=TOKYO), 3, "1.1"),
        (b, "tab\there", odd, dt.datetime(2024, 2, 1, 0, 0, 0, 1, tzinfo=NEW_YORK), 1, "1234567.8901"),
        (b, "back\\slash\nnew", odd, dt.datetime(2023, 12, 31, 23, 0, tzinfo=NEW_YORK), 2, "0.3333"),
        (b, "C9", scarf, dt.datetime(2024, 2, 2, 12, 0, tzinfo=dt.UTC), -1, "0.0001"),
        (c, "C10", None, dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC), -1, "9.99"),  # a return only
        (c, "11", mug, dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=dt.UTC), 0, "0"),
    ]
    Transaction.objects.bulk_create([
        Transaction(customer=cust, invoice=inv, product=prod, invoiced_at=at, quantity=q,
                    unit_price=Decimal(price), amount=Decimal(price) * q, is_return=inv.startswith("C") or q < 0,
                    row_hash=f"h{i}")
        for i, (cust, inv, prod, at, q, price) in enumerate(rows)
    ])
    return [a, b, c]


def test_every_column_equals_the_orm_path(lines):
    got = frames.transaction_frame(frames.TRANSACTION_COLUMNS)
    assert list(got.columns) == list(frames.TRANSACTION_COLUMNS)
    assert got["customer_id"].dtype == np.int32 and str(got["invoiced_at"].dtype) == "datetime64[ns, UTC]"
    assert got["amount"].dtype == np.float64 and got["is_return"].dtype == bool
    pd.testing.assert_frame_equal(_comparable(got), _comparable(_orm_transactions()[list(got.columns)]))
    # exact floats, not approximately equal ones
    assert sorted(got["amount"]) == sorted(_orm_transactions()["amount"])
    assert {"tab\there", "back\\slash\nnew"} <= set(got["invoice"].astype(str))
    assert set(got["category"].astype(str)) == {"Home & Kitchen", "Fashion\tWinter", ""}


def test_filters_equal_the_orm_filters(lines):
    a, b, _c = lines
    before = dt.datetime(2024, 1, 5, 0, 0, tzinfo=dt.UTC)  # 2024-01-05 09:00 Tokyo is 00:00 UTC: excluded
    got = frames.transaction_frame(frames.TRANSACTION_COLUMNS, customer_ids=[a.pk, b.pk], before=before)
    want = _orm_transactions([a.pk, b.pk], before)
    assert len(got) == len(want) == 4
    pd.testing.assert_frame_equal(_comparable(got), _comparable(want[list(got.columns)]))
    naive = frames.transaction_frame(("invoice",), before=before.replace(tzinfo=None))  # naive = UTC
    assert sorted(naive["invoice"].astype(str)) == sorted(
        Transaction.objects.filter(invoiced_at__lt=before).values_list("invoice", flat=True))
    purchases = frames.transaction_frame(("invoice",), purchases_only=True, with_product=True)
    assert sorted(purchases["invoice"].astype(str)) == sorted(
        Transaction.objects.filter(is_return=False, product__isnull=False).values_list("invoice", flat=True))
    assert frames.transaction_frame(customer_ids=[]).empty


def test_features_from_the_reader_equal_features_from_the_orm_frame(lines):
    cutoff = pd.Timestamp("2024-04-01", tz="UTC")
    got = build_features(frames.transaction_frame(before=cutoff), cutoff)
    orm = _orm_transactions(before=cutoff)
    orm["category"] = orm["category"].astype("category")
    want = build_features(orm, cutoff)
    pd.testing.assert_frame_equal(got, want)


def test_rfm_and_daily_aggregates_equal_the_orm_aggregates(lines):
    cut = segmentation_selectors.cutoff_datetime("2024-04-01")
    rfm = segmentation_selectors.rfm_frame(cut)
    rows = list(segmentation_selectors.rfm_queryset(cut))
    assert rfm["customer_id"].tolist() == [r[0] for r in rows]
    assert rfm["recency_days"].tolist() == [r[1].days for r in rows]
    assert rfm["frequency"].tolist() == [r[2] for r in rows]
    assert rfm["monetary"].tolist() == [float(r[3]) for r in rows]
    assert rfm["first_purchase"].tolist() == [pd.Timestamp(r[4]) for r in rows]
    assert rfm["last_purchase"].tolist() == [pd.Timestamp(r[5]) for r in rows]

    days = transaction_days(before=dt.date(2024, 4, 1))
    expected: dict[tuple[int, dt.date, bool], float] = {}
    for t in Transaction.objects.filter(invoiced_at__lt=dt.datetime(2024, 4, 1, tzinfo=dt.UTC)):
        key = (t.customer_id, t.invoiced_at.astimezone(dt.UTC).date(), t.amount < 0)
        expected[key] = expected.get(key, 0) + t.amount
    got = {(int(c), d.date(), a < 0): a
           for c, d, a in days[["customer_id", "invoiced_at", "amount"]].itertuples(index=False)}
    assert len(days) == len(expected)
    assert sorted(got.values()) == sorted(float(v) for v in expected.values())
    assert {(c, d) for c, d, _ in got} == {(c, d) for c, d, _ in expected}


def test_customer_frame_equals_the_orm_path():
    Customer.objects.create(external_id="tz", country="Côte d'Ivoire\ttab\\slash",
                            first_seen=dt.datetime(2024, 2, 1, 0, 0, 0, 1, tzinfo=NEW_YORK))
    Customer.objects.create(external_id="old", country="", first_seen=dt.datetime(1999, 12, 31, 23, 59, 59, 999999,
                                                                                     tzinfo=dt.UTC))
    Customer.objects.create(external_id="unknown", country="France", first_seen=None)
    rows = list(Customer.objects.order_by("pk").values_list("pk", "country", "first_seen"))
    expected = pd.DataFrame({"customer_id": np.asarray([r[0] for r in rows], dtype=np.int64),
                             "country": [r[1] for r in rows],
                             "first_seen": pd.to_datetime([r[2] for r in rows], utc=True)})

    frame = frames.customer_frame()
    pd.testing.assert_frame_equal(frame, expected)
    assert frame["first_seen"].iloc[0] == pd.Timestamp("2024-02-01 05:00:00.000001", tz="UTC")
    assert frame["first_seen"].isna().tolist() == [False, False, True]

    some = frames.customer_frame([rows[2][0], rows[0][0]])
    pd.testing.assert_frame_equal(some, expected.iloc[[0, 2]].reset_index(drop=True))
    assert frames.customer_frame([]).empty
