"""Shared REST pieces: strict input fields, an exception handler that always answers JSON, and the error
serializers/responses every endpoint documents.

Strict means: a number field takes a JSON number (not a string, not ``true``/``false``), finite and within bounds;
a whole-number field takes an integral JSON number within bounds (never a silently wrapped 64-bit value); a date
field takes an RFC 3339 date-time within the years pandas and PostgreSQL both handle; a text field takes no NUL
characters and no unpaired surrogates (PostgreSQL cannot store them). The OpenAPI schema states each bound, so
schema-valid input is accepted and anything else is a 400 with a field error.

The JSON parser (depth limit) is in rfm_portal.core.parsers and the OpenAPI helper class in rfm_portal.core.schema,
apart from this module: DRF's settings import the parser while rest_framework.views is still loading.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from typing import Any

from django import db
from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.http import UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from rfm_portal.core.parsers import PayloadTooLarge

logger = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 2

# Earliest and latest instants accepted anywhere in the API: inside pandas' nanosecond range (1677-2262) and
# far from both ends, so "+ horizon" arithmetic cannot overflow.
MIN_DATETIME = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
MAX_DATETIME = dt.datetime(2199, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
# RFC 3339 date-time (what OpenAPI's format: date-time means), years 1900-2199.
DATETIME_PATTERN = (
    r"^(19|20|21)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
_DATETIME_RE = re.compile(DATETIME_PATTERN)
NO_NUL_PATTERN = r"^[^\u0000]*$"
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


# --- input fields --------------------------------------------------------------------------------------


def _is_json_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class StrictFloatField(serializers.FloatField):
    """A finite JSON number within [min_value, max_value] (both required: no unbounded inputs)."""

    default_error_messages = {
        "invalid": "A number is required.",
        "not_finite": "A finite number is required.",
    }

    def __init__(self, *, min_value: float, max_value: float, **kwargs: Any) -> None:
        super().__init__(min_value=min_value, max_value=max_value, **kwargs)

    def to_internal_value(self, data: Any) -> float:
        if not _is_json_number(data):
            self.fail("invalid")
        try:
            number = float(data)
        except OverflowError:  # an int beyond float range
            self.fail("max_value", max_value=self.max_value)
        if not math.isfinite(number):
            self.fail("not_finite")
        return number


class StrictIntegerField(serializers.IntegerField):
    """A whole JSON number within [min_value, max_value] (both required): 1e19 is a 400, never a wrapped int64."""

    default_error_messages = {"invalid": "A whole number is required."}

    def __init__(self, *, min_value: int, max_value: int, **kwargs: Any) -> None:
        super().__init__(min_value=min_value, max_value=max_value, **kwargs)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, float) and math.isfinite(data) and data == int(data):
            data = int(data)
        if not isinstance(data, int) or isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictBooleanField(serializers.BooleanField):
    """``true`` or ``false`` only (not 0/1, not "yes")."""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


@extend_schema_field({"type": "string", "minLength": 1, "pattern": NO_NUL_PATTERN})
class StrictCharField(serializers.CharField):
    """A JSON string, not trimmed, no NUL and no unpaired surrogate; blank only with allow_blank."""

    default_error_messages = {
        "invalid": "A string is required.",
        "unencodable": "Unpaired surrogate characters are not allowed.",
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        if _SURROGATE_RE.search(data):
            self.fail("unencodable")
        return super().to_internal_value(data)


@extend_schema_field({"type": "string", "format": "date-time", "pattern": DATETIME_PATTERN})
class BoundedDateTimeField(serializers.DateTimeField):
    """An RFC 3339 date-time with an offset, years 1900-2199; returned as an aware UTC datetime."""

    default_error_messages = {
        "invalid": "An RFC 3339 date-time with a time zone is required, e.g. 2024-07-01T00:00:00Z.",
        "out_of_range": "Must be between 1900-01-01 and 2199-12-31.",
    }

    def to_internal_value(self, value: Any) -> dt.datetime:
        if not isinstance(value, str):
            self.fail("invalid")
        if not _DATETIME_RE.match(value):
            if re.match(r"^[0-9]{4,}-", value) and not re.match(r"^(19|20|21)[0-9]{2}-", value):
                self.fail("out_of_range")
            self.fail("invalid")
        try:
            parsed = dt.datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
        except ValueError:  # e.g. 2023-02-30
            self.fail("invalid")
        parsed = parsed.astimezone(dt.UTC)
        if not (MIN_DATETIME <= parsed <= MAX_DATETIME):
            self.fail("out_of_range")
        return parsed


class StrictSerializer(serializers.Serializer):
    """A request body serializer that rejects keys it does not define (a typo is a 400, not silently ignored)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["Unknown field."] for key in unknown[:20]})
        return super().to_internal_value(data)


