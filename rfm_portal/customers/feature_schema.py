"""OpenAPI of the scoring endpoints that take customers by id or as feature records (/predict_churn,
/uplift_score): one definition, built from the one feature definition, so the documented bounds are the
validated ones."""

from __future__ import annotations

from typing import Any

import pandas as pd
from rest_framework import serializers

from rfm_portal.core.api import (
    DATETIME_SCHEMA,
    BoundedDateTimeField,
    StrictCharField,
    StrictSerializer,
    text_schema,
)
from rfm_portal.customers.features import (
    FEATURE_COLUMNS,
    FEATURE_DOCS,
    FeatureError,
    features_from_payload,
    payload_bounds,
)

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


class CustomersOrFeaturesSerializer(StrictSerializer):
    """The input both scoring endpoints share: exactly one of customer_id, customer_ids (features built from
    their transactions before as_of) or features (one record or a list, checked by features_from_payload)."""

    max_batch = 10_000

    customer_id = StrictCharField(required=False, max_length=MAX_ID, help_text="One customer's external id.")
    customer_ids = serializers.ListField(
        child=StrictCharField(max_length=MAX_ID), required=False, allow_empty=False,
        help_text="Up to 10,000 external ids; features are built from their transactions before as_of.",
    )
    features = serializers.JSONField(
        required=False,
        help_text="One feature record (object) or up to 10,000 (list), each with every model feature "
        "(recency_days, frequency, monetary, …); customer_id and country optional.",
    )
    as_of = BoundedDateTimeField(
        required=False,
        help_text="Feature cut-off for customer ids (default: the day after the last imported transaction). "
        "Transactions before it count.",
    )

    def validate_customer_ids(self, value: list[str]) -> list[str]:
        if len(value) > self.max_batch:
            raise serializers.ValidationError(
                f"At most {self.max_batch:,} customer ids per request, got {len(value):,}.")
        return list(dict.fromkeys(value))

    def validate_features(self, value: Any) -> pd.DataFrame:
        if not isinstance(value, (dict, list)):
            raise serializers.ValidationError("Must be an object (one record) or a list of objects.")
        if isinstance(value, list) and len(value) > self.max_batch:
            raise serializers.ValidationError(
                f"At most {self.max_batch:,} feature records per request, got {len(value):,}.")
        try:
            return features_from_payload(value)  # bounded per feature (payload_bounds), finite, JSON numbers
        except FeatureError as error:
            raise serializers.ValidationError(str(error)) from None

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [k for k in ("customer_id", "customer_ids", "features") if k in attrs]
        if len(given) != 1:
            raise serializers.ValidationError("Give exactly one of customer_id, customer_ids or features.")
        if "as_of" in attrs and "features" in attrs:
            raise serializers.ValidationError(
                {"as_of": ["Only applies to customer ids: a feature payload is already as of its own date."]})
        return attrs
