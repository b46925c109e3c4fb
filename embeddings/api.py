"""POST /similar_customers: lookalikes of a customer, a seed audience, or a basket of products (cold start)."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.decorators import login_not_required
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from rfm_portal.core.api import (
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    StrictSerializer,
    error_responses,
    text_schema,
)
from rfm_portal.core.schema import RequiredBodySchema
from rfm_portal.mlops.services import ArtifactIntegrityError, NoActiveModel, load_active

from . import selectors, services
from .pipeline import EmbeddingBundle

logger = logging.getLogger(__name__)

MAX_K = 1_000
MAX_SEED = 1_000
MAX_PRODUCTS = 1_000
NO_MODEL = ("No lookalike model is active yet, so there are no neighbours to find. An admin can train one on the "
            "Lookalikes page (or run `manage.py train_embeddings`).")
MAX_ID = 64


def _request_schema() -> dict[str, Any]:
    """The body as OpenAPI states it: exactly one of three seeds, no other keys, every value bounded."""
    ident = text_schema(MAX_ID)
    options = {
        "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 10},
        "exclude_seed": {"type": "boolean", "default": True},
        "min_p_alive": {"type": "number", "minimum": 0, "maximum": 1,
                        "description": "Needs an active CLTV model (400 otherwise)."},
        "country": ident,
    }

    def shape(title: str, required: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"title": title, "type": "object", "properties": {required: schema, **options},
                "required": [required], "additionalProperties": False}

    def id_list(limit: int) -> dict[str, Any]:
        return {"type": "array", "items": ident, "minItems": 1, "maxItems": limit}

    return {"oneOf": [shape("SimilarToCustomer", "customer_id", ident),
                      shape("SimilarToCustomers", "customer_ids", id_list(MAX_SEED)),
                      shape("SimilarToProducts", "products", id_list(MAX_PRODUCTS))]}


class SimilarCustomersInputSerializer(StrictSerializer):
    customer_id = StrictCharField(required=False, max_length=MAX_ID, help_text="One customer's external id.")
    customer_ids = serializers.ListField(
        child=StrictCharField(max_length=MAX_ID), required=False, allow_empty=False, max_length=MAX_SEED,
        help_text=f"A seed audience of up to {MAX_SEED:,} external ids: one ranked list of customers like them.")
    products = serializers.ListField(
        child=StrictCharField(max_length=MAX_ID), required=False, allow_empty=False, max_length=MAX_PRODUCTS,
        help_text="Cold start: skus a (new) customer bought; their vector is folded in from the product vectors.")
    k = StrictIntegerField(default=10, min_value=1, max_value=MAX_K, help_text=f"Results wanted (1–{MAX_K:,}).")
    exclude_seed = StrictBooleanField(default=True, help_text="Leave the seed customers out of the results.")
    min_p_alive = StrictFloatField(required=False, min_value=0.0, max_value=1.0,
                                   help_text="Only customers whose P(alive) (active CLTV model) is at least this.")
    country = StrictCharField(required=False, max_length=MAX_ID,
                              help_text="Only customers of this country (case-insensitive).")

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        return super().to_internal_value(data)

    def validate_customer_ids(self, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    def validate_min_p_alive(self, value: float) -> float:
        if not selectors.has_cltv():
            raise serializers.ValidationError("No CLTV model is active, so P(alive) is unknown; leave this out.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [k for k in ("customer_id", "customer_ids", "products") if k in attrs]
        if len(given) != 1:
            raise serializers.ValidationError("Give exactly one of customer_id, customer_ids or products.")
        return attrs


class EmbeddingsModelVersionSerializer(serializers.Serializer):
    kind = serializers.CharField()
    version = serializers.IntegerField()
    id = serializers.IntegerField()


class SimilarCustomerResultSerializer(serializers.Serializer):
    customer_id = serializers.CharField()
    similarity = serializers.FloatField(help_text="Cosine similarity of taste vectors, -1…1 (1 = same taste).")
    shared_categories = serializers.ListField(child=serializers.CharField(),
                                              help_text="Categories both this customer and the seed buy a lot of.")
    segment = serializers.CharField(allow_null=True, help_text="RFM segment (active segmentation), if scored.")


class SimilarCustomersOutputSerializer(serializers.Serializer):
    model_version = EmbeddingsModelVersionSerializer()
    count = serializers.IntegerField()
    results = SimilarCustomerResultSerializer(many=True)
    unknown_ids = serializers.ListField(child=serializers.CharField(),
                                        help_text="Seed ids that are not customers or have no purchases.")
    unknown_products = serializers.ListField(child=serializers.CharField(), help_text="Skus the model does not know.")
    folded_in = serializers.ListField(child=serializers.CharField(),
                                      help_text="Seed customers newer than the model, placed from their purchases.")


EXAMPLE_RESPONSE = {
    "model_version": {"kind": "embeddings", "version": 3, "id": 41}, "count": 2,
    "results": [
        {"customer_id": "C01234", "similarity": 0.93, "shared_categories": ["Garden", "Home & Kitchen"],
         "segment": "Loyal"},
        {"customer_id": "C00420", "similarity": 0.91, "shared_categories": ["Garden"], "segment": "At risk"},
    ],
    "unknown_ids": [], "unknown_products": [], "folded_in": [],
}


class SimilarCustomersApi(APIView):
    """Lookalikes for CRM integrations (API key) and portal users (session)."""

    schema = RequiredBodySchema()

    @extend_schema(
        operation_id="similar_customers",
        summary="Customers with a similar taste: of one customer, of a seed audience, or of a basket",
        description=(
            "Nearest neighbours in the Customer2Vec taste space (cosine similarity), from the active "
            "`embeddings` model. Give exactly one of `customer_id`, `customer_ids` (a seed audience of up to "
            f"{MAX_SEED:,}; one ranked list of customers like the group) or `products` (skus; cold start). Options: "
            f"`k` (≤ {MAX_K:,}), `exclude_seed` (default true), `min_p_alive` (needs an active CLTV model), "
            "`country`. Results are ordered by similarity. Unknown ids are listed, not fatal, unless nothing is "
            "left (a single unknown `customer_id` answers 404). Unknown fields, non-finite or out-of-range numbers "
            "answer 400 with field errors; 503 when no lookalike model is active."
        ),
        request={"application/json": _request_schema()},
        responses={200: SimilarCustomersOutputSerializer, **error_responses(
            400, 404, 413, 415, 503,
            extra={404: "No seed is known: the customer id(s) are unknown or have no purchases, or no product is "
                        "known to the model.",
                   503: "No lookalike model is active, or its artifact cannot be read; or the database is busy "
                        "(retry after Retry-After seconds)."})},
        examples=[
            OpenApiExample("one customer", value={"customer_id": "C01234", "k": 10}, request_only=True),
            OpenApiExample("seed audience", value={"customer_ids": ["C01234", "C00420", "C00077"], "k": 500,
                                                   "exclude_seed": True, "min_p_alive": 0.5,
                                                   "country": "United Kingdom"}, request_only=True),
            OpenApiExample("cold start from products", value={"products": ["GA0001", "GA0007", "HK0003"], "k": 20},
                           request_only=True),
            OpenApiExample("answer", value=EXAMPLE_RESPONSE, response_only=True),
        ],
        tags=["lookalikes"],
    )
    def post(self, request: Request) -> Response:
        serializer = SimilarCustomersInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            bundle: EmbeddingBundle = load_active(services.KIND)
        except NoActiveModel:
            return Response({"detail": NO_MODEL}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        except (OSError, ArtifactIntegrityError) as error:
            logger.exception("cannot load the active embeddings model")
            return Response({"detail": f"The active lookalike model's artifact cannot be read "
                                       f"({type(error).__name__}); an admin should retrain or roll back."},
                            status=status.HTTP_503_SERVICE_UNAVAILABLE)
        options = services.LookalikeOptions(k=data["k"], exclude_seed=data["exclude_seed"],
                                            min_p_alive=data.get("min_p_alive"), country=data.get("country", ""))
        if "products" in data:
            found = services.find_lookalikes(bundle, options, skus=data["products"])
            if found.unknown_skus and len(found.unknown_skus) == len(data["products"]):
                return Response({"detail": "None of these products is known to the model."},
                                status=status.HTTP_404_NOT_FOUND)
        else:
            ids = [data["customer_id"]] if "customer_id" in data else data["customer_ids"]
            found = services.find_lookalikes(bundle, options, external_ids=ids)
            if "customer_id" in data and found.unknown_ids:
                return Response({"detail": f"Customer {data['customer_id']} is unknown or has no purchases."},
                                status=status.HTTP_404_NOT_FOUND)
            if found.seed_size == 0:
                return Response({"detail": "None of these customers is known or has purchases."},
                                status=status.HTTP_404_NOT_FOUND)
        body = {
            "model_version": {"kind": services.KIND, "version": bundle.version, "id": _version_id(bundle)},
            "count": len(found.results), "results": found.results, "unknown_ids": found.unknown_ids,
            "unknown_products": found.unknown_skus, "folded_in": found.folded_in,
        }
        return Response(SimilarCustomersOutputSerializer(body).data)


def _version_id(bundle: EmbeddingBundle) -> int:
    mv = selectors.active_version()
    return mv.pk if mv is not None and mv.version == bundle.version else 0


# DRF does its own authentication (API key or session); the login-redirect middleware must not.
similar_customers_api = login_not_required(SimilarCustomersApi.as_view())
