"""Right to erasure and right of access for one customer.

Erasure removes, in one database transaction, every row of every table that refers to the customer
(found through the model graph, so apps added later are covered), the customer row itself, and the
customer's entries in every registered non-database store (the embeddings index), then writes one audit
entry naming the customer by database id only. If anything fails, nothing is removed (the stores undo
their own files).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Count

from rfm_portal.audit.services import record
from rfm_portal.customers.models import Audience, AudienceMember, Customer

from .registry import StoreErasure, customer_stores
from .selectors import customer_export_json, customer_tables, rows_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ErasureResult:
    customer_pk: int
    rows_deleted: dict[str, int]  # per table, cascades included
    stores: dict[str, int]  # entries removed per store

    @property
    def total_rows(self) -> int:
        return sum(self.rows_deleted.values())


def _run_all(actions: list, what: str) -> None:
    for action in actions:
        try:
            action()
        except Exception:
            logger.exception("erasure: a %s action failed", what)


def erase_customer(*, customer: Customer, actor=None) -> ErasureResult:
    """Erase one customer everywhere (see the module docstring). ``actor``: the admin, for the audit log."""
    pk, external_id = customer.pk, customer.external_id
    store_results: dict[str, StoreErasure] = {}
    try:
        with transaction.atomic():
            customer = Customer.objects.select_for_update().get(pk=pk)
            # Fixed-list audiences keep their saved size right after losing a member.
            audiences = dict(
                AudienceMember.objects.filter(customer=customer).values("audience").annotate(n=Count("id"))
                .values_list("audience", "n"))
            deleted: dict[str, int] = {}
            for table in customer_tables():
                _n, per_model = rows_of(table, customer).delete()
                for label, n in per_model.items():
                    if n:
                        deleted[label.lower()] = deleted.get(label.lower(), 0) + n
            _n, per_model = customer.delete()
            for label, n in per_model.items():
                if n:
                    deleted[label.lower()] = deleted.get(label.lower(), 0) + n
            for audience_pk, n in audiences.items():
                audience = Audience.objects.select_for_update().get(pk=audience_pk)
                audience.size = max(audience.size - n, 0)
                audience.save(update_fields=["size", "updated_at"])
            for store in customer_stores():
                store_results[store.name] = store.erase(pk, external_id)
            record(actor, "customer.erased", ("customers.customer", pk), {
                "rows_deleted": deleted,
                "stores": {name: {"removed": r.removed, **r.details} for name, r in store_results.items()},
            })
            for result in store_results.values():
                for action in result.on_commit:
                    transaction.on_commit(action)
    except BaseException:
        for result in store_results.values():
            _run_all(result.on_rollback, "rollback")
        raise
    return ErasureResult(pk, deleted, {name: r.removed for name, r in store_results.items()})


def export_customer(*, customer: Customer, actor=None) -> str:
    """Everything held about one customer as JSON (right of access); the export itself is audited."""
    data = customer_export_json(customer)
    record(actor, "customer.exported", customer, {"bytes": len(data)})
    return data


def customer_by_reference(reference: str) -> Customer:
    """A customer by the company's id, or by database id written ``pk:123`` (raises Customer.DoesNotExist)."""
    if reference.startswith("pk:"):
        return Customer.objects.get(pk=int(reference[3:]))
    return Customer.objects.get(external_id=reference)


STORE_NAMES = {"embeddings-index": "Lookalike index (every stored version)",
               "stream-dead-letters": "Failed live events kept for inspection"}


def footprint_summary(counts: dict[str, int]) -> list[dict[str, Any]]:
    """Plain names for the erase page: the model's verbose name (and its app), or the store's name."""
    from django.apps import apps

    rows = []
    for label, n in sorted(counts.items()):
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            rows.append({"where": STORE_NAMES.get(label, label), "label": label, "rows": n})
            continue
        rows.append({"where": str(model._meta.verbose_name_plural).capitalize(), "label": label, "rows": n})
    return rows
