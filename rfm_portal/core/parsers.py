"""The API's JSON parser: a depth limit and no NaN/Infinity literals (REST_FRAMEWORK DEFAULT_PARSER_CLASSES).

Imports nothing of rest_framework.views: DRF's settings load this module while the views module is loading.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser

MAX_JSON_DEPTH = 32


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


class DepthLimitedJSONParser(JSONParser):
    """JSON of at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes (413 beyond) and MAX_JSON_DEPTH nested arrays/objects;
    NaN/Infinity literals rejected.

    The depth is checked on the raw text before parsing, so a 5,000-deep body is a 400, not a RecursionError.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", "utf-8")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1 if limit is not None else -1) if stream is not None else b""
        if limit is not None and len(raw) > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit:,} bytes.")
        try:
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise exceptions.ParseError(f"JSON parse error - the body is not valid {encoding}.") from exc
        depth = json_depth(text)
        if depth > MAX_JSON_DEPTH:
            raise exceptions.ParseError(f"JSON parse error - nested {depth} deep; at most {MAX_JSON_DEPTH} allowed.")
        try:
            return json.loads(text, parse_constant=_reject_constant)
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def json_depth(text: str) -> int:
    """Maximum nesting of [ and { outside strings (a linear scan; malformed text is left to the parser)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


