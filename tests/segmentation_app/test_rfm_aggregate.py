"""The RFM aggregate in the database equals the pandas reference ``pipeline.rfm_table``."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from rfm_portal.customers.models import Customer
from segmentation import selectors
from segmentation.pipeline import SegmentationError, rfm_table
from tests.factories import make_transaction


def assert_same_rfm(db_frame: pd.DataFrame, reference: pd.DataFrame) -> None:
    assert db_frame.attrs["cutoff"] == reference.attrs["cutoff"]
    assert db_frame["customer_id"].tolist() == reference["customer_id"].tolist()
    for col in ("recency_days", "frequency"):
        np.testing.assert_array_equal(db_frame[col].to_numpy(), reference[col].to_numpy(), err_msg=col)
    np.testing.assert_allclose(db_frame["monetary"].to_numpy(), reference["monetary"].to_numpy(), atol=1e-6)
    for col in ("first_purchase", "last_purchase"):
        assert (db_frame[col] == reference[col]).all(), col


def test_db_aggregate_equals_pandas_reference_on_generated_data(generated):
    transactions = selectors.transactions_frame()
    assert transactions["is_return"].any(), "the generated data should include returns"

    assert_same_rfm(selectors.rfm_frame(), rfm_table(transactions))


@pytest.mark.parametrize("cutoff", ["2023-05-01", "2024-09-15"])
def test_db_aggregate_equals_pandas_reference_at_an_earlier_cutoff(generated, cutoff):
    db_frame = selectors.rfm_frame(cutoff)
    reference = rfm_table(selectors.transactions_frame(), cutoff=cutoff)
    assert_same_rfm(db_frame, reference)
    if cutoff == "2023-05-01":
        assert len(db_frame) < len(generated)  # customers acquired later are not there yet


def test_hand_worked_trio(trio):
    frame = selectors.rfm_frame().set_index("customer_id")
    a, b, c = (trio[x].pk for x in "ABC")
    assert frame.attrs["cutoff"] == pd.Timestamp("2024-03-21", tz="UTC")
    assert frame.loc[[a, b, c], "recency_days"].tolist() == [1, 141, 66]
    assert frame.loc[[a, b, c], "frequency"].tolist() == [3, 1, 2]
    assert frame.loc[[a, b, c], "monetary"].tolist() == [160.0, 40.0, 20.0]


def test_cutoff_is_midnight_utc_and_rows_on_the_cutoff_day_do_not_count(db):
    x = Customer.objects.create(external_id="X")
    make_transaction(x, "1", "2024-05-01T23:59", 1, "10.00")
    make_transaction(x, "2", "2024-05-02T00:00", 1, "99.00")  # on the cut-off day: excluded
    frame = selectors.rfm_frame(dt.datetime(2024, 5, 2, 18, 30, tzinfo=dt.UTC))  # time of day is dropped
    assert frame.attrs["cutoff"] == pd.Timestamp("2024-05-02", tz="UTC")
    assert frame[["recency_days", "frequency", "monetary"]].values.tolist() == [[1, 1, 10.0]]


def test_invoice_lines_count_once_and_returns_reduce_revenue_but_returns_only_customers_are_left_out(db):
    x = Customer.objects.create(external_id="X")
    y = Customer.objects.create(external_id="Y")
    make_transaction(x, "1", "2024-01-01T10:00", 2, "10.00")
    make_transaction(x, "1", "2024-01-01T10:00", 1, "5.00")  # second line of the same invoice
    make_transaction(x, "C9", "2024-01-03T10:00", -1, "5.00")
    make_transaction(y, "C8", "2024-01-02T10:00", -1, "7.00")  # Y only returned goods
    frame = selectors.rfm_frame()
    assert frame["customer_id"].tolist() == [x.pk]
    assert frame[["recency_days", "frequency", "monetary"]].values.tolist() == [[3, 1, 20.0]]


def test_no_transactions_and_no_purchase_before_cutoff_are_clear_errors(db):
    with pytest.raises(SegmentationError, match="no transactions yet"):
        selectors.rfm_frame()
    x = Customer.objects.create(external_id="X")
    make_transaction(x, "1", "2024-01-01T10:00", 1, "10.00")
    with pytest.raises(SegmentationError, match="before the cut-off 2023-12-01"):
        selectors.rfm_frame("2023-12-01")
    with pytest.raises(SegmentationError, match="not a date"):
        selectors.rfm_frame("last tuesday")


def test_the_aggregate_is_one_query(trio, django_assert_num_queries):
    with django_assert_num_queries(1):
        selectors.rfm_frame("2024-03-21")
