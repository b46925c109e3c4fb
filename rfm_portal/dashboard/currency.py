"""The portal's one currency (settings.CURRENCY): its symbol and how money is written everywhere.

Pages use the `money` template filter, CSV exports `money_column` ("net_revenue_gbp"), the API docs
state the currency once. The data carry no currency of their own: imports are assumed to be in it.
"""

from __future__ import annotations

import math

from django.conf import settings

SYMBOLS = {
    "GBP": "£", "EUR": "€", "USD": "$", "JPY": "¥", "CHF": "CHF ", "SEK": "kr ", "NOK": "kr ", "DKK": "kr ",
    "AUD": "A$", "CAD": "C$", "INR": "₹", "CNY": "¥", "PLN": "zł ",
}  # fmt: skip


def currency_code() -> str:
    return str(getattr(settings, "CURRENCY", "GBP")).upper()


def currency_symbol() -> str:
    explicit = getattr(settings, "CURRENCY_SYMBOL", "")
    if explicit:
        return explicit
    code = currency_code()
    return SYMBOLS.get(code, f"{code} ")


def format_money(value: object, digits: int | None = None) -> str:
    """1234.5 -> '£1,235'; 12.345 -> '£12.35'; -29650.1 -> '−£29,650'; None -> '–'.

    Without `digits`: whole units from 100 up, pence below (what a marketer reads at a glance).
    """
    if value is None or value == "":
        return "–"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return "–"
    if digits is None:
        digits = 0 if abs(number) >= 100 else 2
    sign = "−" if number < 0 and round(abs(number), digits) != 0 else ""
    return f"{sign}{currency_symbol()}{abs(number):,.{digits}f}"


def money_column(name: str) -> str:
    """CSV header for an amount: 'clv' -> 'clv_gbp'."""
    return f"{name}_{currency_code().lower()}"


def money_label(label: str) -> str:
    """Axis/column title for an amount: 'Net revenue' -> 'Net revenue (£)'."""
    return f"{label} ({currency_symbol().strip()})"
