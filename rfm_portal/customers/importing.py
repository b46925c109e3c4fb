"""Reading and validating import files: bytes in, a clean DataFrame and a list of bad lines out.

Pure: no Django. Everything that touches valid rows is vectorised with pandas, so a
1,000,000-row file is validated in seconds (the only per-row Python is the SHA-1 of
each line, which has no vectorised form).

Conventions, decided once for every layout:

* Line numbers are the lines a user sees in an editor: the header is line 1, the
  first data row line 2 (for .xlsx: the spreadsheet row). Blank lines are skipped
  but keep their numbers. A quoted field containing a line break shifts the numbers
  of later rows (the parser counts records, not physical lines).
* CSV: UTF-8 (a BOM is ignored), falling back to latin-1 when the bytes are not UTF-8.
  The delimiter is whichever of `,` `;` TAB `|` appears most in the header line
  (comma when none does).
* Timestamps: ISO 8601 (`2010-12-01 08:26`, `2010-12-01T08:26:00+01:00`) always; then
  month-first `12/1/2010 8:26` (Online Retail) by default, or day-first `1/12/2010 8:26`
  (also `1.12.2010`, `1-12-2010`) when `dayfirst=True`. The two are never guessed
  per row: `3/4/2011` means one thing for the whole file. Naive timestamps are UTC;
  timestamps with an offset are converted to UTC. Anything else is rejected.
* Money is rounded to 4 decimals and carried as exact integers of 1/10,000
  (`unit_price_e4`, `amount_e4`) so no float error reaches the database.
"""

from __future__ import annotations

import codecs
import datetime as dt
import hashlib
import itertools
import json
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

LINE = "line"  # column added by read_table: the 1-based line number in the file

TRANSACTION_REQUIRED = ("invoice", "customer_id", "invoiced_at", "quantity", "unit_price")
TRANSACTION_OPTIONAL = ("sku", "description", "category", "country")
CAMPAIGN_REQUIRED = ("customer_id", "campaign", "treated", "converted", "sent_at")
CAMPAIGN_OPTIONAL = ("revenue",)

# Known spellings, compared after normalise_name(): Online Retail I and II and our own schema.
TRANSACTION_ALIASES: dict[str, tuple[str, ...]] = {
    "invoice": ("invoice", "invoiceno", "invoicenumber"),
    "customer_id": ("customerid", "customer"),
    "invoiced_at": ("invoicedat", "invoicedate"),
    "quantity": ("quantity", "qty"),
    "unit_price": ("unitprice", "price"),
    "sku": ("sku", "stockcode"),
    "description": ("description",),
    "category": ("category",),
    "country": ("country",),
}
CAMPAIGN_ALIASES: dict[str, tuple[str, ...]] = {
    "customer_id": ("customerid", "customer"),
    "campaign": ("campaign",),
    "treated": ("treated",),
    "converted": ("converted",),
    "revenue": ("revenue",),
    "sent_at": ("sentat",),
}

# Database column limits (customers.models): ids are rejected when too long, free text is cut.
MAX_INVOICE, MAX_EXTERNAL_ID, MAX_SKU, MAX_CAMPAIGN = 32, 64, 64, 64
MAX_DESCRIPTION, MAX_CATEGORY, MAX_COUNTRY = 255, 64, 64
MAX_PRICE_E4 = 10**12  # numeric(12, 4)
MAX_AMOUNT_E4 = 10**14  # numeric(14, 4)
MAX_QUANTITY = 2**31 - 1  # integer

ISO_FORMAT = "ISO8601"
MONTH_FIRST_FORMATS = ("%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y", "%m/%d/%y %H:%M", "%m/%d/%y")
DAY_FIRST_FORMATS = tuple(
    fmt.replace("%m/%d", "%d/%m").replace("/", sep) for sep in ("/", ".", "-") for fmt in MONTH_FIRST_FORMATS
)

TRUE_VALUES = ("1", "true", "t", "yes", "y")
FALSE_VALUES = ("0", "false", "f", "no", "n")


