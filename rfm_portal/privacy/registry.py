"""Stores outside the database that hold customer data (e.g. the embeddings index) register here.

Every database table is found through Django's model graph (``services.customer_tables``); a store
the ORM cannot see registers a hook in its AppConfig.ready():

    register_customer_store(name="embeddings-index", erase=erase_from_index, export=export_from_index)

``erase(customer_pk, external_id)`` runs inside the erasure's transaction and returns a ``StoreErasure``: how
many entries it removes and what to do once the transaction commits (e.g. delete the superseded file, delete
entries from Redis) or fails (e.g. delete the file it wrote). ``export(customer_pk, external_id)`` returns
JSON-able data or None; ``contains(customer_pk, external_id)`` says whether anything of the customer is left.
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
    erase: Callable[[int, str], StoreErasure]
    export: Callable[[int, str], Any]
    contains: Callable[[int, str], bool]


_STORES: dict[str, CustomerStore] = {}


def register_customer_store(*, name: str, erase: Callable[[int, str], StoreErasure],
                            export: Callable[[int, str], Any], contains: Callable[[int, str], bool]) -> None:
    """Register (or replace) a store; see the module docstring for the three functions."""
    _STORES[name] = CustomerStore(name, erase, export, contains)  # ready() may run twice: last one wins


def customer_stores() -> list[CustomerStore]:
    return list(_STORES.values())
