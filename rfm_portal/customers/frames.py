"""Read transactions (and other large query results) with PostgreSQL ``COPY`` into numpy/pandas.

Every training service reads its rows here instead of through the ORM: ``COPY (SELECT …) TO
STDOUT`` streams text that pandas' C parser turns into typed arrays chunk by chunk, so there are no
per-row Python objects and memory is proportional to the columns actually asked for (int32 ids,
int64 epoch times, float64 amounts, categorical invoice and category codes) plus one parse chunk.

Exactness (tests/customers/test_frames.py compares this with the ORM path):

- times travel as integer microseconds since the epoch (``timestamptz`` is absolute, so the session
  time zone does not matter) and come back as ``datetime64[ns, UTC]``;
- amounts travel as integer ten-thousandths (the column is ``numeric(14, 4)``) and are divided by
  1e4 in float64: an IEEE division of two exact integers is correctly rounded, which is exactly
  what PostgreSQL's ``numeric → float8`` cast returns;
- text uses COPY's text format (newlines and tabs inside values are escaped by PostgreSQL, so a
  chunk can be cut at any newline) and is unescaped after parsing, on the few distinct values only.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from django.db import connection
from psycopg import ClientCursor

CHUNK_BYTES = 32 << 20  # text parsed per step: bounds the transient memory of a read

# What each transaction column costs on the wire and in memory. ``sql`` is a SELECT expression over
# customers_transaction t; ``dtype`` the read_csv dtype of that text.
_TRANSACTION_COLUMNS: dict[str, tuple[str, str]] = {
    "customer_id": ("t.customer_id", "int32"),
    "invoice": ("t.invoice", "category"),
    "invoiced_at": ("(extract(epoch FROM t.invoiced_at) * 1000000)::int8", "int64"),
    "amount": ("(t.amount * 10000)::int8", "int64"),
    "quantity": ("t.quantity", "int32"),
    "is_return": ("t.is_return::int", "int8"),
    "product_id": ("coalesce(t.product_id, -1)", "int32"),
}
TRANSACTION_COLUMNS: tuple[str, ...] = (*_TRANSACTION_COLUMNS, "category")
# What ``features.build_features`` reads (it never reads ``quantity``).
FEATURE_COLUMNS: tuple[str, ...] = ("customer_id", "invoice", "invoiced_at", "amount", "is_return", "category")

_ESCAPE = re.compile(r"\\(.)")
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def _unescape(value: str) -> str:
    """Undo COPY text format's backslash escapes (only values containing a backslash get here)."""
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), value)


def _parse(chunk: bytes, names: Sequence[str], dtypes: dict[str, str]) -> pd.DataFrame:
    return pd.read_csv(
        io.BytesIO(chunk), sep="\t", header=None, names=list(names), dtype=dtypes, quoting=csv.QUOTE_NONE,
        na_values=["\\N"], keep_default_na=False, engine="c",
    )


