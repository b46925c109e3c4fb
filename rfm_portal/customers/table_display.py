"""How the customer table's cells look on the page and in the CSV (one place, so both show the same)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from rfm_portal.core.csv_export import SafeCSVWriter

from .table import TableColumn, without_jit


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


def cell(row: Any, column: TableColumn) -> dict[str, Any]:
    """{text, sub, title, css, sort} for one cell; ``text`` is what the marketer reads."""
    value = getattr(row, column.key, None)
    if value is None:
        return {"text": "–", "sub": "", "title": "not scored by the active model" if column.kind != "date" else ""}
    if column.kind == "cluster":
        return {"text": str(value), "sub": getattr(row, "cluster_name", "") or "", "title": ""}
    if column.kind == "interval":
        low, high = getattr(row, "clv_p10", None), getattr(row, "clv_p90", None)
        sub = f"{low:,.0f}–{high:,.0f}" if low is not None and high is not None else ""
        return {"text": f"{value:,.0f}", "sub": sub, "title": f"P50 {value:,.2f}; 80 % range {sub}"}
    if column.kind == "percent":
        return {"text": _pct(value), "sub": "", "title": f"{value:.4f}"}
    if column.kind == "risk":
        band = getattr(row, "risk_band", "") or ""
        return {"text": _pct(value), "sub": band, "title": f"P(churn) = {value:.4f}", "css": f"band-{band}"}
    if column.kind == "delta":
        points = value * 100
        arrow = "▲" if points > 0.5 else ("▼" if points < -0.5 else "→")
        rising = column.highlight_above is not None and value >= column.highlight_above
        return {"text": f"{arrow} {points:+.0f} pts", "sub": "rising" if rising else "",
                "title": f"{value:+.4f} since the previous model", "css": "rising" if rising else ""}
    if column.kind == "choice":
        return {"text": (column.choices or {}).get(value, value), "sub": "", "title": ""}
    if column.kind == "int":
        return {"text": f"{value:,}", "sub": "", "title": ""}
    if column.kind == "money":
        return {"text": f"{value:,.2f}", "sub": "", "title": ""}
    if column.kind == "date":
        return {"text": value.strftime("%-d %b %Y"), "sub": "", "title": value.isoformat()}
    return {"text": str(value), "sub": "", "title": ""}


NUMERIC_KINDS = ("int", "money", "interval", "percent", "risk", "delta")


def _styled(row: Any, column: TableColumn) -> dict[str, Any]:
    c = cell(row, column)
    c["css"] = " ".join(filter(None, [c.get("css", ""), "num" if column.kind in NUMERIC_KINDS else ""]))
    return c


def table_rows(rows: Iterable[Any], columns: list[TableColumn]) -> list[dict[str, Any]]:
    return [{"customer": row, "cells": [_styled(row, column) for column in columns]} for row in rows]


def spec_pairs(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """The filter spec as form fields (lists repeat the key; flags are "1")."""
    pairs: list[tuple[str, str]] = []
    for key, value in spec.items():
        if isinstance(value, list):
            pairs += [(key, str(v)) for v in value]
        else:
            pairs.append((key, "1" if value is True else f"{value:g}" if isinstance(value, float) else str(value)))
    return pairs


def _csv_value(value: Any, kind: str) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if kind in ("money", "interval"):
        return f"{value:.2f}"
    if kind in ("percent", "risk", "delta"):
        return f"{value:.4f}"
    if kind == "date":
        return value.date().isoformat()
    return value


def csv_header(columns: list[TableColumn]) -> list[str]:
    header = ["customer_id", "country"]
    for column in columns:
        header.append(column.key)
        header += [key for key, _ in column.extra]
    return header


def table_csv_lines(rows: Any, columns: list[TableColumn]) -> Iterator[str]:
    """The table as CSV lines (formula-safe), raw values at sensible precision, one column per value."""
    writer = SafeCSVWriter()
    yield writer.writerow(csv_header(columns))
    with without_jit():
        for row in rows.iterator(chunk_size=2000):
            line = [row.external_id, row.country]
            for column in columns:
                line.append(_csv_value(getattr(row, column.key, None), column.kind))
                line += [_csv_value(getattr(row, key, None), column.kind) for key, _ in column.extra]
            yield writer.writerow(line)