class ImportFileError(Exception):
    """The file as a whole cannot be imported (unreadable, empty, a required column missing)."""


@dataclass
class ValidationResult:
    """Valid rows (normalised, typed) and one (line, reason) per rejected row, sorted by line."""

    valid: pd.DataFrame
    errors: list[tuple[int, str]]
    columns: dict[str, str] = field(default_factory=dict)  # target -> source column used

    @property
    def rows_rejected(self) -> int:
        return len(self.errors)


# --- Reading ---------------------------------------------------------------------------

# Rows per chunk when a file is streamed (iter_table): memory then depends on this, not on the
# file. 100k rows of a typical transactions layout are ~60-90 MB of strings while validated.
DEFAULT_CHUNK_ROWS = 100_000


def read_table(path: str | Path, file_name: str | None = None) -> pd.DataFrame:
    """Every cell as a stripped string, plus a LINE column; fully blank rows dropped."""
    frames = [frame for frame, _ in iter_table(path, file_name, chunk_rows=None)]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else (frames or [pd.DataFrame()])[0]
    if frame.empty:
        raise ImportFileError("The file has a header but no data rows.")
    return frame


def iter_table(
    path: str | Path, file_name: str | None = None, chunk_rows: int | None = DEFAULT_CHUNK_ROWS
) -> Iterator[tuple[pd.DataFrame, float]]:
    """The table of read_table in chunks of at most `chunk_rows` file rows: (chunk, fraction of the file read).

    Line numbers run on across chunks. A chunk may be empty (all its rows blank); a file with
    no data rows at all yields nothing or only empty chunks (the caller decides what that means).
    `chunk_rows=None` reads the whole file as one chunk. The file is read once, front to back;
    errors in later rows (a ragged line) are raised when their chunk is reached.
    """
    path = Path(path)
    name = (file_name or path.name).lower()
    with open(path, "rb") as fh:
        head = fh.read(65536)
    if name.endswith((".xlsx", ".xlsm")) or head.startswith(b"PK\x03\x04"):
        chunks = _xlsx_chunks(path, chunk_rows)
    else:
        chunks = _csv_chunks(path, head, chunk_rows)
    for frame, fraction in chunks:
        if LINE in frame.columns:
            raise ImportFileError(f"The file has a column named {LINE!r}, which is reserved.")
        cells = frame.drop(columns=["__line"])
        frame = frame.rename(columns={"__line": LINE})
        blank = (cells == "").all(axis=1) if len(cells.columns) else pd.Series(True, index=frame.index)
        if blank.any():
            frame = frame[~blank].reset_index(drop=True)
        yield frame, fraction


