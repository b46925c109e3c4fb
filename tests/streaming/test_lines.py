"""Streamed events' rows are the importer's rows for the same lines: same values, same row hashes.

The consumer builds its transaction rows straight from the parsed events (``streaming.lines``)
instead of running the importer's validation over them; a CSV holding the same lines, imported
later, must produce the same row hashes or it would store the streamed rows a second time.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd

from rfm_portal.customers import importing as im
from streaming import lines
from streaming.events import Event, parse_event


def _events() -> list[Event]:
    line = {"sku": "HK-001", "description": "Enamel Mug", "category": "Home & Kitchen", "quantity": 2,
            "unit_price": "6.49"}
    raw = [
        {"event_id": "a-1", "type": "purchase", "customer_id": "10001", "occurred_at": "2024-07-10T12:00:00Z",
         "country": "United Kingdom", "lines": [line, {**line, "sku": "GD-7", "quantity": 1, "unit_price": "0.0001"}]},
        # a return (negative quantity, "C" invoice), microseconds and an offset converted to UTC
        {"event_id": "a-2", "type": "return", "customer_id": "10001", "occurred_at": "2024-07-11T09:30:15.123456+02:00",
         "lines": [{**line, "quantity": 3, "unit_price": "1234.5678"}]},
        # unicode everywhere, an id a spreadsheet would write as 17850.0
        {"event_id": "a-3", "type": "purchase", "customer_id": "17850.0", "occurred_at": "2024-07-12T23:59:59.999999Z",
         "country": "Österreich", "invoice": "Rechnung-ß-1",
         "lines": [{"sku": "ZÜ-☕", "description": "Café crème ☕ « tasse »", "category": "Küche",
                    "quantity": 1000, "unit_price": "999999.9999"}]},
        # identical lines: the occurrence number tells them apart, within an event and across events
        {"event_id": "a-4", "type": "purchase", "customer_id": "Zoë-7", "occurred_at": "2024-07-13T08:00:00Z",
         "invoice": "S-SAME", "lines": [line, line, {**line, "unit_price": "6.4900"}]},
        {"event_id": "a-5", "type": "purchase", "customer_id": "Zoë-7", "occurred_at": "2024-07-13T08:00:00Z",
         "invoice": "S-SAME", "country": "France", "lines": [{**line, "description": "", "category": ""}]},
        {"event_id": "a-6", "type": "return", "customer_id": "10001", "occurred_at": "2024-07-14T10:00:00Z",
         "invoice": "C-77", "lines": [{**line, "unit_price": "0", "description": "Mug (chipped)"}]},
    ]
    now = datetime(2025, 1, 1, tzinfo=UTC)
    return [parse_event(data, now=now) for data in raw]


def _imported(events: list[Event], tmp_path: Path) -> pd.DataFrame:
    """The same lines written to a CSV file as a shop's export would hold them, read by the importer."""
    path = tmp_path / "lines.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Invoice", "CustomerID", "StockCode", "Description", "Category", "InvoiceDate", "Quantity",
                         "UnitPrice", "Country"])
        for ev in events:
            sign = -1 if ev.kind == "return" else 1
            for ln in ev.lines:
                writer.writerow([ev.invoice, ev.customer_id, ln.sku, ln.description, ln.category,
                                 ev.occurred_at.isoformat(), sign * ln.quantity, str(ln.unit_price), ev.country])
    result = im.validate_transactions(im.read_table(path))
    assert result.errors == []
    return result.valid


def test_rows_and_row_hashes_equal_the_importers(tmp_path):
    events = _events()
    rows = lines.rows_of(events)
    valid = _imported(events, tmp_path)
    assert len(rows.row_hash) == len(valid) == 9
    assert rows.row_hash == valid["row_hash"].tolist()
    assert len(set(rows.row_hash)) == 9  # the identical lines are told apart
    assert rows.invoice == valid["invoice"].tolist()
    assert rows.customer_id == valid["customer_id"].tolist()
    assert "17850" in rows.customer_id and "17850.0" not in rows.customer_id
    assert rows.sku == valid["sku"].tolist()
    assert rows.description == valid["description"].tolist()
    assert rows.category == valid["category"].tolist()
    assert rows.country == valid["country"].tolist()
    assert pd.to_datetime(rows.invoiced_at, utc=True).equals(pd.DatetimeIndex(valid["invoiced_at"]))
    assert rows.quantity == valid["quantity"].tolist()
    assert rows.unit_price_e4 == valid["unit_price_e4"].tolist()
    assert rows.amount_e4 == valid["amount_e4"].tolist()
    assert rows.is_return == valid["is_return"].tolist()
    assert rows.unit_price_e4[1] == 1 and rows.amount_e4[2] == -3 * 12345678  # 0.0001 and a return of 1234.5678


def test_customer_and_product_summaries_equal_the_importers(tmp_path):
    events = _events()
    rows = lines.rows_of(events)
    valid = _imported(events, tmp_path)
    customers = im.customer_summary(valid)
    assert rows.customers() == list(zip(customers["external_id"], customers["country"],
                                        [ts.to_pydatetime() for ts in customers["first_seen"]], strict=True))
    products = im.product_summary(valid)
    assert rows.products() == list(products.itertuples(index=False, name=None))
    # last non-empty description wins; an empty one never replaces
    assert dict((sku, desc) for sku, desc, _ in rows.products())["HK-001"] == "Mug (chipped)"


def test_the_return_sign_follows_the_invoice_as_in_the_importer():
    ev = parse_event({"event_id": "r-1", "type": "return", "customer_id": "1", "occurred_at": "2024-07-10T12:00:00Z",
                      "lines": [{"sku": "X", "quantity": 4, "unit_price": "2.5"}]},
                     now=datetime(2025, 1, 1, tzinfo=UTC))
    rows = lines.rows_of([ev])
    assert ev.invoice.startswith("C")
    assert (rows.quantity, rows.amount_e4, rows.is_return) == ([-4], [-100000], [True])
    assert Decimal(rows.amount_e4[0]).scaleb(-4) == ev.amount
