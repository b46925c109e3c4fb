"""Where a customer's data lives: every table that refers to a customer, found through the model graph."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from rfm_portal.customers.models import Customer

from .registry import customer_stores

# Tables keyed by the company's customer id instead of a foreign key (e.g. streamed events, which may
# arrive before the customer exists) use a field of this name; apps added later are covered by it too.
EXTERNAL_ID_FIELD = "customer_external_id"


@dataclass(frozen=True)
class CustomerTable:
    model: type[models.Model]
    field: str  # the filter, e.g. "customer" or "customer_external_id"
    by_external_id: bool

    @property
    def label(self) -> str:
        return self.model._meta.label_lower


def customer_tables() -> list[CustomerTable]:
    """Every installed model with a foreign key (or one-to-one) to Customer, or a ``customer_external_id``."""
    tables = []
    for model in apps.get_models():
        for f in model._meta.concrete_fields:
            if f.is_relation and f.related_model is Customer:
                tables.append(CustomerTable(model, f.name, False))
            elif f.name == EXTERNAL_ID_FIELD:
                tables.append(CustomerTable(model, f.name, True))
    return sorted(tables, key=lambda t: (t.label, t.field))


def rows_of(table: CustomerTable, customer: Customer) -> models.QuerySet:
    value = customer.external_id if table.by_external_id else customer.pk
    return table.model._default_manager.filter(**{table.field: value})


def _row(obj: models.Model) -> dict[str, Any]:
    row = {}
    for f in obj._meta.concrete_fields:
        row[f.attname] = getattr(obj, f.attname)
    return row


def customer_export(customer: Customer) -> dict[str, Any]:
    """Everything held about one customer (right of access): the customer row, every row of every table
    that refers to them, and what each registered store (e.g. the embeddings index) holds. JSON-able."""
    held: dict[str, list[dict[str, Any]]] = {}
    for table in customer_tables():
        rows = [_row(obj) for obj in rows_of(table, customer).order_by("pk")]
        if rows:
            held.setdefault(table.label, []).extend(rows)
    stores = {}
    for store in customer_stores():
        data = store.export(customer.pk, customer.external_id)
        if data is not None:
            stores[store.name] = data
    return {
        "customer": _row(customer),
        "tables": held,
        "stores": stores,
    }


def customer_export_json(customer: Customer) -> str:
    import json

    return json.dumps(customer_export(customer), cls=DjangoJSONEncoder, indent=2, sort_keys=True)


def customer_footprint(customer: Customer) -> dict[str, int]:
    """Rows per table (and entries per store) that refer to the customer: what an erasure would remove."""
    counts = {}
    for table in customer_tables():
        n = rows_of(table, customer).count()
        if n:
            counts[table.label] = counts.get(table.label, 0) + n
    for store in customer_stores():
        if store.contains(customer.pk, customer.external_id):
            counts[store.name] = 1
    return counts
