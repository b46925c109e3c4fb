"""The repeat-purchase summary builders against lifetimes and the CDNOW files Fader & Hardie ship."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from lifetimes.utils import calibration_and_holdout_data, summary_data_from_transaction_data

from cltv.summary import (
    calibration_and_holdout,
    purchase_days,
    purchase_days_from_day_totals,
    summaries_as_of,
    summary_from_transactions,
)

from .conftest import CALIBRATION_END, DATASETS, OBSERVATION_END

COLUMNS = ["frequency", "recency", "T", "monetary_value"]


@pytest.fixture(scope="module")
def master_slice(cdnow_master: pd.DataFrame) -> pd.DataFrame:
    """Every 7th CDNOW customer (~3,400 customers, ~10,000 transactions)."""
    return cdnow_master[cdnow_master["customer_id"] % 7 == 0].reset_index(drop=True)


def _lifetimes_summary(tx: pd.DataFrame, end: object, multiplier: int) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return summary_data_from_transaction_data(
            tx, "customer_id", "invoiced_at", "amount", observation_period_end=end, freq="D", freq_multiplier=multiplier
        )


@pytest.mark.parametrize(("unit", "multiplier"), [("D", 1), ("W", 7)])
def test_summary_equals_lifetimes(master_slice: pd.DataFrame, unit: str, multiplier: int) -> None:
    ours = summary_from_transactions(master_slice, CALIBRATION_END, unit=unit)
    theirs = _lifetimes_summary(master_slice, CALIBRATION_END, multiplier).loc[ours.index]
    assert (
        len(ours)
        == len(theirs)
        == master_slice.loc[master_slice["invoiced_at"] <= CALIBRATION_END, "customer_id"].nunique()
    )
    np.testing.assert_allclose(ours[COLUMNS].to_numpy(), theirs[COLUMNS].to_numpy(), rtol=1e-12, atol=1e-9)


def test_calibration_and_holdout_equals_lifetimes(master_slice: pd.DataFrame) -> None:
    ours = calibration_and_holdout(master_slice, CALIBRATION_END, OBSERVATION_END, unit="W")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = calibration_and_holdout_data(
            master_slice,
            "customer_id",
            "invoiced_at",
            calibration_period_end=CALIBRATION_END,
            observation_period_end=OBSERVATION_END,
            freq="D",
            freq_multiplier=7,
            monetary_value_col="amount",
        ).loc[ours.index]
    for col in [*[f"{c}_cal" for c in COLUMNS], "frequency_holdout", "duration_holdout"]:
        np.testing.assert_allclose(ours[col].to_numpy(), theirs[col].to_numpy(), rtol=1e-12, atol=1e-9, err_msg=col)
    # lifetimes averages the holdout spend over raw transaction rows while its calibration m_x
    # averages purchase days; ours uses purchase days in both periods (consistent with the model).
    hold = master_slice[
        (master_slice["invoiced_at"] > CALIBRATION_END) & (master_slice["invoiced_at"] <= OBSERVATION_END)
    ]
    per_day = hold.groupby(["customer_id", "invoiced_at"])["amount"].sum().groupby(level=0).mean()
    expected = per_day.reindex(ours.index).fillna(0.0)
    np.testing.assert_allclose(ours["monetary_value_holdout"].to_numpy(), expected.to_numpy(), atol=1e-9)


def test_cdnow_sample_reproduces_the_shipped_summaries(cdnow_sample: pd.DataFrame) -> None:
    """Our construction from the raw master file = Fader-Hardie's 2,357-customer calibration data.

    lifetimes' cdnow_customers_summary*.csv are rounded to 2 decimals; m_x there ("zbar") is the
    mean of the repeat purchase *days'* summed spend in the 39-week calibration period.
    """
    ours = calibration_and_holdout(cdnow_sample, CALIBRATION_END, OBSERVATION_END, unit="W").sort_index()
    shipped = pd.read_csv(DATASETS / "cdnow_customers_summary_with_transactions.csv", index_col="ID").sort_index()
    assert list(ours.index) == list(shipped.index) and len(ours) == 2357
    np.testing.assert_array_equal(ours["frequency_cal"].to_numpy(), shipped["x"].to_numpy())
    np.testing.assert_allclose(ours["recency_cal"], shipped["t_x"], atol=0.005 + 1e-9)
    np.testing.assert_allclose(ours["T_cal"], shipped["T"], atol=0.005 + 1e-9)
    np.testing.assert_allclose(ours["monetary_value_cal"], shipped["zbar"], atol=0.005 + 1e-9)
    assert (ours["frequency_cal"] > 0).sum() == 946
    assert ours["duration_holdout"].iloc[0] == pytest.approx(273 / 7)  # 39 weeks of holdout


def _tx(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "invoiced_at", "amount"]).assign(
        invoiced_at=lambda f: pd.to_datetime(f["invoiced_at"], format="ISO8601")
    )


def test_same_day_purchases_are_one_occasion_and_returns_policy() -> None:
    tx = _tx(
        [
            ("a", "2024-01-01 09:00", 10.0),
            ("a", "2024-01-01 17:00", 5.0),  # same day: one occasion worth 15
            ("a", "2024-01-08", 20.0),
            ("a", "2024-01-08", -20.0),  # same-day cancellation: no occasion
            ("a", "2024-01-15", 30.0),
            ("a", "2024-01-20", -7.0),  # later return: no occasion
            ("b", "2024-01-03", 0.0),  # zero-value purchase (free item) is an occasion
            ("b", "2024-01-10", 12.0),
            ("b", "2024-01-10", -2.0),  # partial same-day return: value 10
            ("c", "2024-02-01", 5.0),  # after the observation end
        ]
    )
    net = summary_from_transactions(tx, "2024-01-31", unit="D")
    assert list(net.index) == ["a", "b"]
    assert net.loc["a", ["frequency", "recency", "T", "monetary_value"]].tolist() == [1.0, 14.0, 30.0, 30.0]
    assert net.loc["b", ["frequency", "recency", "T", "monetary_value"]].tolist() == [1.0, 7.0, 28.0, 10.0]
    excl = summary_from_transactions(tx, "2024-01-31", unit="D", returns="exclude")
    assert excl.loc["a", ["frequency", "monetary_value"]].tolist() == [2.0, 25.0]
    assert excl.loc["b", "monetary_value"] == 12.0
    days = purchase_days(tx)
    assert days.groupby("customer_id").size().to_dict() == {"a": 2, "b": 2, "c": 1}


@pytest.mark.parametrize("unit", ["D", "W"])
def test_summaries_as_of_equal_summary_from_transactions_pair_by_pair(unit: str) -> None:
    """Each (customer, end day) pair: exactly the summary of that customer's days up to that end."""
    rng = np.random.default_rng(7)
    n_rows = 3_000
    cust = rng.integers(0, 60, n_rows) * 7 + 3  # sparse ids: some absent
    day = rng.integers(19_000, 19_400, n_rows)
    amount = np.round(rng.gamma(2.0, 20.0, n_rows) * np.where(rng.random(n_rows) < 0.15, -1, 1), 2)
    amount[rng.random(n_rows) < 0.05] = 0.0  # free items
    tx = pd.DataFrame({"customer_id": cust, "invoiced_at": pd.to_datetime(day, unit="D"), "amount": amount})
    daily = purchase_days(tx)
    pairs_customer = np.concatenate([rng.integers(0, 62, 150) * 7 + 3, [-5, 10_000]])  # incl. unknown ids
    pairs_end = np.concatenate([rng.integers(18_990, 19_420, 150), [19_100, 19_100]])  # incl. before any purchase
    got = summaries_as_of(daily, pairs_customer, pairs_end, unit=unit)
    expected_rows = {}
    for i, (c, end) in enumerate(zip(pairs_customer, pairs_end, strict=True)):
        one = summary_from_transactions(tx[tx["customer_id"] == c], pd.Timestamp(end, unit="D"), unit=unit)
        if len(one):
            expected_rows[i] = one.iloc[0][["frequency", "recency", "T", "monetary_value"]].to_numpy(dtype=float)
    assert 100 < len(expected_rows) < 152  # most pairs have a summary, some (early ends, unknown ids) do not
    assert got.index.tolist() == sorted(expected_rows)
    expected = np.vstack([expected_rows[i] for i in got.index])
    np.testing.assert_array_equal(got[["frequency", "recency", "T", "monetary_value"]].to_numpy(), expected)
    assert summaries_as_of(daily.iloc[:0], pairs_customer, pairs_end, unit=unit).empty


