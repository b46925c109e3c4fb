"""The default calibration/holdout split is a transaction-time quantile: outliers in time cannot break it."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from cltv import pipeline as P
from rfm_portal.customers import generator

CONFIG = P.CLTVConfig(models=("bgnbd",), n_draws=20)


@pytest.fixture(scope="module")
def retail() -> pd.DataFrame:
    tx = generator.generate(300, 3, start=date(2023, 1, 1), end=date(2024, 6, 30)).transactions.copy()
    tx["invoiced_at"] = pd.to_datetime(tx["invoiced_at"])
    tx["amount"] = tx["quantity"].astype(float) * tx["unit_price"].astype(float)
    return tx[["customer_id", "invoiced_at", "amount"]]


def with_stray(tx: pd.DataFrame, when: str) -> pd.DataFrame:
    stray = pd.DataFrame({"customer_id": ["STRAY"], "invoiced_at": [pd.Timestamp(when)], "amount": [12.5]})
    return pd.concat([tx, stray], ignore_index=True)


def test_one_stray_2011_transaction_does_not_move_the_split(retail: pd.DataFrame) -> None:
    clean = P.train_cltv(retail, config=CONFIG)
    stray = P.train_cltv(with_stray(retail, "2011-03-04 10:00"), config=CONFIG)
    assert stray.calibration_end == clean.calibration_end
    assert pd.Timestamp("2023-10-01") < stray.calibration_end < pd.Timestamp("2024-06-30")
    assert stray.bundle.metrics["gamma_gamma"]["n_customers"] >= 3
    # The old calendar-span rule would have put the split in 2021, before any real customer.
    span_rule = stray.observation_end - pd.Timedelta(days=round(0.25 * (stray.observation_end.year - 2011) * 365.25))
    assert span_rule < pd.Timestamp("2023-01-01")


def test_the_holdout_holds_the_last_quarter_of_purchase_days(retail: pd.DataFrame) -> None:
    days = retail["invoiced_at"].dt.normalize()
    cal_end = P.default_calibration_end(retail["invoiced_at"], days.max(), 0.25)
    assert (days > cal_end).mean() == pytest.approx(0.25, abs=0.01)
    assert cal_end in set(days)  # a purchase day, never a date interpolated into a gap


def test_everything_on_the_last_day_still_leaves_a_day_of_holdout() -> None:
    dates = pd.Series(pd.to_datetime(["2024-01-01"] + ["2024-03-01"] * 9))
    assert P.default_calibration_end(dates, pd.Timestamp("2024-03-01"), 0.25) == pd.Timestamp("2024-02-29")


def test_a_split_without_repeat_buyers_says_what_to_change(retail: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="Only 0 customers bought on more than one day") as e:
        P.train_cltv(retail, calibration_end="2023-01-02", config=CONFIG)
    assert "Import a longer transaction history, or set the calibration end later" in str(e.value)


def test_gamma_gamma_without_repeat_buyers_says_what_to_change() -> None:
    with pytest.raises(ValueError, match="at least 3 repeat buyers with positive spend, and the data has 1") as e:
        P.fit_gamma_gamma([0, 0, 2], [0.0, 0.0, 10.0])
    assert "import a longer transaction history" in str(e.value)