def text_schema(max_length: int, min_length: int = 1) -> dict[str, Any]:
    """OpenAPI of a StrictCharField."""
    return {"type": "string", "minLength": min_length, "maxLength": max_length, "pattern": NO_NUL_PATTERN}


DATETIME_SCHEMA: dict[str, Any] = {"type": "string", "format": "date-time", "pattern": DATETIME_PATTERN}


@extend_schema_field({"type": "string", "format": "binary"})
class UploadedFileField(serializers.FileField):
    """A file part of a multipart body (documented as binary, not as the URI drf-spectacular assumes)."""


def check_finite_output(values: Any, what: str) -> None:
    """Raise :class:`UnscorableInput` if any number in ``values`` (an array-like) is NaN or infinite."""
    import numpy as np

    arr = np.asarray(values, dtype=float)
    if arr.size and not np.isfinite(arr).all():
        raise UnscorableInput(f"The model cannot score {what}: the values are too extreme for its formulas.")


class UnscorableInput(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "The input is valid but the model cannot produce a finite score for it."
    default_code = "unscorable"


# --- errors --------------------------------------------------------------------------------------------


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's handler, extended so that no exception leaves an API view as HTML or an empty body."""
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0
        exc = PayloadTooLarge(f"The request body is larger than {limit:,} bytes.")
    elif isinstance(exc, MultiPartParserError | UnreadablePostError | TooManyFieldsSent):
        exc = exceptions.ParseError(f"Malformed request body: {exc}")
    elif isinstance(exc, BadRequest | SuspiciousOperation):
        exc = exceptions.ParseError(str(exc) or "Bad request.")
    elif isinstance(exc, RecursionError):
        exc = exceptions.ParseError("The request is nested too deeply.")
    response = drf_exception_handler(exc, context)
    if response is not None:
        return response
    set_rollback()
    view = type(context["view"]).__name__ if context.get("view") else "an API view"
    if isinstance(exc, db.OperationalError | db.InterfaceError):
        # The database is unreachable or out of connections: the client may retry, so not a 500.
        logger.warning("database unavailable in %s: %s", view, exc)
        return Response({"detail": "The database is busy or unreachable; retry shortly."},
                        status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    logger.error("unhandled error in %s", view, exc_info=exc)
    return Response({"detail": "Internal error; it has been logged."}, status=status.HTTP_500_INTERNAL_SERVER_ERROR)


class ErrorSerializer(serializers.Serializer):
    """Every non-validation error: one message."""

    detail = serializers.CharField()


# A validation error maps each field (or non_field_errors) to its messages; nested fields nest the same way.
VALIDATION_ERROR_SCHEMA = {
    "type": "object",
    "description": "Field name → list of messages (nested objects/rows are keyed the same way); "
    "or `detail` for a body that cannot be parsed.",
    "additionalProperties": True,
}


def error_responses(*codes: int, extra: dict[int, str] | None = None) -> dict[int, OpenApiResponse]:
    """The documented error answers of an endpoint: 401, 403 (authenticated endpoints) and 503 (database
    unavailable, see :func:`exception_handler`) always, plus ``codes``."""
    text = {
        400: "Invalid input: field errors, or the body could not be parsed.",
        401: "No or unknown credentials (`Authorization: Api-Key <key>` or a portal session).",
        403: "Authenticated but not allowed (role).",
        404: "Not found.",
        405: "Method not allowed.",
        409: "Conflict.",
        413: "Request body too large.",
        415: "Unsupported media type.",
        422: "Valid input the model cannot score.",
        503: "Service unavailable (the database is busy or unreachable): retry after Retry-After seconds.",
    } | (extra or {})
    out: dict[int, OpenApiResponse] = {}
    for code in sorted({401, 403, 503, *codes}):
        if code == 400:
            out[code] = OpenApiResponse(VALIDATION_ERROR_SCHEMA, description=text[code])
        else:
            out[code] = OpenApiResponse(ErrorSerializer, description=text[code])
    return out