def _csv_encoding(path: Path) -> str:
    """utf-8-sig when every byte of the file decodes as UTF-8, else latin-1 (checked in 1 MB blocks)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as fh:
        try:
            while block := fh.read(1 << 20):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "latin-1"
    return "utf-8-sig"


# An extra column after the header's: the C parser does not check the field count of the first
# row of each chunk (pandas 2.3 drops that row's surplus fields silently), so a surplus field is
# caught here instead, on every row.
_SURPLUS = "\x00surplus"
_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _csv_chunks(path: Path, head: bytes, chunk_rows: int | None) -> Iterator[tuple[pd.DataFrame, float]]:
    if not head.strip():
        raise ImportFileError("The file is empty.")
    encoding = _csv_encoding(path)
    header_line = head.decode(encoding, errors="ignore").splitlines()[0]
    delimiter = max(",;\t|", key=header_line.count) if any(d in header_line for d in ",;\t|") else ","
    options = {"sep": delimiter, "dtype": str, "encoding": encoding, "engine": "c"}
    size = max(path.stat().st_size, 1)
    first_line = 2
    try:
        header = pd.read_csv(path, nrows=0, **options).columns  # duplicate names come back as "x.1"
        with open(path, "rb") as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.ParserWarning)  # a long first row: found below
            reader = pd.read_csv(
                fh,
                header=None,
                skiprows=1,
                names=[*header, _SURPLUS],
                index_col=False,
                na_filter=False,  # an empty cell stays "", never NaN: validation reports it
                skip_blank_lines=False,  # keeps row i on line i + 2
                chunksize=chunk_rows,
                **options,
            )
            for frame in [reader] if chunk_rows is None else reader:
                surplus = frame.pop(_SURPLUS).str.strip() != ""
                if surplus.any():
                    line = first_line + int(np.flatnonzero(surplus.to_numpy())[0])
                    raise ImportFileError(
                        f"The file is not a well-formed CSV table: line {line} has more fields than "
                        f"the header ({len(header)})."
                    )
                frame.columns = [str(c).strip() for c in frame.columns]
                frame = frame.apply(lambda col: col.str.strip())
                frame["__line"] = np.arange(first_line, first_line + len(frame))
                first_line += len(frame)
                yield frame, min(fh.tell() / size, 1.0)
    except pd.errors.EmptyDataError:
        raise ImportFileError("The file is empty.") from None
    except pd.errors.ParserError as exc:
        detail = str(exc).replace("Error tokenizing data. C error: ", "").strip()
        fields = _FIELDS.search(detail)
        if fields:  # the parser counts the surplus column too
            detail = f"line {fields[2]} has more fields than the header ({int(fields[1]) - 1})."
        raise ImportFileError(f"The file is not a well-formed CSV table: {detail}") from None


# Cells are always str (dtype=str, na_filter=False), so lengths come from len() called straight from
# C, about 6x faster than pandas' .str.len(), which wraps each cell in a Python call.
def _lengths(values: pd.Series) -> pd.Series:
    """values.str.len(), for a Series of str."""
    lengths = np.fromiter(map(len, values.tolist()), dtype=np.int64, count=len(values))
    return pd.Series(lengths, index=values.index)


def _xlsx_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _xlsx_chunks(path: Path, chunk_rows: int | None) -> Iterator[tuple[pd.DataFrame, float]]:
    # openpyxl walks the sheet cell by cell anyway; reading rows directly keeps their numbers.
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several unrelated types for a corrupt file
        raise ImportFileError(f"The file is not a readable .xlsx workbook: {exc}") from None
    try:
        sheet = workbook.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
        header = next(rows, None)
        if header is None or all(v is None for v in header):
            raise ImportFileError("The file is empty.")
        width = len(header)
        columns = [_xlsx_cell(h) for h in header]
        total = max((sheet.max_row or 1) - 1, 1)  # from the sheet's dimensions: for progress only
        first_line = 2
        while True:
            data = [
                [_xlsx_cell(v) for v in (row + (None,) * width)[:width]]
                for row in itertools.islice(rows, chunk_rows)
            ]
            if not data and first_line > 2:
                break
            frame = pd.DataFrame(data, columns=columns, dtype=object)
            frame["__line"] = np.arange(first_line, first_line + len(frame))
            first_line += len(frame)
            yield frame, min((first_line - 2) / total, 1.0)
            if chunk_rows is None or len(data) < chunk_rows:
                break
    finally:
        workbook.close()


# --- Columns -------------------------------------------------------------------------


def normalise_name(name: str) -> str:
    """'Customer ID', 'customer_id' and 'CustomerID' are the same column."""
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


def parse_mapping(items: Iterable[str] | str | Mapping[str, str] | None) -> dict[str, str]:
    """target -> source column, from a dict, a JSON object, or `target=Source` items/lines."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        pairs = list(items.items())
    else:
        if isinstance(items, str):
            text = items.strip()
            if text.startswith("{"):
                try:
                    loaded = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"The mapping is not valid JSON: {exc}") from None
                if not isinstance(loaded, dict):
                    raise ValueError("The mapping must be a JSON object of target: source column.")
                return parse_mapping(loaded)
            items = [line for chunk in text.splitlines() for line in chunk.split(",")]
        pairs = []
        for item in items:
            if not item.strip():
                continue
            if "=" not in item:
                raise ValueError(f"Mapping item {item.strip()!r} is not of the form target=SourceColumn.")
            target, source = item.split("=", 1)
            pairs.append((target, source))
    mapping: dict[str, str] = {}
    for target, source in pairs:
        if not isinstance(source, str) or not str(target).strip() or not source.strip():
            raise ValueError(f"Mapping entry {target!r}: {source!r} needs a target and a source column.")
        mapping[str(target).strip()] = source.strip()
    return mapping