def test_purchase_days_from_day_totals_equal_purchase_days_exactly() -> None:
    rng = np.random.default_rng(11)
    n_rows = 4_000
    cust = rng.integers(0, 80, n_rows)
    day = rng.integers(19_000, 19_060, n_rows)
    amount = np.round(rng.gamma(2.0, 15.0, n_rows), 2) * np.where(rng.random(n_rows) < 0.2, -1, 1)
    amount[rng.random(n_rows) < 0.05] = 0.0  # free items
    rows = pd.DataFrame({"customer_id": cust, "invoiced_at": pd.to_datetime(day, unit="D"), "amount": amount})
    # same-day full cancellations: a purchase and its return on one day
    cancel = rows[rows["amount"] > 0].head(40).assign(amount=lambda f: -f["amount"])
    rows = pd.concat([rows, cancel], ignore_index=True)
    # per customer, day and sign, as cltv.services.transaction_days and the stream's _days_from give them
    totals = (rows.assign(negative=rows["amount"] < 0)
              .groupby(["customer_id", "invoiced_at", "negative"], sort=False)["amount"].sum()
              .reset_index()[["customer_id", "invoiced_at", "amount"]])
    expected = purchase_days(totals)
    got = purchase_days_from_day_totals(totals)
    assert 1_000 < len(got) < len(totals)
    pd.testing.assert_frame_equal(got, expected.astype({"customer_id": "int64"}), check_exact=True)
    assert purchase_days_from_day_totals(totals.iloc[:0]).empty
    with pytest.raises(ValueError, match="one row per customer, day and sign"):
        purchase_days_from_day_totals(pd.concat([totals, totals.head(1)]))


