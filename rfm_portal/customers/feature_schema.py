"""OpenAPI of the scoring endpoints that take customers by id or as feature records (/predict_churn,
/uplift_score): one definition, built from the one feature definition, so the documented bounds are the
validated ones."""

from __future__ import annotations

from typing import Any

from rfm_portal.core.api import DATETIME_SCHEMA, text_schema
from rfm_portal.customers.features import FEATURE_COLUMNS, FEATURE_DOCS, payload_bounds

MAX_ID = 64  # Customer.external_id


def feature_record_schema(with_p_alive: bool) -> dict[str, Any]:
    """One feature record: every model feature, bounded; customer_id and country optional."""
    properties: dict[str, Any] = {"customer_id": text_schema(MAX_ID),
                                  "country": {**text_schema(MAX_ID, min_length=0), "nullable": True}}
    names = [*FEATURE_COLUMNS, "p_alive"] if with_p_alive else list(FEATURE_COLUMNS)
    for name in names:
        low, high, whole = payload_bounds(name)
        properties[name] = {"type": "integer" if whole else "number", "minimum": low, "maximum": high,
                            "description": FEATURE_DOCS[name]["label"]}
    return {"type": "object", "properties": properties, "required": names, "additionalProperties": False}


def scoring_request_schema(options: dict[str, Any], max_batch: int) -> dict[str, Any]:
    """Exactly one of customer_id / customer_ids (with an optional as_of) / features, plus ``options``; no
    other keys, every value bounded.

    Not expressible here (validated by the serializers, answered 400): duplicate customer_id values within
    one features list.
    """
    ident = text_schema(MAX_ID)
    records = [feature_record_schema(False), feature_record_schema(True)]
    features = {"oneOf": [*records, *({"type": "array", "items": r, "minItems": 1, "maxItems": max_batch}
                                      for r in records)]}
    as_of = {**DATETIME_SCHEMA, "description": "Feature cut-off (default: the day after the last transaction)."}

    def shape(title: str, required: str, schema: dict[str, Any], with_as_of: bool) -> dict[str, Any]:
        props = {required: schema, **({"as_of": as_of} if with_as_of else {}), **options}
        return {"title": title, "type": "object", "properties": props, "required": [required],
                "additionalProperties": False}

    return {"oneOf": [
        shape("ByCustomerId", "customer_id", ident, True),
        shape("ByCustomerIds", "customer_ids",
              {"type": "array", "items": ident, "minItems": 1, "maxItems": max_batch}, True),
        shape("ByFeatures", "features", features, False),
    ]}
