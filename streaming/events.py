"""What an event is, and the one validation every way in uses (webhook, simulator, consumer).

Pure Python (no Django): ``parse_event`` turns a decoded JSON object into an :class:`Event` or
raises :class:`EventError` carrying field errors shaped like DRF's (``{"lines": {"0":
{"quantity": ["…"]}}}``). The webhook answers those errors; the consumer dead-letters an entry
whose event fails them, with the errors as the reason.

An event (purchase or return of one or more lines)::

    {"event_id": "pos-42-000017", "type": "purchase", "customer_id": "10001",
     "occurred_at": "2025-01-03T10:15:00Z", "country": "United Kingdom",     # country optional
     "invoice": "S000017",                                                 # optional
     "lines": [{"sku": "HK-001", "description": "Enamel Mug", "category": "Home & Kitchen",
                "quantity": 2, "unit_price": "6.49"}]}

Quantities are positive in both kinds; a return is stored negative (as the importer stores
cancellations). Unknown keys, NaN/inf, non-integer quantities, more than four decimals, numbers
beyond the database columns (also an event's total) and times outside [1990-01-01, now + 1 day] are rejected.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

KINDS = ("purchase", "return")
EVENT_KEYS = frozenset({"event_id", "type", "customer_id", "occurred_at", "country", "invoice", "lines"})
LINE_KEYS = frozenset({"sku", "description", "category", "quantity", "unit_price"})
EVENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")
MAX_LINES = 100
MAX_QUANTITY = 100_000
MAX_UNIT_PRICE = Decimal("1000000")
MAX_TOTAL = Decimal(10**10)  # an event's and a row's amount are numeric(14, 4)
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)
MAX_INVOICE, MAX_EXTERNAL_ID, MAX_SKU, MAX_DESCRIPTION, MAX_CATEGORY, MAX_COUNTRY = 32, 64, 64, 255, 64, 64

Errors = dict[str, Any]


class EventError(ValueError):
    """An invalid event; ``errors`` maps each bad field to its messages."""

    def __init__(self, errors: Errors) -> None:
        super().__init__(json.dumps(errors, ensure_ascii=False, sort_keys=True))
        self.errors = errors


@dataclass(frozen=True)
class Line:
    sku: str
    description: str
    category: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True)
class Event:
    event_id: str
    kind: str
    customer_id: str
    occurred_at: datetime
    country: str
    invoice: str
    lines: tuple[Line, ...]

    @property
    def amount(self) -> Decimal:
        """Signed value: negative for a return."""
        total = sum((line.unit_price * line.quantity for line in self.lines), Decimal(0))
        return -total if self.kind == "return" else total

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id, "type": self.kind, "customer_id": self.customer_id,
            "occurred_at": self.occurred_at.isoformat().replace("+00:00", "Z"), "country": self.country,
            "invoice": self.invoice,
            "lines": [{"sku": ln.sku, "description": ln.description, "category": ln.category,
                       "quantity": ln.quantity, "unit_price": str(ln.unit_price)} for ln in self.lines],
        }


def default_invoice(event_id: str, kind: str) -> str:
    """Invoice number of an event that names none: a return's starts with "C" (the importer's rule)."""
    digest = hashlib.sha1(event_id.encode()).hexdigest()[:20]
    return ("C" if kind == "return" else "S") + "EV" + digest


def _text(errors: Errors, data: dict, name: str, limit: int, required: bool) -> str:
    if name not in data or data[name] is None:
        if required:
            errors[name] = ["This field is required."]
        return ""
    value = data[name]
    if not isinstance(value, str):
        errors[name] = ["Must be a string."]
        return ""
    value = value.strip()
    if "\x00" in value:
        errors[name] = ["NUL characters are not allowed."]
    elif required and not value:
        errors[name] = ["This field may not be blank."]
    elif len(value) > limit:
        errors[name] = [f"At most {limit} characters."]
    return value


def _quantity(errors: Errors, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        errors["quantity"] = ["Must be a whole number."]
        return 0
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        errors["quantity"] = ["Must be a whole number."]
        return 0
    if not number.is_finite() or number != number.to_integral_value():
        errors["quantity"] = ["Must be a finite whole number."]
        return 0
    if not 1 <= number <= MAX_QUANTITY:
        errors["quantity"] = [f"Must be between 1 and {MAX_QUANTITY:,}."]
        return 0
    return int(number)


def _price(errors: Errors, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        errors["unit_price"] = ["Must be a number."]
        return Decimal(0)
    if isinstance(value, float) and not math.isfinite(value):
        errors["unit_price"] = ["Must be finite."]
        return Decimal(0)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        errors["unit_price"] = ["Must be a number."]
        return Decimal(0)
    if not number.is_finite():
        errors["unit_price"] = ["Must be finite."]
    elif not Decimal(0) <= number <= MAX_UNIT_PRICE:
        errors["unit_price"] = [f"Must be between 0 and {MAX_UNIT_PRICE:,}."]
    elif number != number.quantize(Decimal("0.0001")):
        errors["unit_price"] = ["At most 4 decimal places."]
    else:
        return number.quantize(Decimal("0.0001"))
    return Decimal(0)


def _when(errors: Errors, value: Any, now: datetime) -> datetime:
    if not isinstance(value, str):
        errors["occurred_at"] = ["Must be an ISO 8601 date-time string." if value is not None
                                 else "This field is required."]
        return EARLIEST
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        errors["occurred_at"] = ["Not an ISO 8601 date-time (e.g. 2025-01-03T10:15:00Z)."]
        return EARLIEST
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if not EARLIEST <= parsed <= now + FUTURE_SLACK:
        errors["occurred_at"] = [f"Must be between {EARLIEST.date()} and one day from now."]
    return parsed


def parse_event(data: Any, now: datetime | None = None) -> Event:
    """Validate one decoded JSON event; raise :class:`EventError` with every field error found."""
    if not isinstance(data, dict):
        raise EventError({"non_field_errors": ["An event must be a JSON object."]})
    now = now or datetime.now(UTC)
    errors: Errors = {}
    unknown = sorted(set(map(str, data)) - EVENT_KEYS)
    for key in unknown:
        errors[key] = ["Unknown field."]
    event_id = _text(errors, data, "event_id", 64, required=True)
    if "event_id" not in errors and not EVENT_ID_RE.match(event_id):
        errors["event_id"] = ["Letters, digits and . _ : - only (1–64 characters, not starting with a symbol)."]
    kind = data.get("type")
    if kind not in KINDS:
        errors["type"] = [f"Must be one of: {', '.join(KINDS)}." if kind is not None else "This field is required."]
    customer_id = _text(errors, data, "customer_id", MAX_EXTERNAL_ID, required=True)
    occurred_at = _when(errors, data.get("occurred_at"), now)
    country = _text(errors, data, "country", MAX_COUNTRY, required=False)
    invoice = _text(errors, data, "invoice", MAX_INVOICE, required=False)
    lines_raw = data.get("lines")
    lines: list[Line] = []
    if not isinstance(lines_raw, list) or not lines_raw:
        errors["lines"] = ["A non-empty list of lines is required."]
    elif len(lines_raw) > MAX_LINES:
        errors["lines"] = [f"At most {MAX_LINES} lines per event."]
    else:
        line_errors: Errors = {}
        for i, raw in enumerate(lines_raw):
            errs: Errors = {}
            if not isinstance(raw, dict):
                line_errors[str(i)] = {"non_field_errors": ["A line must be an object."]}
                continue
            for key in sorted(set(map(str, raw)) - LINE_KEYS):
                errs[key] = ["Unknown field."]
            sku = _text(errs, raw, "sku", MAX_SKU, required=True)
            description = _text(errs, raw, "description", MAX_DESCRIPTION, required=False)
            category = _text(errs, raw, "category", MAX_CATEGORY, required=False)
            quantity = _quantity(errs, raw.get("quantity")) if "quantity" in raw else 0
            if "quantity" not in raw:
                errs["quantity"] = ["This field is required."]
            price = _price(errs, raw.get("unit_price")) if "unit_price" in raw else Decimal(0)
            if "unit_price" not in raw:
                errs["unit_price"] = ["This field is required."]
            if errs:
                line_errors[str(i)] = errs
            else:
                lines.append(Line(sku, description, category, quantity, price))
        if line_errors:
            errors["lines"] = line_errors
        elif sum((ln.unit_price * ln.quantity for ln in lines), Decimal(0)) >= MAX_TOTAL:
            errors["lines"] = [f"The event's total (quantity × unit_price over its lines) must be below "
                               f"{MAX_TOTAL:,}."]
    if kind == "return" and invoice and not invoice.startswith("C"):
        errors.setdefault("invoice", []).append('A return\'s invoice starts with "C".')
    if kind == "purchase" and invoice.startswith("C"):
        errors.setdefault("invoice", []).append('"C" invoices are returns; use type "return".')
    if errors:
        raise EventError(errors)
    return Event(
        event_id=event_id, kind=str(kind), customer_id=customer_id, occurred_at=occurred_at, country=country,
        invoice=invoice or default_invoice(event_id, str(kind)), lines=tuple(lines),
    )


def encode(event: Event) -> str:
    return json.dumps(event.to_json(), separators=(",", ":"), ensure_ascii=False)


def decode(raw: str | bytes) -> Event:
    """A stream entry's payload back into an event (malformed JSON is an EventError too)."""
    try:
        data = json.loads(raw)
    except (TypeError, ValueError) as error:
        raise EventError({"non_field_errors": [f"Not JSON: {error}"]}) from None
    return parse_event(data)
