"""The CDNOW data set (shipped inside lifetimes) in the project's import schema. Pure: no Django.

``CDNOW_master.txt``: every purchase, 1 Jan 1997 – 30 Jun 1998, of the 23,570 customers who first
bought at CDNOW in Q1 1997 (69,659 lines): customer id, date YYYYMMDD, number of CDs, dollar value.
``CDNOW_sample.txt``: the 1/10 sample (2,357 customers, 6,919 lines) behind the published BG/NBD and
Gamma-Gamma fits (Fader, Hardie & Lee 2005); its columns are master id, sample id, date, CDs, dollars.

Conversion, chosen so that a CLTV fit on the imported rows reproduces the published fits:

* one transaction row per CDNOW line; ``customer_id`` is the raw master id as written ("00001"),
  for both files, so the sample's rows are literally a subset of the master's (importing both adds
  nothing the second time);
* ``invoice`` = ``{id}-{YYYYMMDD}-{n}``, n = 1, 2, … numbering a customer's lines on one date in
  file order; several lines on one day stay separate rows but lifetimes' summary counts one
  purchase day, as in the papers. No "CDNOW-" prefix: the importer reads an invoice starting with
  "C" as a cancellation (Online Retail's convention) and would negate every line;
* ``quantity`` = 1 and ``unit_price`` = the line's dollar value exactly as written, so the spend of
  the line is its dollar value with no rounding; the number of CDs is kept in ``description``
  ("3 CDs"); ``sku`` = "CD", ``category`` = "music", ``country`` empty; ``invoiced_at`` = midnight.
* Zero-value lines (80 in the master, none in the sample) are kept: they are real purchase occasions
  in the data that the published frequency counts include, and the importer accepts a zero price.
  A Gamma-Gamma fit must leave out customers whose mean repeat spend is 0 (lifetimes requires > 0).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

MASTER = "CDNOW_master.txt"
SAMPLE = "CDNOW_sample.txt"
SCHEMA = (
    "invoice", "customer_id", "sku", "description", "category", "invoiced_at", "quantity", "unit_price", "country",
)  # fmt: skip


def dataset_path(name: str = MASTER) -> Path:
    """Path of a file in lifetimes/datasets, found without importing lifetimes (which is slow)."""
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("The lifetimes package is not installed; it ships the CDNOW data.")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / name
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist.")
    return path


def read_raw(path: str | Path) -> pd.DataFrame:
    """A CDNOW text file → customer_id, date, cds, dollars, all as the strings written in the file.

    Accepts the master layout (header line; id, date, CDs, dollars) and the sample layout (no
    header; master id, sample id, date, CDs, dollars).
    """
    path = Path(path)
    with open(path, encoding="ascii") as fh:
        first = fh.readline().split()
    has_header = bool(first) and not first[0].isdigit()
    raw = pd.read_csv(path, sep=r"\s+", header=None, skiprows=1 if has_header else 0, dtype=str)
    if raw.shape[1] == 5:
        raw = raw.drop(columns=[1])
    if raw.shape[1] != 4:
        raise ValueError(f"{path.name}: expected 4 or 5 whitespace-separated columns, found {raw.shape[1]}.")
    raw.columns = ["customer_id", "date", "cds", "dollars"]
    return raw


def to_transactions(raw: pd.DataFrame) -> pd.DataFrame:
    """Raw CDNOW lines (from ``read_raw``) → the project's transaction import schema (all strings)."""
    line_on_day = raw.groupby(["customer_id", "date"], sort=False).cumcount() + 1
    cds = raw["cds"].astype(int)
    when = pd.to_datetime(raw["date"], format="%Y%m%d")  # raises on a malformed date: the file is fixed
    return pd.DataFrame(
        {
            "invoice": raw["customer_id"] + "-" + raw["date"] + "-" + line_on_day.astype(str),
            "customer_id": raw["customer_id"],
            "sku": "CD",
            "description": cds.astype(str) + " CD" + (cds != 1).map({True: "s", False: ""}),
            "category": "music",
            "invoiced_at": when.dt.strftime("%Y-%m-%d %H:%M:%S"),
            "quantity": "1",
            "unit_price": raw["dollars"],
            "country": "",
        },
        columns=list(SCHEMA),
    )


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a converted frame as a CSV the importer reads (header = the schema's names)."""
    frame.to_csv(path, index=False, lineterminator="\n")
    return Path(path)
