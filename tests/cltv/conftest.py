"""CDNOW fixtures: lifetimes' raw CDNOW files read into a transactions frame.

``CDNOW_master.txt`` is the full CDNOW data (23,570 customers who first bought in Q1 1997,
all their purchases to 30 June 1998): customer id, date YYYYMMDD, number of CDs, dollar value.
``CDNOW_sample.txt`` is the 1/10 sample (2,357 customers) used by Fader, Hardie & Lee; its
first column is the master customer id, so the sample is a subset of the master file.
"""

from __future__ import annotations

from pathlib import Path

import lifetimes
import pandas as pd
import pytest

DATASETS = Path(lifetimes.__file__).parent / "datasets"
CALIBRATION_END = pd.Timestamp("1997-09-30")
OBSERVATION_END = pd.Timestamp("1998-06-30")


def read_cdnow_master(path: Path = DATASETS / "CDNOW_master.txt") -> pd.DataFrame:
    """CDNOW_master.txt → transactions (customer_id, invoiced_at, quantity, amount)."""
    raw = pd.read_csv(
        path,
        sep=r"\s+",
        header=None,
        skiprows=1,
        names=["customer_id", "date", "quantity", "amount"],
        dtype={"customer_id": int, "date": str, "quantity": int, "amount": float},
    )
    return pd.DataFrame(
        {
            "customer_id": raw["customer_id"],
            "invoiced_at": pd.to_datetime(raw["date"], format="%Y%m%d"),
            "quantity": raw["quantity"],
            "amount": raw["amount"],
        }
    )


def cdnow_sample_ids(path: Path = DATASETS / "CDNOW_sample.txt") -> pd.Series:
    """Master id → sample id (1..2357) of the Fader-Hardie 1/10 sample."""
    raw = pd.read_csv(path, sep=r"\s+", header=None, names=["master_id", "sample_id", "date", "n", "amount"])
    return raw.drop_duplicates("master_id").set_index("master_id")["sample_id"]


@pytest.fixture(scope="session")
def cdnow_master() -> pd.DataFrame:
    return read_cdnow_master()


@pytest.fixture(scope="session")
def cdnow_sample(cdnow_master: pd.DataFrame) -> pd.DataFrame:
    """The 2,357-customer sample's transactions taken from the master file, keyed by sample id."""
    ids = cdnow_sample_ids()
    tx = cdnow_master[cdnow_master["customer_id"].isin(ids.index)].copy()
    tx["customer_id"] = tx["customer_id"].map(ids)
    return tx.reset_index(drop=True)
