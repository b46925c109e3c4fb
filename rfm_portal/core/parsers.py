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
    """JSON of at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes (413 beyond) and MAX_JSON_DEPTH nested arrays/objects
    (400 beyond, never a RecursionError); NaN/Infinity literals rejected.

    Cheap on the scoring hot path: a body with at most MAX_JSON_DEPTH brackets cannot be too deep, so only larger
    bodies are walked (iteratively) after parsing.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", "utf-8")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1 if limit is not None else -1) if stream is not None else b""
        if limit is not None and len(raw) > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit:,} bytes.")
        return parse_json_bytes(raw, encoding)


def parse_json_bytes(raw: bytes, encoding: str = "utf-8") -> Any:
    """The body's JSON (depth-limited, no NaN/Infinity) or exceptions.ParseError; the size check is the caller's.

    Also the scoring fast path's parser (rfm_portal.serving.fastpath), so both paths accept the same bodies."""
    try:
        text = raw.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        raise exceptions.ParseError(f"JSON parse error - the body is not valid {encoding}.") from exc
    too_deep = f"JSON parse error - nested more than {MAX_JSON_DEPTH} deep."
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise exceptions.ParseError(too_deep) from None
    except ValueError as exc:
        raise exceptions.ParseError(f"JSON parse error - {exc}") from exc
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and json_depth(data) > MAX_JSON_DEPTH:
        raise exceptions.ParseError(too_deep)
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of parsed JSON (a scalar is 0, ``[]`` is 1), counted level by level (no recursion); stops at
    limit + 1. A 10,000-record payload takes about 10 ms."""
    level = [value] if type(value) is dict or type(value) is list else []
    depth = 0
    while level and depth <= limit:
        depth += 1
        below: list[Any] = []
        for node in level:
            below += [c for c in (node.values() if type(node) is dict else node) if type(c) is dict or type(c) is list]
        level = below
    return depth
