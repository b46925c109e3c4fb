"""The transaction rows of streamed events, exactly as the importer makes them from the same lines.

Pure Python (no Django, no pandas). ``parse_event`` has already checked every field, so the
importer's validation pass (``importing.validate_transactions``: a pandas frame of strings parsed
back) has nothing left to reject; what it contributed are its normalisations and the row hash,
reproduced here value for value:

* the customer id as the importer reads it (``"17850.0"`` is customer ``17850``);
* a line is a return when its invoice starts with "C" or the event is a return; a return's
  quantity is stored negative, its amount too;
* money in exact 1/10,000ths (``unit_price_e4``, ``amount_e4``);
* ``importing.row_hashes``: SHA-1 of invoice, customer, sku, time (UTC, microseconds), signed
  quantity, ``unit_price_e4`` and the line's occurrence number among identical lines of the batch.

The hash is what makes a later CSV import of the same lines a no-op for rows streamed before (and
the other way round); ``tests/streaming/test_lines.py`` checks equality with the importer.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime

from rfm_portal.customers import importing as im

from .events import Event

_DOTTED_ID = re.compile(r"^(\d+)\.0+$")


def external_id(customer_id: str) -> str:
    """The customer id as the importer stores it (``importing.parse_external_id``)."""
    return _DOTTED_ID.sub(r"\1", customer_id) if "." in customer_id else customer_id


@dataclass
class Rows:
    """Columns of the transaction rows (one entry per line), and the customer and product summaries."""

    invoice: list[str] = field(default_factory=list)
    customer_id: list[str] = field(default_factory=list)  # external id
    sku: list[str] = field(default_factory=list)
    description: list[str] = field(default_factory=list)
    category: list[str] = field(default_factory=list)
    country: list[str] = field(default_factory=list)
    invoiced_at: list[datetime] = field(default_factory=list)
    quantity: list[int] = field(default_factory=list)
    unit_price_e4: list[int] = field(default_factory=list)
    amount_e4: list[int] = field(default_factory=list)
    is_return: list[bool] = field(default_factory=list)
    row_hash: list[str] = field(default_factory=list)

    def customers(self) -> list[tuple[str, str, datetime]]:
        """``importing.customer_summary``: (external id, last non-empty country, earliest time), sorted by id."""
        first: dict[str, datetime] = {}
        country: dict[str, str] = {}
        for cust, when, place in zip(self.customer_id, self.invoiced_at, self.country, strict=True):
            if cust not in first or when < first[cust]:
                first[cust] = when
            if place:
                country[cust] = place
        return [(cust, country.get(cust, ""), first[cust]) for cust in sorted(first)]

    def products(self) -> list[tuple[str, str, str]]:
        """``importing.product_summary``: (sku, last non-empty description, last non-empty category), sorted."""
        description: dict[str, str] = {}
        category: dict[str, str] = {}
        for sku, text, cat in zip(self.sku, self.description, self.category, strict=True):
            if not sku:
                continue
            description.setdefault(sku, "")
            category.setdefault(sku, "")
            if text:
                description[sku] = text
            if cat:
                category[sku] = cat
        return [(sku, description[sku], category[sku]) for sku in sorted(description)]


def rows_of(events: list[Event]) -> Rows:
    """The events' lines in order as transaction rows (see the module docstring)."""
    rows = Rows()
    seen: dict[tuple, int] = {}
    sha1 = hashlib.sha1
    for ev in events:
        customer = external_id(ev.customer_id)
        is_return = ev.kind == "return" or ev.invoice.startswith("C")
        when = ev.occurred_at
        stamp = f"{when.replace(tzinfo=None) - when.utcoffset():%Y-%m-%dT%H:%M:%S.%f}"
        country = ev.country[: im.MAX_COUNTRY]
        for ln in ev.lines:
            quantity = -ln.quantity if is_return else ln.quantity
            price_e4 = int(ln.unit_price.scaleb(4))
            identity = (ev.invoice, customer, ln.sku, stamp, quantity, price_e4)
            occurrence = seen.get(identity, 0)
            seen[identity] = occurrence + 1
            rows.invoice.append(ev.invoice)
            rows.customer_id.append(customer)
            rows.sku.append(ln.sku)
            rows.description.append(ln.description[: im.MAX_DESCRIPTION])
            rows.category.append(ln.category[: im.MAX_CATEGORY])
            rows.country.append(country)
            rows.invoiced_at.append(when)
            rows.quantity.append(quantity)
            rows.unit_price_e4.append(price_e4)
            rows.amount_e4.append(quantity * price_e4)
            rows.is_return.append(is_return)
            rows.row_hash.append(sha1(
                f"{ev.invoice}|{customer}|{ln.sku}|{stamp}|{quantity}|{price_e4}|{occurrence}".encode()).hexdigest())
    return rows