def resolve_columns(
    columns: Iterable[str],
    required: tuple[str, ...],
    optional: tuple[str, ...],
    aliases: Mapping[str, tuple[str, ...]],
    mapping: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """target -> source column: explicit mapping first, then the known spellings."""
    columns = [c for c in columns if c != LINE]
    targets = required + optional
    found = ", ".join(repr(c) for c in columns) or "none"
    by_norm: dict[str, str] = {}
    for column in columns:
        by_norm.setdefault(normalise_name(column), column)
    resolved: dict[str, str] = {}
    for target, source in (mapping or {}).items():
        if target not in targets:
            raise ImportFileError(
                f"Unknown target field {target!r} in the mapping; expected one of {', '.join(targets)}."
            )
        column = source if source in columns else by_norm.get(normalise_name(source))
        if column is None:
            raise ImportFileError(
                f"Mapped column {source!r} (for {target}) is not in the file. Columns found: {found}."
            )
        resolved[target] = column
    taken = set(resolved.values())
    for target in targets:
        if target in resolved:
            continue
        matches = [by_norm[a] for a in aliases[target] if a in by_norm and by_norm[a] not in taken]
        if len(matches) > 1:
            raise ImportFileError(
                f"Columns {' and '.join(repr(m) for m in matches)} both look like {target}; "
                f"map one explicitly (e.g. {target}={matches[0]})."
            )
        if matches:
            resolved[target] = matches[0]
            taken.add(matches[0])
    missing = [t for t in required if t not in resolved]
    if missing:
        names = ", ".join(missing)
        raise ImportFileError(
            f"Missing required column{'s' if len(missing) > 1 else ''} {names}. Columns found: {found}. "
            'Rename the column or give a mapping such as customer_id="Client Number".'
        )
    return resolved


# --- Field parsers (vectorised; each returns values plus a mask of bad entries) ----------


def parse_timestamps(values: pd.Series, dayfirst: bool = False) -> pd.Series:
    """UTC timestamps; NaT where the value matches none of the documented formats."""
    result = pd.to_datetime(values, format=ISO_FORMAT, utc=True, errors="coerce")
    for fmt in DAY_FIRST_FORMATS if dayfirst else MONTH_FIRST_FORMATS:
        todo = result.isna() & (values != "")
        if not todo.any():
            break
        result[todo] = pd.to_datetime(values[todo], format=fmt, utc=True, errors="coerce")
    return result


def parse_external_id(values: pd.Series) -> pd.Series:
    """Spreadsheets turn 17850 into '17850.0'; both are customer 17850."""
    dotted = values.str.contains(".", regex=False)  # the cheap test first; the regex only where needed
    if not dotted.any():
        return values
    values = values.copy()
    values[dotted] = values[dotted].str.replace(r"^(\d+)\.0+$", r"\1", regex=True)
    return values


def parse_money_e4(values: pd.Series) -> pd.Series:
    """Exact 1/10,000ths as float64 (NaN when not a number); callers bound-check then cast."""
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    numbers[~np.isfinite(numbers)] = np.nan
    return (numbers * 10_000).round()


def parse_bool(values: pd.Series) -> pd.Series:
    """True/False, or NA for anything else (0/1/true/false/yes/no, any case)."""
    lowered = values.str.lower()
    out = pd.Series(pd.NA, index=values.index, dtype="boolean")
    out[lowered.isin(TRUE_VALUES)] = True
    out[lowered.isin(FALSE_VALUES)] = False
    return out


class _Problems:
    """Collects (mask, reason) per check; a row's reasons are joined, in check order.

    A reason may contain "{value}": it is filled in with the offending cell, formatted only
    for the rows that fail (a clean million-row file formats nothing).
    """

    def __init__(self, index: pd.Index) -> None:
        self.reasons = pd.Series("", index=index, dtype=object)
        self.bad = pd.Series(False, index=index)

    def add(self, mask: pd.Series, reason: str | pd.Series, values: pd.Series | None = None) -> None:
        if not mask.any():
            return
        text = reason[mask] if isinstance(reason, pd.Series) else reason
        if values is not None:
            before, after = reason.split("{value}")
            text = before + "'" + values[mask].str.slice(0, 40) + "'" + after
        current = self.reasons[mask]
        self.reasons[mask] = np.where(self.bad[mask], current + "; " + text, text)
        self.bad |= mask


def _check_required_text(problems: _Problems, values: pd.Series, name: str, limit: int) -> None:
    problems.add(values == "", f"{name} is empty")
    problems.add(_lengths(values) > limit, f"{name} is longer than {limit} characters")


def _check_timestamp(problems: _Problems, raw: pd.Series, parsed: pd.Series, name: str, dayfirst: bool) -> None:
    problems.add(raw == "", f"{name} is empty")
    example = "1/12/2010 8:26 (day first)" if dayfirst else "12/1/2010 8:26 (month first)"
    problems.add(
        parsed.isna() & (raw != ""),
        f"{name} {{value}} is not a date (expected ISO 2010-12-01 08:26 or {example})",
        raw,
    )


def _check_money(problems: _Problems, raw: pd.Series, e4: pd.Series, name: str) -> None:
    problems.add(raw == "", f"{name} is empty")
    problems.add(e4.isna() & (raw != ""), f"{name} {{value}} is not a number", raw)
    problems.add(e4 < 0, f"{name} is negative")
    problems.add(e4.abs() >= MAX_PRICE_E4, f"{name} is too large")


def _errors(problems: _Problems, lines: pd.Series) -> list[tuple[int, str]]:
    bad = problems.bad
    return list(zip(lines[bad].astype(int).tolist(), problems.reasons[bad].tolist(), strict=True))


def _cut(values: pd.Series, limit: int) -> pd.Series:
    """Free text longer than its column is shortened (only the long ones are touched)."""
    long = _lengths(values) > limit
    if long.any():
        values = values.copy()
        values[long] = values[long].str.slice(0, limit)
    return values


ROW_IDENTITY = ("invoice", "customer_id", "sku", "invoiced_at", "quantity", "unit_price_e4")


def occurrences(valid: pd.DataFrame) -> pd.Series:
    """0 for the first line of each identity (ROW_IDENTITY) in `valid`, 1 for its first repeat, ..."""
    return valid.groupby(list(ROW_IDENTITY), sort=False).cumcount()


def row_hashes(valid: pd.DataFrame, occurrence: pd.Series) -> list[str]:
    """SHA-1 of the normalised line plus its occurrence number among identical lines.

    Identity of a line: what was sold to whom, when, for how much. Description, category and
    country describe the product or customer and are spelled differently across releases of
    the same data, so they are left out: overlapping files still deduplicate.
    The one per-row Python step of an import: hashlib has no vectorised form.
    """
    when = np.datetime_as_string(valid["invoiced_at"].dt.tz_convert(None).to_numpy(), unit="us").tolist()
    sha1 = hashlib.sha1
    return [
        sha1(f"{i}|{c}|{s}|{w}|{q}|{p}|{o}".encode()).hexdigest()
        for i, c, s, w, q, p, o in zip(
            valid["invoice"].tolist(),
            valid["customer_id"].tolist(),
            valid["sku"].tolist(),
            when,
            valid["quantity"].tolist(),
            valid["unit_price_e4"].tolist(),
            occurrence.tolist(),
            strict=True,
        )
    ]


# --- Transactions ----------------------------------------------------------------------

TRANSACTION_COLUMNS = (
    LINE, "invoice", "customer_id", "sku", "description", "category", "country",
    "invoiced_at", "quantity", "unit_price_e4", "amount_e4", "is_return", "occurrence", "row_hash",
)  # fmt: skip


def validate_transactions(
    frame: pd.DataFrame, mapping: Mapping[str, str] | None = None, dayfirst: bool = False
) -> ValidationResult:
    """Raw string table (from read_table) -> normalised transactions and rejected lines.

    Returns are kept: an invoice starting with "C" or a negative quantity is a return,
    stored with a negative quantity (a "C" line with a positive one is negated) and so a
    negative amount.
    """
    columns = resolve_columns(frame.columns, TRANSACTION_REQUIRED, TRANSACTION_OPTIONAL, TRANSACTION_ALIASES, mapping)
    empty = pd.Series("", index=frame.index, dtype=object)
    raw = {
        target: frame[columns[target]].astype(str) if target in columns else empty
        for target in columns.keys() | set(TRANSACTION_OPTIONAL)
    }
    problems = _Problems(frame.index)

    invoice = raw["invoice"]
    _check_required_text(problems, invoice, "invoice", MAX_INVOICE)
    customer = parse_external_id(raw["customer_id"])
    problems.add(customer == "", "no customer id")
    problems.add(_lengths(customer) > MAX_EXTERNAL_ID, f"customer id is longer than {MAX_EXTERNAL_ID} characters")
    sku = raw["sku"]
    problems.add(_lengths(sku) > MAX_SKU, f"sku is longer than {MAX_SKU} characters")

    invoiced_at = parse_timestamps(raw["invoiced_at"], dayfirst)
    _check_timestamp(problems, raw["invoiced_at"], invoiced_at, "invoiced_at", dayfirst)

    quantity_raw = raw["quantity"]
    quantity_num = pd.to_numeric(quantity_raw, errors="coerce").astype("float64")
    problems.add(quantity_raw == "", "quantity is empty")
    problems.add(quantity_num.isna() & (quantity_raw != ""), "quantity {value} is not a number", quantity_raw)
    problems.add(
        quantity_num.notna() & (quantity_num != quantity_num.round()),
        "quantity {value} is not a whole number",
        quantity_raw,
    )
    problems.add(quantity_num.abs() > MAX_QUANTITY, "quantity is too large")

    price_e4 = parse_money_e4(raw["unit_price"])
    _check_money(problems, raw["unit_price"], price_e4, "unit_price")
    problems.add((quantity_num.abs() * price_e4).fillna(0) >= MAX_AMOUNT_E4, "quantity × unit_price is too large")

    ok = ~problems.bad
    errors = _errors(problems, frame[LINE])
    invoice = invoice[ok]
    is_return = invoice.str.startswith("C") | (quantity_num[ok] < 0)
    quantity = quantity_num[ok].astype("int64").abs()
    quantity = quantity.where(~is_return, -quantity)
    price = price_e4[ok].astype("int64")
    valid = pd.DataFrame(
        {
            LINE: frame[LINE][ok].astype("int64"),
            "invoice": invoice,
            "customer_id": customer[ok],
            "sku": sku[ok],
            "description": _cut(raw["description"][ok], MAX_DESCRIPTION),
            "category": _cut(raw["category"][ok], MAX_CATEGORY),
            "country": _cut(raw["country"][ok], MAX_COUNTRY),
            "invoiced_at": invoiced_at[ok],
            "quantity": quantity,
            "unit_price_e4": price,
            "amount_e4": quantity * price,
            "is_return": is_return,
        }
    )
    # Occurrence numbers count within this frame: a caller reading a file in chunks renumbers
    # identities that repeat across chunks (services._TransactionStage does, in the database).
    valid["occurrence"] = occurrences(valid) if len(valid) else pd.Series([], index=valid.index, dtype="int64")
    hashes = row_hashes(valid, valid["occurrence"]) if len(valid) else []
    valid["row_hash"] = pd.Series(hashes, index=valid.index, dtype=object)
    return ValidationResult(valid=valid.reset_index(drop=True), errors=errors, columns=columns)


def customer_summary(valid: pd.DataFrame) -> pd.DataFrame:
    """One row per customer: first_seen (earliest line) and country (last non-empty in the file)."""
    first_seen = valid.groupby("customer_id", sort=True)["invoiced_at"].min()
    with_country = valid[valid["country"] != ""].drop_duplicates("customer_id", keep="last")
    country = with_country.set_index("customer_id")["country"].reindex(first_seen.index).fillna("")
    return pd.DataFrame(
        {"external_id": first_seen.index, "country": country.to_numpy(), "first_seen": first_seen.to_numpy()}
    )


def product_summary(valid: pd.DataFrame) -> pd.DataFrame:
    """One row per sku: the last non-empty description and category seen in the file."""
    rows = valid[valid["sku"] != ""]
    skus = pd.Index(sorted(rows["sku"].unique()), name="sku")
    out = pd.DataFrame({"sku": skus})
    for column in ("description", "category"):
        filled = rows[rows[column] != ""].drop_duplicates("sku", keep="last").set_index("sku")[column]
        out[column] = filled.reindex(skus).fillna("").to_numpy()
    return out


# --- Campaign history ------------------------------------------------------------------


def validate_campaigns(frame: pd.DataFrame, mapping: Mapping[str, str] | None = None) -> ValidationResult:
    """Raw string table -> campaign outcomes (one per customer and campaign) and rejected lines."""
    columns = resolve_columns(frame.columns, CAMPAIGN_REQUIRED, CAMPAIGN_OPTIONAL, CAMPAIGN_ALIASES, mapping)
    raw = {target: frame[source].astype(str) for target, source in columns.items()}
    problems = _Problems(frame.index)

    customer = parse_external_id(raw["customer_id"])
    problems.add(customer == "", "no customer id")
    problems.add(_lengths(customer) > MAX_EXTERNAL_ID, f"customer id is longer than {MAX_EXTERNAL_ID} characters")
    campaign = raw["campaign"]
    _check_required_text(problems, campaign, "campaign", MAX_CAMPAIGN)
    flags = {}
    for name in ("treated", "converted"):
        flags[name] = parse_bool(raw[name])
        problems.add(raw[name] == "", f"{name} is empty")
        problems.add(flags[name].isna() & (raw[name] != ""), f"{name} {{value}} is not 0/1/true/false", raw[name])
    sent_at = parse_timestamps(raw["sent_at"])
    _check_timestamp(problems, raw["sent_at"], sent_at, "sent_at", dayfirst=False)
    revenue_raw = raw.get("revenue", pd.Series("0", index=frame.index, dtype=object)).replace("", "0")
    revenue_e4 = parse_money_e4(revenue_raw)
    problems.add(revenue_e4.isna(), "revenue {value} is not a number", revenue_raw)
    problems.add(revenue_e4.abs() >= MAX_AMOUNT_E4, "revenue is too large")

    # One record per customer and campaign: a repeat is an error, pointing at the first one.
    pair = customer + "\x1f" + campaign
    candidates = ~problems.bad
    first_line = frame[LINE][candidates].groupby(pair[candidates]).transform("min")
    first_line = first_line.reindex(frame.index)
    repeat = candidates & (frame[LINE] > first_line)  # NaN (not a candidate) compares False
    problems.add(
        repeat,
        "customer already has a record for this campaign on line " + first_line.fillna(0).astype(int).astype(str),
    )

    ok = ~problems.bad
    valid = pd.DataFrame(
        {
            LINE: frame[LINE][ok].astype("int64"),
            "customer_id": customer[ok],
            "campaign": campaign[ok],
            "treated": flags["treated"][ok].astype(bool),
            "converted": flags["converted"][ok].astype(bool),
            "revenue_e4": revenue_e4[ok].astype("int64"),
            "sent_at": sent_at[ok],
        }
    ).reset_index(drop=True)
    return ValidationResult(valid=valid, errors=_errors(problems, frame[LINE]), columns=columns)
