"""POST /api/events: events from CRMs and shops (API key), appended to the event stream.

Rule for batches: **all or nothing.** A batch with any invalid event is answered 400 with the
field errors of each bad event (keyed by its position) and nothing is appended; a valid batch is
appended in one MULTI/EXEC, so a crash cannot leave half of it in the stream. Resending a batch
is safe: events are applied once per event id.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_not_required
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from rfm_portal.core.api import NO_NUL_PATTERN, error_responses
from rfm_portal.core.schema import RequiredBodySchema

from .backends import add_events, get_stream
from .events import (
    EARLIEST,
    EVENT_ID_RE,
    KINDS,
    MAX_CATEGORY,
    MAX_COUNTRY,
    MAX_DESCRIPTION,
    MAX_EXTERNAL_ID,
    MAX_INVOICE,
    MAX_LINES,
    MAX_QUANTITY,
    MAX_SKU,
    MAX_UNIT_PRICE,
    Event,
    EventError,
    parse_event,
)

MAX_BATCH = 1_000


def parse_body(data: Any) -> tuple[list[Event], dict[str, Any]]:
    """One event object, a list of events, or {"events": [...]} → (events, field errors)."""
    if isinstance(data, dict) and "events" in data:
        extra = sorted(set(data) - {"events"})
        if extra:
            return [], {key: ["Unknown field."] for key in extra}
        items = data["events"]
        if not isinstance(items, list):
            return [], {"events": ["Must be a list of events."]}
    elif isinstance(data, list):
        items = data
    elif isinstance(data, dict):
        try:
            return [parse_event(data)], {}
        except EventError as error:
            return [], error.errors
    else:
        return [], {"non_field_errors": ["Send one event object, a list of events or {\"events\": [...]}."]}
    if not items:
        return [], {"events": ["At least one event is required."]}
    if len(items) > MAX_BATCH:
        return [], {"events": [f"At most {MAX_BATCH:,} events per request, got {len(items):,}."]}
    events: list[Event] = []
    errors: dict[str, Any] = {}
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        try:
            event = parse_event(item)
        except EventError as error:
            errors[str(i)] = error.errors
            continue
        if event.event_id in seen:
            errors[str(i)] = {"event_id": [f"Repeats the event_id of event {seen[event.event_id]} in this batch."]}
            continue
        seen[event.event_id] = i
        events.append(event)
    return events, ({"events": errors} if errors else {})


def _request_schema() -> dict[str, Any]:
    """The body as OpenAPI states it. Not expressible here (validated, answered 400 with field errors):
    occurred_at no later than one day from now, a return's invoice starts with "C" (a purchase's does not),
    unit_price with at most 4 decimals, distinct event_id values within one batch."""
    text = {"type": "string", "minLength": 1, "pattern": r"^[^\u0000]*\S[^\u0000]*$"}
    optional = {"type": "string", "pattern": NO_NUL_PATTERN, "nullable": True}  # null = not given
    line = {"type": "object", "additionalProperties": False, "required": ["sku", "quantity", "unit_price"],
            "properties": {
                "sku": {**text, "maxLength": MAX_SKU}, "description": {**optional, "maxLength": MAX_DESCRIPTION},
                "category": {**optional, "maxLength": MAX_CATEGORY},
                "quantity": {"type": "integer", "minimum": 1, "maximum": MAX_QUANTITY},
                "unit_price": {"type": "number", "minimum": 0, "maximum": float(MAX_UNIT_PRICE)}}}
    event = {"type": "object", "additionalProperties": False,
             "required": ["event_id", "type", "customer_id", "occurred_at", "lines"],
             "properties": {
                 "event_id": {"type": "string", "pattern": EVENT_ID_RE.pattern},
                 "type": {"type": "string", "enum": list(KINDS)},
                 "customer_id": {**text, "maxLength": MAX_EXTERNAL_ID},
                 "occurred_at": {"type": "string", "format": "date-time",
                                 "description": f"From {EARLIEST.date()} to one day from now."},
                 "country": {**optional, "maxLength": MAX_COUNTRY},
                 "invoice": {**optional, "maxLength": MAX_INVOICE},
                 "lines": {"type": "array", "items": line, "minItems": 1, "maxItems": MAX_LINES}}}
    batch = {"type": "array", "items": event, "minItems": 1, "maxItems": MAX_BATCH}
    return {"oneOf": [event, batch, {"type": "object", "additionalProperties": False, "required": ["events"],
                                     "properties": {"events": batch}}]}


class EventsAcceptedSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    event_ids = serializers.ListField(child=serializers.CharField())
    stream_ids = serializers.ListField(child=serializers.CharField(), help_text="Redis Stream entry ids.")


class EventsApi(APIView):
    schema = RequiredBodySchema()

    @extend_schema(
        operation_id="post_events",
        summary="Append purchase/return events to the event stream",
        description=(
            "One event object, a list, or `{\"events\": [...]}` (at most 1,000). Each event: `event_id` (yours; "
            "an event is applied once per id), `type` (purchase or return), `customer_id`, `occurred_at` (ISO "
            "8601), optional `country`, `invoice`, and `lines` [{sku, description?, category?, quantity ≥ 1, "
            "unit_price ≥ 0}]. All or nothing: a batch with any invalid event gets 400 with the field errors "
            "of each bad event under its position, and nothing is appended. 202: queued for the consumers."
        ),
        request={"application/json": _request_schema()},
        responses={202: EventsAcceptedSerializer, **error_responses(
            400, 413, 415, 503, extra={503: "The event stream (Redis) or the database is unavailable: retry after "
                                            "Retry-After seconds; nothing was appended."})},
        examples=[OpenApiExample("purchase", request_only=True, value={
            "event_id": "shop-1-000017", "type": "purchase", "customer_id": "10001",
            "occurred_at": "2025-01-03T10:15:00Z",
            "lines": [{"sku": "HK-001", "quantity": 2, "unit_price": "6.49"}]})],
        tags=["streaming"],
    )
    def post(self, request: Request) -> Response:
        events, errors = parse_body(request.data)
        if errors:
            return Response(errors, status=status.HTTP_400_BAD_REQUEST)
        stream_ids = add_events(get_stream(), events)
        body = {"accepted": len(events), "event_ids": [ev.event_id for ev in events], "stream_ids": stream_ids}
        return Response(EventsAcceptedSerializer(body).data, status=status.HTTP_202_ACCEPTED)


# DRF authenticates (API key or session); the login-redirect middleware must not.
events_api = login_not_required(EventsApi.as_view())
