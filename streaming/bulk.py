"""PostgreSQL fast path for a batch's writes: one statement per table, whole columns as arrays.

``INSERT … SELECT FROM unnest(%b::type[], …)`` sends each column once as an array, so a batch of
hundreds of rows costs one round trip and no per-row ORM object or per-value parameter. ``%b``: in
binary format (``%s`` would let psycopg send arrays as text, quoted and escaped element by element
in Python — measured ten times slower to build than the binary form). The
rules are those of the ORM path in ``streaming.services`` (used on other databases, e.g. the
embedded SQLite): redelivered event ids and already-stored rows (same row hash) are no-ops, a
customer's earliest first_seen wins and a non-empty country replaces.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from django.db import connection

from rfm_portal.customers.models import Customer, Product, Transaction

from .models import LiveRisk, RiskChange, StreamEvent


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


@contextmanager
def cursor() -> Iterator[psycopg.Cursor]:
    """A server-side-binding psycopg cursor on Django's connection (inside its transaction).

    Parameters are bound by the server instead of being quoted into the SQL text (arrays as ``%b``,
    binary), and nothing is logged per query; database errors still surface as Django's (the
    consumer retries lost connections).
    """
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cur:
        yield cur


RISK_CHANGE_FIELDS = ("event_id", "customer_id", "churn_version_id", "occurred_at", "old_probability",
                      "new_probability", "old_band", "new_band", "old_p_alive", "new_p_alive", "clv", "is_alert",
                      "reason")
LIVE_FIELDS = ("customer_id", "churn_version_id", "probability", "band", "p_alive", "clv", "as_of")


def _columns(rows: list[tuple], width: int) -> list[list]:
    return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def lock_customers(external_ids: Sequence[str]) -> dict[str, tuple[int, Any, str]]:
    """Lock the existing customers (sorted, so concurrent batches never deadlock): pk, first_seen, country."""
    with cursor() as cur:
        cur.execute(
            f"SELECT external_id, id, first_seen, country FROM {_table(Customer)} "
            "WHERE external_id = ANY(%b::text[]) ORDER BY external_id FOR UPDATE",
            [list(external_ids)],
        )
        return {ext: (pk, first_seen, country) for ext, pk, first_seen, country in cur.fetchall()}


def insert_events(rows: list[tuple], token: str) -> dict[str, int]:
    """Record event ids; returns {event_id: pk} of the ones that were new (a known id is a no-op)."""
    columns = list(zip(*rows, strict=True)) if rows else [[]] * 7
    with cursor() as cur:
        cur.execute(
            f"""
            INSERT INTO {_table(StreamEvent)} (event_id, kind, customer_external_id, occurred_at, amount,
                                              stream_entry_id, consumer, processed_at, batch_token)
            SELECT e, k, c, o, a, s, n, now(), %s
            FROM unnest(%b::text[], %b::text[], %b::text[], %b::timestamptz[], %b::numeric[], %b::text[], %b::text[])
                 AS t(e, k, c, o, a, s, n)
            ON CONFLICT (event_id) DO NOTHING
            RETURNING event_id, id
            """,
            [token, *[list(c) for c in columns]],
        )
        return dict(cur.fetchall())


def upsert_customers(summary_rows: list[tuple[str, str, Any]], locked: dict[str, tuple[int, Any, str]]
                     ) -> dict[str, tuple[int, Any, str]]:
    """Insert new customers, merge first_seen/country of locked existing ones.

    Returns every customer as stored now: {external_id: (pk, first_seen, country)}.
    """
    stored = dict(locked)
    new = [(ext, country, first) for ext, country, first in summary_rows if ext not in locked]
    changed = []
    for ext, country, first in summary_rows:
        if ext in locked:
            pk, cur_first, cur_country = locked[ext]
            merged = (first if cur_first is None else min(cur_first, first), country or cur_country)
            if merged != (cur_first, cur_country):
                changed.append((pk, *merged))
                stored[ext] = (pk, *merged)
    with cursor() as cur:
        if new:
            cur.execute(
                f"""
                INSERT INTO {_table(Customer)} (external_id, country, first_seen, attributes, created_at)
                SELECT e, c, f, '{{}}'::jsonb, now() FROM unnest(%b::text[], %b::text[], %b::timestamptz[])
                     AS t(e, c, f) ORDER BY e
                ON CONFLICT (external_id) DO NOTHING
                RETURNING external_id, id, first_seen, country
                """,
                [[r[0] for r in new], [r[1] for r in new], [r[2] for r in new]],
            )
            stored.update({ext: (pk, first, country) for ext, pk, first, country in cur.fetchall()})
        if changed:
            cur.execute(
                f"""
                UPDATE {_table(Customer)} c SET first_seen = t.f, country = t.n
                FROM unnest(%b::bigint[], %b::timestamptz[], %b::text[]) AS t(i, f, n) WHERE c.id = t.i
                """,
                [[r[0] for r in changed], [r[1] for r in changed], [r[2] for r in changed]],
            )
    missing = [r for r in new if r[0] not in stored]
    if missing:  # inserted meanwhile by a concurrent batch: lock them and merge as existing ones
        stored.update(upsert_customers(missing, lock_customers([r[0] for r in missing])))
    return stored


def upsert_products(summary_rows: list[tuple[str, str, str]]) -> dict[str, int]:
    """New skus inserted; a non-empty description/category replaces the stored one. {sku: pk}.

    The skus are read first: a batch of known products with unchanged names (the usual case) costs
    that one statement; only new or renamed ones are written.
    """
    if not summary_rows:
        return {}
    skus = [r[0] for r in summary_rows]
    with cursor() as cur:
        cur.execute(f"SELECT sku, id, description, category FROM {_table(Product)} WHERE sku = ANY(%b::text[])", [skus])
        known = {sku: (pk, description, category) for sku, pk, description, category in cur.fetchall()}
        todo = [(sku, description, category) for sku, description, category in summary_rows
                if sku not in known or (description or known[sku][1], category or known[sku][2]) != known[sku][1:]]
        if todo:
            cur.execute(
                f"""
                INSERT INTO {_table(Product)} (sku, description, category)
                SELECT s, d, c FROM unnest(%b::text[], %b::text[], %b::text[]) AS t(s, d, c) ORDER BY s
                ON CONFLICT (sku) DO UPDATE
                    SET description = COALESCE(NULLIF(EXCLUDED.description, ''), {_table(Product)}.description),
                        category = COALESCE(NULLIF(EXCLUDED.category, ''), {_table(Product)}.category)
                    WHERE (NULLIF(EXCLUDED.description, '') IS NOT NULL
                           AND EXCLUDED.description <> {_table(Product)}.description)
                       OR (NULLIF(EXCLUDED.category, '') IS NOT NULL
                           AND EXCLUDED.category <> {_table(Product)}.category)
                """,
                _columns(todo, 3),
            )
            # ids of the new ones (also those a concurrent batch inserted meanwhile, hence not RETURNING)
            cur.execute(f"SELECT sku, id FROM {_table(Product)} WHERE sku = ANY(%b::text[])",
                        [[r[0] for r in todo if r[0] not in known]])
            known.update({sku: (pk,) for sku, pk in cur.fetchall()})
    return {sku: row[0] for sku, row in known.items()}


def insert_transactions(columns: dict[str, list]) -> None:
    """Transaction rows (money in 1e-4 units, as the importer's); a row already stored (same row hash) is a no-op."""
    with cursor() as cur:
        cur.execute(
            f"""
            INSERT INTO {_table(Transaction)} (invoice, customer_id, product_id, invoiced_at, quantity, unit_price,
                                               amount, is_return, row_hash)
            SELECT i, c, p, t, q, u * 0.0001, a * 0.0001, r, h
            FROM unnest(%b::text[], %b::bigint[], %b::bigint[], %b::timestamptz[], %b::int[], %b::int8[], %b::int8[],
                        %b::bool[], %b::text[]) AS t(i, c, p, t, q, u, a, r, h)
            ON CONFLICT (row_hash) DO NOTHING
            """,
            [columns[c] for c in ("invoice", "customer_id", "product_id", "invoiced_at", "quantity", "unit_price_e4",
                                  "amount_e4", "is_return", "row_hash")],
        )


def insert_risk(changes: list[tuple], live: list[tuple]) -> None:
    """The batch's risk changes (values in the order of ``RISK_CHANGE_FIELDS``) and its customers' live risk
    (``LIVE_FIELDS``; a customer's row is replaced), in one statement."""
    change_types = ["bigint", "bigint", "bigint", "timestamptz", "float8", "float8", "text", "text", "float8",
                    "float8", "float8", "bool", "text"]
    live_types = ["bigint", "bigint", "float8", "text", "float8", "float8", "timestamptz"]
    updates = ", ".join(f"{f} = EXCLUDED.{f}" for f in LIVE_FIELDS[1:])
    with cursor() as cur:
        cur.execute(
            f"""
            WITH changes AS (
                INSERT INTO {_table(RiskChange)} ({", ".join(RISK_CHANGE_FIELDS)}, created_at)
                SELECT *, now() FROM unnest({", ".join(f"%b::{t}[]" for t in change_types)})
            )
            INSERT INTO {_table(LiveRisk)} ({", ".join(LIVE_FIELDS)}, updated_at)
            SELECT *, now() FROM unnest({", ".join(f"%b::{t}[]" for t in live_types)})
            ON CONFLICT (customer_id) DO UPDATE SET {updates}, updated_at = EXCLUDED.updated_at
            """,
            [*_columns(changes, len(change_types)), *_columns(live, len(live_types))],
        )


def previous_risk_rows(pks: Sequence[int], churn_mv: int | None, cltv_mv: int | None) -> list[tuple]:
    """One query for each customer's stored scores (active versions) and live risk.

    Rows: pk, churn probability, churn band, CLTV P(alive), whether there is a live risk, and its
    churn version, probability, band, P(alive), as_of (NULLs where there is none).
    """
    from churn.models import ChurnScore
    from cltv.models import CLTVScore

    with cursor() as cur:
        cur.execute(
            f"""
            SELECT c.id, cs.probability, cs.risk_band, cl.p_alive,
                   lr.id IS NOT NULL, lr.churn_version_id, lr.probability, lr.band, lr.p_alive, lr.as_of
            FROM unnest(%b::bigint[]) AS c(id)
            LEFT JOIN {_table(ChurnScore)} cs ON cs.customer_id = c.id AND cs.model_version_id = %s::bigint
            LEFT JOIN {_table(CLTVScore)} cl ON cl.customer_id = c.id AND cl.model_version_id = %s::bigint
            LEFT JOIN {_table(LiveRisk)} lr ON lr.customer_id = c.id
            """,
            [list(pks), churn_mv, cltv_mv],
        )
        return cur.fetchall()