def _concat(frames: list[pd.DataFrame], names: Sequence[str], dtypes: dict[str, str]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame({n: pd.Series([], dtype=dtypes[n]) for n in names})
    if len(frames) == 1:
        return frames[0]
    out = {}
    for name in names:
        parts = [f[name] for f in frames]
        if dtypes[name] == "category":
            out[name] = pd.Series(pd.api.types.union_categoricals(parts))
        else:
            out[name] = pd.Series(np.concatenate([p.to_numpy() for p in parts]))
        for f in frames:  # release each chunk's column as soon as it is copied
            del f[name]
    return pd.DataFrame(out)


def copy_frame(sql: str, params: Sequence[Any] | None, columns: dict[str, str]) -> pd.DataFrame:
    """Run ``COPY (sql) TO STDOUT`` and parse it into a DataFrame with the given {name: dtype}.

    ``sql`` is a SELECT whose output columns are ``columns`` in order; ``params`` are bound by
    psycopg (client side, as COPY takes no server-side parameters). Text columns (``category`` or
    ``object`` dtype) are unescaped; NULLs become NaN (use a non-null SQL expression for integer
    columns). The whole result is never held as text: it is parsed every ``CHUNK_BYTES``.
    """
    names = list(columns)
    frames: list[pd.DataFrame] = []
    pending = bytearray()
    with connection.cursor() as cursor:
        # Bound here (COPY takes no server-side parameters), then run through Django's wrapper, whose
        # copy() takes a statement only and logs it like any query.
        statement = ClientCursor(cursor.cursor.connection).mogrify(f"COPY ({sql}) TO STDOUT", params)
        with cursor.copy(statement) as copy:
            for block in copy:
                pending += block
                if len(pending) >= CHUNK_BYTES:
                    cut = pending.rfind(b"\n") + 1
                    frames.append(_parse(bytes(pending[:cut]), names, columns))
                    del pending[:cut]
    if pending:
        frames.append(_parse(bytes(pending), names, columns))
    frame = _concat(frames, names, columns)
    for name, dtype in columns.items():
        if dtype == "category":
            categories = frame[name].cat.categories
            if categories.dtype == object and categories.str.contains("\\", regex=False).any():
                frame[name] = frame[name].cat.rename_categories([_unescape(c) for c in categories])
        elif dtype == "object":
            frame[name] = frame[name].map(lambda v: _unescape(v) if isinstance(v, str) and "\\" in v else v)
    return frame


def _product_categories() -> tuple[np.ndarray, list[str]]:
    """(category code by product id, category names); code of a missing product or empty category = ""."""
    products = copy_frame("SELECT id, category FROM customers_product", None, {"id": "int64", "category": "object"})
    names = sorted(set(products["category"].fillna("")) | {""})
    code_of = {c: i for i, c in enumerate(names)}
    size = int(products["id"].max()) + 2 if len(products) else 1
    by_product = np.full(size, code_of[""], dtype=np.int16 if len(names) < 2**15 else np.int32)
    by_product[products["id"].to_numpy()] = [code_of[c or ""] for c in products["category"].fillna("")]
    return by_product, names


def _transaction_frame_orm(wanted: list[str], customer_ids: Sequence[int] | None, before: Any,
                           purchases_only: bool, with_product: bool) -> pd.DataFrame:
    """``transaction_frame`` through the ORM, for databases without COPY (the embedded SQLite)."""
    from rfm_portal.customers.models import Transaction

    qs = Transaction.objects.all()
    if customer_ids is not None:
        qs = qs.filter(customer_id__in=[int(pk) for pk in customer_ids])
    if before is not None:
        ts = pd.Timestamp(before)
        qs = qs.filter(invoiced_at__lt=(ts.tz_localize("UTC") if ts.tzinfo is None else ts).to_pydatetime())
    if purchases_only:
        qs = qs.filter(is_return=False)
    if with_product:
        qs = qs.filter(product__isnull=False)
    fields = {"customer_id": "customer_id", "invoice": "invoice", "invoiced_at": "invoiced_at", "amount": "amount",
              "quantity": "quantity", "is_return": "is_return", "product_id": "product_id",
              "category": "product__category"}
    rows = list(qs.values_list(*(fields[c] for c in wanted)).iterator(chunk_size=20_000))
    frame = pd.DataFrame.from_records(rows, columns=wanted)
    for name in wanted:
        if name in ("customer_id", "quantity"):
            frame[name] = frame[name].astype("int32")
        elif name == "product_id":
            frame[name] = frame[name].fillna(-1).astype("int32")
        elif name == "invoiced_at":
            frame[name] = pd.to_datetime(frame[name], utc=True).astype("datetime64[ns, UTC]")
        elif name == "amount":
            frame[name] = frame[name].astype(float)
        elif name == "is_return":
            frame[name] = frame[name].astype(bool)
        else:  # invoice, category ("" is always a category, as on the COPY path)
            values = frame[name].fillna("").astype(str)
            frame[name] = pd.Categorical(values, categories=sorted(set(values) | {""}))
    return frame


def transaction_frame(
    columns: Iterable[str] = FEATURE_COLUMNS,
    *,
    customer_ids: Sequence[int] | None = None,
    before: Any = None,
    purchases_only: bool = False,
    with_product: bool = False,
) -> pd.DataFrame:
    """Transaction lines as a DataFrame of the requested ``columns``, read with COPY.

    Columns (any subset of ``TRANSACTION_COLUMNS``): ``customer_id`` int32 (Customer pk),
    ``invoice`` categorical, ``invoiced_at`` datetime64[ns, UTC], ``amount`` float64 (negative for
    returns), ``quantity`` int32, ``is_return`` bool, ``product_id`` int32 (-1 when none),
    ``category`` categorical ("" for no product or no category). Filters: ``customer_ids`` (pks),
    ``before`` (strictly earlier ``invoiced_at``; naive values are UTC), ``purchases_only``
    (``is_return`` false), ``with_product`` (lines with a product). Rows come in no particular order.
    """
    wanted = list(dict.fromkeys(columns))
    unknown = set(wanted) - set(TRANSACTION_COLUMNS)
    if unknown:
        raise ValueError(f"unknown transaction columns: {sorted(unknown)}")
    if connection.vendor != "postgresql":
        return _transaction_frame_orm(wanted, customer_ids, before, purchases_only, with_product)
    fetched = [c for c in wanted if c != "category"]
    if "category" in wanted and "product_id" not in fetched:
        fetched.append("product_id")
    where, params = [], []
    if customer_ids is not None:
        where.append("t.customer_id = ANY(%s)")
        params.append([int(pk) for pk in customer_ids])
    if before is not None:
        ts = pd.Timestamp(before)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        where.append("t.invoiced_at < %s")
        params.append(ts.to_pydatetime())
    if purchases_only:
        where.append("NOT t.is_return")
    if with_product:
        where.append("t.product_id IS NOT NULL")
    sql = "SELECT " + ", ".join(_TRANSACTION_COLUMNS[c][0] for c in fetched) + " FROM customers_transaction t"
    if where:
        sql += " WHERE " + " AND ".join(where)
    frame = copy_frame(sql, params or None, {c: _TRANSACTION_COLUMNS[c][1] for c in fetched})
    if "invoiced_at" in frame:
        frame["invoiced_at"] = pd.to_datetime(frame["invoiced_at"].to_numpy() * 1000, utc=True)
    if "amount" in frame:
        frame["amount"] = frame["amount"].to_numpy() / 1e4
    if "is_return" in frame:
        frame["is_return"] = frame["is_return"].to_numpy().astype(bool)
    if "category" in wanted:
        by_product, names = _product_categories()
        product = frame["product_id"].to_numpy()
        codes = by_product[np.where(product < 0, 0, product)] if len(by_product) else np.zeros(len(frame), np.int16)
        codes = np.where(product < 0, names.index(""), codes)
        frame["category"] = pd.Categorical.from_codes(codes, categories=names)
        if "product_id" not in wanted:
            del frame["product_id"]
    return frame[wanted]


def customer_frame(customer_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """Customers as ``build_features`` takes them: ``customer_id`` int64 (pk), ``country`` str,
    ``first_seen`` datetime64[ns, UTC] (NaT when unknown), in pk order; ``customer_ids`` limits them.

    On PostgreSQL one COPY with the ids as a single array parameter (a chunk of 10,000 customers through
    the ORM's ``pk__in`` cost ≈ 0.5 s, most of it building and binding 10,000 parameters).
    """
    if connection.vendor != "postgresql":
        from rfm_portal.customers.models import Customer

        qs = Customer.objects.order_by("pk")
        if customer_ids is not None:
            qs = qs.filter(pk__in=[int(pk) for pk in customer_ids])
        rows = list(qs.values_list("pk", "country", "first_seen"))
        pks, countries, first_seen = zip(*rows, strict=True) if rows else ((), (), ())
        return pd.DataFrame({"customer_id": np.asarray(pks, dtype=np.int64), "country": list(countries),
                             "first_seen": pd.to_datetime(list(first_seen), utc=True)})
    sql = ("SELECT c.id, c.country, (extract(epoch FROM c.first_seen) * 1000000)::int8 FROM customers_customer c")
    params = None
    if customer_ids is not None:
        sql += " WHERE c.id = ANY(%s)"
        params = [[int(pk) for pk in customer_ids]]
    frame = copy_frame(sql + " ORDER BY c.id", params,
                       {"customer_id": "int64", "country": "object", "first_seen": "Int64"})
    micros = frame["first_seen"]
    known = micros.notna().to_numpy()
    # integer µs → ns (a float would round 2020s timestamps to 256 ns)
    first_seen = pd.to_datetime(micros.fillna(0).to_numpy(dtype="int64") * 1000, utc=True).where(known)
    return pd.DataFrame({"customer_id": frame["customer_id"].to_numpy(), "country": frame["country"].astype(object),
                         "first_seen": first_seen})