def test_weeks_are_continuous_and_timezones_are_accepted() -> None:
    tx = _tx([("a", "2024-01-01", 10.0), ("a", "2024-01-04", 5.0)])
    tx["invoiced_at"] = tx["invoiced_at"].dt.tz_localize("UTC")
    weeks = summary_from_transactions(tx, pd.Timestamp("2024-01-15", tz="UTC"), unit="W")
    assert weeks.loc["a", "recency"] == pytest.approx(3 / 7)
    assert weeks.loc["a", "T"] == pytest.approx(2.0)
    assert weeks.loc["a", "first_purchase"] == pd.Timestamp("2024-01-01")


def test_summary_scales_to_many_customers_vectorised() -> None:
    """200k customers / ~600k rows summarise in well under the time a per-customer loop needs."""
    rng = np.random.default_rng(0)
    n = 200_000
    counts = rng.poisson(2, n) + 1
    cust = np.repeat(np.arange(n), counts)
    day = rng.integers(0, 365, cust.shape[0])
    tx = pd.DataFrame(
        {
            "customer_id": cust,
            "invoiced_at": np.datetime64("2024-01-01") + day.astype("timedelta64[D]"),
            "amount": rng.gamma(2, 10, cust.shape[0]),
        }
    )
    out = summary_from_transactions(tx, "2024-12-31", unit="D")
    assert len(out) == n
    assert (out["recency"] <= out["T"]).all() and (out["frequency"] >= 0).all()
    sample = tx[tx["customer_id"] < 500]
    theirs = _lifetimes_summary(sample, "2024-12-31", 1)
    np.testing.assert_allclose(out.loc[theirs.index, COLUMNS].to_numpy(), theirs[COLUMNS].to_numpy(), atol=1e-9)
