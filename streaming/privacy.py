"""The dead-letter stream as a customer-data store for erasure and access (rfm_portal/privacy/registry.py).

Applied events live in ``StreamEvent`` rows (erased with the database), and the main stream is trimmed once
every entry is acknowledged; but an event that failed ``MAX_ATTEMPTS`` times is copied to the dead-letter
stream and kept there (up to ``DEAD_LETTER_MAXLEN``) for inspection — with the customer's id in it. Erasure
finds those entries inside the erasure's transaction and deletes them from Redis (or the in-memory stream)
once it commits: Redis cannot join the database transaction, and deleting after the commit means a failed
erasure deletes nothing.
"""

from __future__ import annotations

import json
from typing import Any

from rfm_portal.privacy.registry import StoreErasure

from .backends import MemoryStream, RedisStream, get_stream

CHUNK = 1000


def _is_customers(fields: dict[str, Any], external_id: str) -> bool:
    raw = str(fields.get("event", ""))
    try:
        event = json.loads(raw)
    except ValueError:  # a malformed event (why it is a dead letter): look for the id as a JSON string
        return json.dumps(external_id) in raw
    return isinstance(event, dict) and str(event.get("customer_id", "")) == external_id


def _dead_entries(stream: RedisStream | MemoryStream) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(stream, MemoryStream):
        with stream._cond:
            return list(stream._dead)
    entries, start = [], "-"
    while True:
        batch = stream.redis.xrange(stream.dead_key, min=start, max="+", count=CHUNK)
        entries += [(eid, fields) for eid, fields in batch if eid != start]
        if len(batch) < CHUNK:
            return entries
        start = batch[-1][0]


def dead_letters_of(external_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [(eid, fields) for eid, fields in _dead_entries(get_stream()) if _is_customers(fields, external_id)]


def erase_dead_letters(customer_pk: int, external_id: str) -> StoreErasure:
    stream = get_stream()
    ids = [eid for eid, _fields in dead_letters_of(external_id)]

    def delete() -> None:
        if isinstance(stream, MemoryStream):
            with stream._cond:
                stream._dead = [entry for entry in stream._dead if entry[0] not in set(ids)]
        elif ids:
            stream.redis.xdel(stream.dead_key, *ids)

    return StoreErasure(removed=len(ids), on_commit=[delete] if ids else [])


def export_dead_letters(customer_pk: int, external_id: str) -> list[dict[str, Any]] | None:
    found = [{"entry_id": eid, **fields} for eid, fields in dead_letters_of(external_id)]
    return found or None


def dead_letters_contain(customer_pk: int, external_id: str) -> bool:
    return bool(dead_letters_of(external_id))
