"""Repeat-purchase (RFM) summaries from raw transactions, vectorised for millions of customers.

The construction follows Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way"
(BG/NBD), section 4, and lifetimes' ``summary_data_from_transaction_data`` /
``calibration_and_holdout_data``:

* all purchases of one customer on one calendar day form one purchase occasion;
* ``frequency`` x = number of repeat purchase days (occasions after the first);
* ``recency`` t_x = time from the first to the last purchase day;
* ``T`` = time from the first purchase day to the end of the observation window;
* ``monetary_value`` = mean value of the repeat purchase days (the first purchase is excluded,
  as in Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves", and lifetimes);
  0 for customers without repeat purchases.

Times are continuous: ``(date difference in days) / unit_days`` with unit "D" (1 day) or "W"
(7 days), i.e. lifetimes with ``freq="D", freq_multiplier=unit_days``. This is how the CDNOW
calibration data of Fader & Hardie are built (T = 38.86 weeks for a 1 January 1997 customer
with the calibration period ending 30 September 1997).

Returns policy (``returns=``):

* ``"net"`` (default) — amounts of one customer-day are netted. A day is a purchase occasion
  when it holds at least one purchase row (amount >= 0) and its returns do not cancel it
  (net amount > 0, or no return rows at all, which keeps zero-value purchases such as CDNOW's
  free items). The occasion's value is the net amount. A same-day cancellation therefore
  removes the order; a return on a later day only lowers (never below zero) that day's value
  and never creates an occasion.
* ``"exclude"`` — rows with a negative amount are dropped before aggregation.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

TimeUnit = Literal["D", "W"]
ReturnsPolicy = Literal["net", "exclude"]

UNIT_DAYS: dict[str, float] = {"D": 1.0, "W": 7.0}

SUMMARY_COLUMNS = ["frequency", "recency", "T", "monetary_value"]


def unit_days(unit: str) -> float:
    """Length of a model time unit in days ("D" → 1, "W" → 7)."""
    try:
        return UNIT_DAYS[unit]
    except KeyError:
        raise ValueError(f"unknown time unit {unit!r}; use one of {sorted(UNIT_DAYS)}") from None


def _day_numbers(values: pd.Series) -> np.ndarray:
    """Calendar-day numbers (days since 1970-01-01) of datetimes, timezone-naive or aware."""
    ts = pd.to_datetime(values)
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_localize(None)
    return ts.to_numpy(dtype="datetime64[D]").astype(np.int64)


def _day_number(value: object) -> int:
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_localize(None)
    return int(np.datetime64(ts.normalize(), "D").astype(np.int64))


def purchase_days(
    transactions: pd.DataFrame,
    *,
    customer_col: str = "customer_id",
    date_col: str = "invoiced_at",
    amount_col: str = "amount",
    returns: ReturnsPolicy = "net",
) -> pd.DataFrame:
    """Collapse transactions into purchase occasions (one row per customer and calendar day).

    Returns a frame with columns ``customer_id`` (original ids), ``day`` (int days since epoch)
    and ``value`` (float), sorted by customer then day. See the module docstring for ``returns``.
    """
    if returns not in ("net", "exclude"):
        raise ValueError(f"returns must be 'net' or 'exclude', not {returns!r}")
    amount = pd.to_numeric(transactions[amount_col], errors="raise").to_numpy(dtype=float)
    day = _day_numbers(transactions[date_col])
    cust = transactions[customer_col].to_numpy()
    if returns == "exclude":
        keep = amount >= 0
        amount, day, cust = amount[keep], day[keep], cust[keep]
    frame = pd.DataFrame(
        {
            "customer_id": cust,
            "day": day,
            "value": amount,
            "purchase": (amount >= 0).astype(np.int8),
            "ret": (amount < 0).astype(np.int8),
        }
    )
    g = frame.groupby(["customer_id", "day"], sort=True, observed=True)
    daily = g.agg(value=("value", "sum"), purchase=("purchase", "max"), ret=("ret", "max")).reset_index()
    occasion = (daily["purchase"] > 0) & ((daily["value"] > 0) | (daily["ret"] == 0))
    daily = daily.loc[occasion, ["customer_id", "day", "value"]].reset_index(drop=True)
    daily["value"] = daily["value"].clip(lower=0.0)
    return daily


def purchase_days_from_day_totals(days: pd.DataFrame) -> pd.DataFrame:
    """:func:`purchase_days` (``returns="net"``) of per-day totals, in numpy without a group-by.

    ``days``: columns ``customer_id`` (integers), ``invoiced_at`` (the day) and ``amount``, with at most
    one row per customer, day and sign (the day's purchases summed, its returns summed), as
    ``cltv.services.transaction_days`` gives them. A day's value is then the sum of at most two
    numbers, which is exact in any order, so the result equals :func:`purchase_days`' value for value.
    """
    if days.empty:
        return pd.DataFrame({"customer_id": np.zeros(0, dtype=np.int64), "day": np.zeros(0, dtype=np.int64),
                             "value": np.zeros(0, dtype=float)})
    cust = days["customer_id"].to_numpy(dtype=np.int64)
    day = _day_numbers(days["invoiced_at"])
    amount = days["amount"].to_numpy(dtype=float)
    order = np.lexsort((day, cust))
    cust, day, amount = cust[order], day[order], amount[order]
    first = np.flatnonzero(np.r_[True, (cust[1:] != cust[:-1]) | (day[1:] != day[:-1])])
    purchase = np.logical_or.reduceat(amount >= 0, first)
    ret = np.logical_or.reduceat(amount < 0, first)
    rows_per_day = np.diff(np.r_[first, cust.size])
    if np.any(rows_per_day > 2) or np.any((rows_per_day == 2) & ~(purchase & ret)):
        raise ValueError("days must hold at most one row per customer, day and sign")
    value = np.add.reduceat(amount, first)
    occasion = purchase & ((value > 0) | ~ret)
    value = value[occasion]
    return pd.DataFrame({"customer_id": cust[first][occasion], "day": day[first][occasion],
                         "value": np.where(value >= 0.0, value, 0.0)})  # as Series.clip(lower=0.0)


def _summarise_days(daily: pd.DataFrame, end_day: int, udays: float) -> pd.DataFrame:
    """Per-customer x, t_x, T, m_x from purchase occasions sorted by (customer, day)."""
    cust = daily["customer_id"].to_numpy()
    day = daily["day"].to_numpy(dtype=np.int64)
    value = daily["value"].to_numpy(dtype=float)
    n = len(cust)
    if n == 0:
        out = pd.DataFrame(columns=[*SUMMARY_COLUMNS, "first_purchase"], dtype=float)
        out.index.name = "customer_id"
        return out
    # run boundaries of each customer (rows are sorted by customer then day)
    start = np.flatnonzero(np.r_[True, cust[1:] != cust[:-1]])
    stop = np.r_[start[1:], n]
    count = stop - start
    first_day = day[start]
    last_day = day[stop - 1]
    total = np.add.reduceat(value, start)
    first_value = value[start]
    frequency = count - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        monetary = np.where(frequency > 0, (total - first_value) / np.maximum(frequency, 1), 0.0)
    out = pd.DataFrame(
        {
            "frequency": frequency.astype(float),
            "recency": (last_day - first_day) / udays,
            "T": (end_day - first_day) / udays,
            "monetary_value": monetary,
            "first_purchase": first_day.astype("datetime64[D]").astype("datetime64[ns]"),
        },
        index=pd.Index(cust[start], name="customer_id"),
    )
    return out


def summary_from_transactions(
    transactions: pd.DataFrame,
    observation_end: object,
    *,
    unit: TimeUnit = "W",
    customer_col: str = "customer_id",
    date_col: str = "invoiced_at",
    amount_col: str = "amount",
    returns: ReturnsPolicy = "net",
) -> pd.DataFrame:
    """Repeat-purchase summary (x, t_x, T, m_x) as of ``observation_end`` (inclusive day).

    Index: customer id. Columns: ``frequency``, ``recency``, ``T``, ``monetary_value`` (floats,
    as lifetimes returns them) and ``first_purchase`` (datetime, day). Transactions after the
    observation end are ignored; customers whose first purchase is after it are absent.
    Equals lifetimes' ``summary_data_from_transaction_data(..., freq="D", freq_multiplier=unit_days)``.
    """
    udays = unit_days(unit)
    daily = purchase_days(
        transactions, customer_col=customer_col, date_col=date_col, amount_col=amount_col, returns=returns
    )
    end_day = _day_number(observation_end)
    daily = daily[daily["day"] <= end_day]
    return _summarise_days(daily, end_day, udays)


def summaries_as_of(daily: pd.DataFrame, customer_ids: np.ndarray, end_days: np.ndarray, *,
                    unit: TimeUnit = "W") -> pd.DataFrame:
    """The summary (x, t_x, T, m_x) of each (customer, end day) pair, from one :func:`purchase_days` frame.

    Row ``i`` is what :func:`summary_from_transactions` gives for customer ``customer_ids[i]`` with
    the observation ending on day ``end_days[i]`` (int days since the epoch), computed the same way
    (the same sums over the same purchase days) for many pairs at once: a stream of events, each
    scored as of its own day, costs one pass. Index: the pair's position; pairs whose customer has
    no purchase day up to its end are absent. ``daily`` is sorted by customer then day, as
    :func:`purchase_days` returns it, with integer customer ids.
    """
    udays = unit_days(unit)
    cust = daily["customer_id"].to_numpy(dtype=np.int64)
    day = daily["day"].to_numpy(dtype=np.int64)
    value = daily["value"].to_numpy(dtype=float)
    ids = np.asarray(customer_ids, dtype=np.int64)
    ends = np.asarray(end_days, dtype=np.int64)
    if cust.size == 0 or ids.size == 0:
        return pd.DataFrame({c: pd.Series([], dtype=float) for c in SUMMARY_COLUMNS},
                            index=pd.Index([], dtype=np.int64))
    # one sorted key per purchase day: (customer, day) → customer · span + day offset
    first_customer, first_day = cust.min(), day.min()
    span = int(day.max() - first_day) + 2
    keys = (cust - first_customer) * span + (day - first_day)
    start = np.searchsorted(keys, (ids - first_customer) * span - 1, side="right")  # the customer's first day
    stop = np.searchsorted(keys, (ids - first_customer) * span + (np.clip(ends, first_day - 1, day.max()) - first_day),
                           side="right")  # after its last day <= end
    count = np.maximum(stop - start, 0)
    kept = np.flatnonzero(count > 0)
    start, stop, count, ends = start[kept], stop[kept], count[kept], ends[kept]
    # the pairs' purchase days one after the other, so each pair's total is one segment of a reduceat
    offsets = np.concatenate(([0], np.cumsum(count)[:-1]))
    rows = np.arange(count.sum()) - np.repeat(offsets, count) + np.repeat(start, count)
    total = np.add.reduceat(value[rows], offsets)
    first_value = value[start]
    frequency = count - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        monetary = np.where(frequency > 0, (total - first_value) / np.maximum(frequency, 1), 0.0)
    return pd.DataFrame(
        {
            "frequency": frequency.astype(float),
            "recency": (day[stop - 1] - day[start]) / udays,
            "T": (ends - day[start]) / udays,
            "monetary_value": monetary,
        },
        index=pd.Index(kept, dtype=np.int64),
    )


def calibration_and_holdout(
    transactions: pd.DataFrame,
    calibration_end: object,
    observation_end: object,
    *,
    unit: TimeUnit = "W",
    customer_col: str = "customer_id",
    date_col: str = "invoiced_at",
    amount_col: str = "amount",
    returns: ReturnsPolicy = "net",
) -> pd.DataFrame:
    """Calibration summary up to ``calibration_end`` plus holdout outcomes up to ``observation_end``.

    Like lifetimes' ``calibration_and_holdout_data``: columns ``frequency_cal``, ``recency_cal``,
    ``T_cal``, ``monetary_value_cal``, ``first_purchase``, ``frequency_holdout`` (purchase days in
    (calibration_end, observation_end]), ``monetary_value_holdout`` (mean value of those days, 0
    if none) and ``duration_holdout`` (holdout length in units). Only customers acquired in the
    calibration period are kept.
    """
    udays = unit_days(unit)
    cal_end = _day_number(calibration_end)
    obs_end = _day_number(observation_end)
    if obs_end <= cal_end:
        raise ValueError("observation_end must be after calibration_end")
    daily = purchase_days(
        transactions, customer_col=customer_col, date_col=date_col, amount_col=amount_col, returns=returns
    )
    cal = _summarise_days(daily[daily["day"] <= cal_end], cal_end, udays)
    cal = cal.rename(columns={c: f"{c}_cal" for c in SUMMARY_COLUMNS})
    hold = daily[(daily["day"] > cal_end) & (daily["day"] <= obs_end)]
    hg = hold.groupby("customer_id", sort=False)["value"].agg(["size", "mean"])
    cal["frequency_holdout"] = hg["size"].reindex(cal.index).fillna(0).to_numpy(dtype=float)
    cal["monetary_value_holdout"] = hg["mean"].reindex(cal.index).fillna(0).to_numpy(dtype=float)
    cal["duration_holdout"] = (obs_end - cal_end) / udays
    return cal
