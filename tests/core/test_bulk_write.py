"""copy_rows (binary COPY) stores exactly what the ORM stores: JSON (arrays, nesting, nulls, unicode,
big and tiny numbers), decimals, NULLs, text, dates and times; and refuses bad input clearly."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd
import psycopg
import pytest
from django.db import connection, transaction

from churn.models import ChurnScore
from rfm_portal.core import bulk_write
from rfm_portal.core.bulk_write import copy_rows
from rfm_portal.customers.models import Customer
from rfm_portal.mlops.models import ModelVersion, ScoringChunk, ScoringRun
from segmentation.models import RFMScore

pytestmark = pytest.mark.django_db

WHEN = dt.datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=dt.UTC)
JSON_VALUES = [
    [{"feature": "recency_days", "label": "Days since the last order", "value": 12.0, "contribution": 0.1 + 0.2}],
    {"nested": {"list": [1, 2.5, None, True, False, "x"], "empty": [], "obj": {}}},
    [1e-300, -0.0, 123456.789e10, 2**53 + 1, -(2**63)],
    {"unicode": "Zoë's café – 東京 \U0001f600", "control": "tab\tnew\nline\\back\"quote"},
    [],
]


def version(number: int) -> ModelVersion:
    return ModelVersion.objects.create(kind="bulk_write_test", version=number)


def churn_columns(customers: list[Customer], mv: ModelVersion) -> dict:
    n = len(customers)
    return {
        "customer_id": [c.pk for c in customers],
        "model_version_id": [mv.pk] * n,
        "probability": np.array([0.1, 1 / 3, 0.0, 1.0, 5e-324][:n]),  # numpy in, exact floats out
        "risk_band": pd.Series(["low", "medium", "high", "low", "high"][:n]),
        "top_contributions": JSON_VALUES[:n],
        "features": [{"f": float(i) / 7, "n": None} for i in range(n)],
        "scored_at": [WHEN] * n,
    }


def churn_rows(mv: ModelVersion) -> list[tuple]:
    return list(ChurnScore.objects.filter(model_version=mv).order_by("customer_id").values_list(
        "customer_id", "probability", "risk_band", "top_contributions", "features", "scored_at"))


def test_json_floats_text_and_times_round_trip_exactly_as_through_the_orm():
    customers = Customer.objects.bulk_create([Customer(external_id=f"c{i}") for i in range(5)])
    by_copy, by_orm = version(1), version(2)
    assert copy_rows(ChurnScore, churn_columns(customers, by_copy)) == 5
    columns = churn_columns(customers, by_orm)
    ChurnScore.objects.bulk_create([
        ChurnScore(**{k: (v.tolist() if hasattr(v, "tolist") else list(v))[i] for k, v in columns.items()})
        for i in range(5)
    ])
    copied, orm = churn_rows(by_copy), churn_rows(by_orm)
    assert copied == orm
    # (jsonb keeps numbers as decimals: a float of 1e21 or more would come back as an int, by either path)
    assert [row[3] for row in copied] == JSON_VALUES
    assert [row[1] for row in copied] == [0.1, 1 / 3, 0.0, 1.0, 5e-324]
    assert all(row[5] == WHEN for row in copied)


def test_decimals_and_dates_round_trip_and_are_rounded_as_the_orm_rounds():
    customers = Customer.objects.bulk_create([Customer(external_id=f"d{i}") for i in range(4)])
    by_copy, by_orm = version(1), version(2)
    monetary = ["12.3456", 2.675, Decimal("-0.00005"), "99999999999.99995"]

    def columns(mv):
        return {
            "model_version_id": [mv.pk] * 4, "customer_id": [c.pk for c in customers],
            "recency_days": [0, 1, 365, 2**31 - 1], "frequency": [1, 2, 3, 4], "monetary": monetary,
            "first_purchase": [WHEN] * 4, "last_purchase": [WHEN - dt.timedelta(days=i) for i in range(4)],
            "r_score": [1, 2, 3, 5], "f_score": [5, 4, 3, 1], "m_score": [3, 3, 3, 3],
            "rfm_code": ["153", "243", "333", "513"], "segment": ["Champions"] * 4, "cluster": [0, 1, 2, 3],
            "cluster_name": ["Lapsed big spenders", "A", "B", "C"],
        }

    copy_rows(RFMScore, columns(by_copy))
    cols = columns(by_orm)
    RFMScore.objects.bulk_create([RFMScore(**{k: v[i] for k, v in cols.items()}) for i in range(4)])

    def stored(mv):
        return list(RFMScore.objects.filter(model_version=mv).order_by("customer_id").values_list(
            "customer_id", "monetary", "recency_days", "last_purchase", "cluster_name"))

    assert stored(by_copy) == stored(by_orm)
    # PostgreSQL rounds to the column's scale, half away from zero, by either path
    assert [row[1] for row in stored(by_copy)] == [
        Decimal("12.3456"), Decimal("2.6750"), Decimal("-0.0001"), Decimal("100000000000.0000")]


def test_nulls_and_json_documents_round_trip():
    mv = version(1)
    run = ScoringRun.objects.create(model_version=mv, chunk_size=10)
    copy_rows(ScoringChunk, {
        "run_id": [run.pk, run.pk], "number": [0, 1], "first_customer_id": [1, 2**62], "last_customer_id": [5, 2**62],
        "customers": [5, 0], "state": ["done", "pending"], "rows_written": [5, 0],
        "summary": [{"cohort_draws": {"2024-01": [0.5] * 3}}, {}], "worker": ["host:1", ""],
        "seconds": [1.25, None], "cpu_seconds": [None, None], "error": ["", "ValueError: ü"],
        "finished_at": [WHEN, None],
    })
    rows = list(ScoringChunk.objects.filter(run=run).order_by("number").values_list(
        "first_customer_id", "summary", "seconds", "cpu_seconds", "error", "finished_at"))
    assert rows == [(1, {"cohort_draws": {"2024-01": [0.5, 0.5, 0.5]}}, 1.25, None, "", WHEN),
                    (2**62, {}, None, None, "ValueError: ü", None)]


def test_the_embedded_bulk_create_path_stores_the_same_rows():
    customers = Customer.objects.bulk_create([Customer(external_id=f"e{i}") for i in range(5)])
    by_copy, by_bulk = version(1), version(2)
    copy_rows(ChurnScore, churn_columns(customers, by_copy))
    columns = churn_columns(customers, by_bulk)
    fields = bulk_write._resolve_fields(ChurnScore, list(columns))
    bulk_write._bulk_create(ChurnScore, fields, [bulk_write._plain(v) for v in columns.values()], "default")
    assert churn_rows(by_copy) == churn_rows(by_bulk)


def test_bad_input_is_refused_and_nothing_is_written():
    customers = Customer.objects.bulk_create([Customer(external_id=f"b{i}") for i in range(2)])
    mv = version(1)
    columns = churn_columns(customers, mv)
    with pytest.raises(ValueError, match="column 'risk_band' has 1 values, expected 2"):
        copy_rows(ChurnScore, {**columns, "risk_band": ["low"]})
    with pytest.raises(ValueError, match="not a column"):
        copy_rows(Customer, {"churn_scores": [1]})
    with transaction.atomic(), pytest.raises(psycopg.DataError, match=r"Token \"NaN\" is invalid"):  # as the ORM
        copy_rows(ChurnScore, {**columns, "features": [{"x": float("nan")}, {}]})
    assert not ChurnScore.objects.filter(model_version=mv).exists()
    assert copy_rows(ChurnScore, {k: [] for k in columns}) == 0
    assert connection.vendor == "postgresql"
