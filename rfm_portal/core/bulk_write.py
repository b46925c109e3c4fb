"""Writing many rows of one model fast: binary ``COPY`` on PostgreSQL, ``bulk_create`` elsewhere.

Score tables take 10^5–10^6 rows per model version. The ORM's ``bulk_create`` spends most of its
time building model instances and adapting every value (a JSON field alone: ~100 µs a row); binary
``COPY`` sends each value in PostgreSQL's wire format with no SQL to parse. Values are adapted per
column, by the field's type, the way the ORM would store them:

- ``JSONField``: ``json.dumps`` (the field's encoder, if it has one) of plain lists/dicts/numbers;
  NaN and infinity are refused by PostgreSQL, as through the ORM;
- ``DecimalField``: the field's ``to_python`` (as the ORM), rounded to the column's scale by PostgreSQL;
- arrays (``ArrayField``), dates, aware datetimes, numbers, text, booleans: as given; ``None`` is NULL.

Embedded mode (SQLite) keeps ``bulk_create``, in batches, with the same values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import numpy as np
from django.db import connections, models, router, transaction

BULK_CREATE_BATCH = 2000

_JSONB_BINARY_FORMAT_VERSION = b"\x01"


def _plain(values: Any) -> list:
    """Python scalars (numpy arrays and pandas columns to lists: psycopg's binary dumpers want builtins)."""
    if isinstance(values, np.ndarray):
        return values.tolist()
    to_numpy = getattr(values, "to_numpy", None)
    if to_numpy is not None:
        return to_numpy().tolist()
    return list(values)


def _json_encoder(field: models.JSONField):
    encoder = field.encoder
    if encoder is None:
        return json.dumps
    return lambda value: json.dumps(value, cls=encoder)


def _decimal_encoder(field: models.DecimalField):
    """The field's own conversion (floats to max_digits significant digits, as the ORM does); the
    column's numeric(p, s) then rounds to its scale on input, as for an INSERT."""

    def encode(value: Any) -> Decimal | None:
        return None if value is None else field.to_python(value)

    return encode


def _column_type(field: models.Field, connection) -> str:
    """The PostgreSQL type name COPY's binary format needs for the field (``numeric(16, 4)`` → ``numeric``)."""
    db_type = field.db_type(connection) if not field.is_relation else field.target_field.rel_db_type(connection)
    if db_type is None:
        raise ValueError(f"{field.model.__name__}.{field.name} has no column type")
    array = db_type.endswith("[]")
    base = re.sub(r"\(.*?\)", "", db_type.removesuffix("[]")).strip()
    base = {"serial": "integer", "bigserial": "bigint", "smallserial": "smallint"}.get(base, base)
    return base + ("[]" if array else "")


def _resolve_fields(model: type[models.Model], names: Sequence[str]) -> list[models.Field]:
    fields = []
    for name in names:
        field = model._meta.get_field(name)
        if not field.concrete or field.many_to_many:
            raise ValueError(f"{model.__name__}.{name} is not a column")
        fields.append(field)
    return fields


def copy_rows(
    model: type[models.Model],
    columns: Mapping[str, Iterable[Any]],
    *,
    using: str | None = None,
) -> int:
    """Insert rows given column-wise (``{"customer_id": [...], "probability": [...], ...}``); returns the count.

    Names are field names or attnames (``customer_id``). Every column has one value per row; fields
    left out take their database default, so give every NOT NULL column without one. Runs inside the
    caller's transaction if there is one (a chunk's delete-then-copy is then atomic); otherwise in its own.
    """
    names = list(columns)
    if not names:
        raise ValueError("no columns to write")
    fields = _resolve_fields(model, names)
    values = [_plain(columns[name]) for name in names]
    n = len(values[0])
    for name, column in zip(names, values, strict=True):
        if len(column) != n:
            raise ValueError(f"column {name!r} has {len(column)} values, expected {n}")
    if n == 0:
        return 0
    for i, field in enumerate(fields):
        if isinstance(field, models.DecimalField):
            encode = _decimal_encoder(field)
            values[i] = [encode(v) for v in values[i]]
    alias = using or router.db_for_write(model)
    connection = connections[alias]
    with transaction.atomic(using=alias, savepoint=False):
        if connection.vendor == "postgresql":
            _copy_binary(connection, model, fields, values)
        else:
            _bulk_create(model, fields, values, alias)
    return n


def _copy_binary(connection, model: type[models.Model], fields: list[models.Field], values: list[list]) -> None:
    from psycopg import adapt, postgres, pq

    for i, field in enumerate(fields):
        if isinstance(field, models.JSONField):
            encode = _json_encoder(field)
            values[i] = [None if v is None else encode(v) for v in values[i]]

    class PreEncodedJsonb(adapt.Dumper):
        """jsonb in COPY's binary format from text encoded above (the C json encoder: no per-value wrapper)."""

        format = pq.Format.BINARY
        oid = postgres.types["jsonb"].oid

        def dump(self, obj: str) -> bytes:
            return _JSONB_BINARY_FORMAT_VERSION + obj.encode()

    class PreEncodedJson(adapt.Dumper):
        format = pq.Format.BINARY
        oid = postgres.types["json"].oid

        def dump(self, obj: str) -> bytes:
            return obj.encode()

    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    column_list = ", ".join(quote(field.column) for field in fields)
    types = [_column_type(field, connection) for field in fields]
    connection.ensure_connection()
    with connection.connection.cursor() as cursor:  # the raw psycopg cursor, on the same transaction
        cursor.adapters.register_dumper(None, PreEncodedJsonb)
        cursor.adapters.register_dumper(None, PreEncodedJson)
        with cursor.copy(f"COPY {table} ({column_list}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for row in zip(*values, strict=True):
                copy.write_row(row)


def _bulk_create(model: type[models.Model], fields: list[models.Field], values: list[list], alias: str) -> None:
    attnames = [field.attname for field in fields]
    for start in range(0, len(values[0]), BULK_CREATE_BATCH):
        rows = zip(*(column[start : start + BULK_CREATE_BATCH] for column in values), strict=True)
        model.objects.using(alias).bulk_create(
            [model(**dict(zip(attnames, row, strict=True))) for row in rows], batch_size=BULK_CREATE_BATCH
        )
