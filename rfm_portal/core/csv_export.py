"""CSV exports that are safe to open in a spreadsheet: every export view writes through :class:`SafeCSVWriter`.

Formula injection: a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a
formula by Excel, LibreOffice and Google Sheets (``=cmd|' /C calc'!A0``, ``@SUM(1+1)``). Imported values (customer
ids, countries, product descriptions) come from outside, so they must not reach an export raw.

The rule:
- numbers (int, float, Decimal; not bool) are written as they are, so -12.5 stays a number;
- a string that is entirely a plain decimal number (``-12.50``, ``+3``, ``1e-5``) is also left alone: a spreadsheet
  reads it as that number and nothing else, so a formatted negative amount stays a number;
- any other string starting with one of those characters gets a leading apostrophe (``'=1+2``), which spreadsheets
  show as the literal text and do not evaluate. Nothing else is changed.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """One cell, neutralised if it is a string a spreadsheet would evaluate as a formula."""
    if isinstance(value, str):
        if value.startswith(FORMULA_PREFIXES) and not _PLAIN_NUMBER.fullmatch(value):
            return "'" + value
        return value
    if isinstance(value, bool) or value is None or isinstance(value, int | float | Decimal):
        return value
    return safe_cell(str(value))  # dates, lazy strings, enums: judged by their text


class _Echo:
    def write(self, value: str) -> str:
        return value


class SafeCSVWriter:
    """``csv.writer`` for streaming responses: ``writerow`` returns the neutralised, encoded line."""

    def __init__(self) -> None:
        self._writer = csv.writer(_Echo())

    def writerow(self, row: Iterable[Any]) -> str:
        return self._writer.writerow([safe_cell(v) for v in row])

