"""Stores outside the database that hold customer data (e.g. the embeddings index) register here.

Every database table is found through Django's model graph (``services.customer_tables``); a store
the ORM cannot see registers a hook in its AppConfig.ready():

    register_customer_store(name="embeddings-index", erase=erase_from_index, export=export_from_index)

``erase(customer_pk)`` runs inside the erasure's transaction and returns a ``StoreErasure``: how many
entries it removed and what to do once the transaction commits (e.g. delete the superseded file) or
fails (e.g. delete the file it wrote). ``export(customer_pk)`` returns JSON-able data or None.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StoreErasure:
    removed: int
    details: dict[str, Any] = field(default_factory=dict)  # ids and counts only: written to the audit log
    on_commit: list[Callable[[], None]] = field(default_factory=list)
    on_rollback: list[Callable[[], None]] = field(default_factory=list)


@dataclass(frozen=True)
class CustomerStore:
    name: str
    erase: Callable[[int], StoreErasure]
    export: Callable[[int], Any]
    contains: Callable[[int], bool]


_STORES: dict[str, CustomerStore] = {}


def register_customer_store(*, name: str, erase: Callable[[int], StoreErasure], export: Callable[[int], Any],
                            contains: Callable[[int], bool]) -> None:
    """``contains(customer_pk)``: whether the store still holds anything of the customer (tests, checks)."""
    _STORES[name] = CustomerStore(name, erase, export, contains)  # ready() may run twice: last one wins


def customer_stores() -> list[CustomerStore]:
    return list(_STORES.values())
