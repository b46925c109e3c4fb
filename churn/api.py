"""POST /predict_churn: churn risk by customer id(s) or by a raw feature payload, single or batch."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from django.contrib.auth.decorators import login_not_required
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from churn import services
from churn.counterfactual import actions_from_features
from churn.explain import explain_rows
from churn.pipeline import ChurnModelBundle
from rfm_portal.core.api import (
    StrictBooleanField,
    StrictIntegerField,
    error_responses,
)
from rfm_portal.core.schema import RequiredBodySchema
from rfm_portal.customers.feature_schema import CustomersOrFeaturesSerializer, scoring_request_schema
from rfm_portal.customers.features import FeatureError, features_from_payload
from rfm_portal.customers.models import Customer
from rfm_portal.mlops.services import ArtifactIntegrityError, NoActiveModel, cached_active_entry, load_active

logger = logging.getLogger(__name__)

MAX_BATCH = 10_000
MAX_EXPLAIN = 1_000
NO_MODEL = ("No churn model is active yet, so nothing can be scored. An admin can train one on the Churn page "
            "(or run `manage.py train_churn`).")


class PredictChurnInputSerializer(CustomersOrFeaturesSerializer):
    explain = StrictBooleanField(
        default=False, help_text=f"Add SHAP contributions and a counterfactual (batches up to {MAX_EXPLAIN:,})."
    )
    top_k = StrictIntegerField(default=5, min_value=1, max_value=20, help_text="Contributions per customer.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        size = len(attrs["customer_ids"]) if "customer_ids" in attrs else (
            len(attrs["features"]) if "features" in attrs else 1)
        if attrs["explain"] and size > MAX_EXPLAIN:
            raise serializers.ValidationError(
                {"explain": f"explain=true is limited to {MAX_EXPLAIN:,} customers per request, got {size:,}."})
        return attrs


def _request_schema() -> dict[str, Any]:
    """The body as OpenAPI states it. Beyond the shared rules (rfm_portal.customers.feature_schema), not
    expressible: explain=true with more than 1,000 customers (a 400)."""
    options = {"explain": {"type": "boolean", "default": False},
               "top_k": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5}}
    return scoring_request_schema(options, MAX_BATCH)


class ModelVersionRefSerializer(serializers.Serializer):
    kind = serializers.CharField()
    version = serializers.IntegerField()
    id = serializers.IntegerField()
    model_kind = serializers.CharField(help_text="logistic or lightgbm")


class ContributionSerializer(serializers.Serializer):
    feature = serializers.CharField()
    label = serializers.CharField()
    value = serializers.FloatField(help_text="The customer's raw feature value.")
    contribution = serializers.FloatField(help_text="SHAP value, log-odds of churn.")
    direction = serializers.CharField()


class ExplanationSerializer(serializers.Serializer):
    base_value = serializers.FloatField(help_text="Log-odds before any feature.")
    log_odds = serializers.FloatField(help_text="= base_value + Σ contributions + rest.")
    rest = serializers.FloatField(help_text="Summed contribution of the features not listed.")
    contributions = ContributionSerializer(many=True)


class CounterfactualSerializer(serializers.Serializer):
    message = serializers.CharField(
        help_text='The headline, one of the purchase scenarios: "k more orders worth about X now would bring churn '
                  'risk from a to b" (the fewest orders that cross the threshold, else the lowest risk reached).')
    feasible = serializers.BooleanField(help_text="Whether some scenario brings the risk below the threshold.")
    method = serializers.CharField(help_text='"purchases": orders added at as_of, every feature recomputed.')
    original_probability = serializers.FloatField()
    new_probability = serializers.FloatField(help_text="The re-scored probability of the headline scenario.")
    changes = serializers.ListField(
        child=serializers.DictField(),
        help_text="One entry per scenario: orders, order_value (the customer's usual order), days (0 = now), "
                  "risk_before, risk_after, below_threshold, message. Scenarios with the same rounded risk as a "
                  "smaller one are left out.")
    purchase_scenarios = serializers.ListField(child=serializers.CharField(),
                                               help_text="The scenarios' messages (k = 1…3 more orders).")


class PredictionSerializer(serializers.Serializer):
    customer_id = serializers.CharField()
    probability = serializers.FloatField(help_text="P(no purchase within horizon_days).")
    risk_band = serializers.CharField()
    explanation = ExplanationSerializer(required=False)
    counterfactual = CounterfactualSerializer(required=False, allow_null=True)


class UnscoredSerializer(serializers.Serializer):
    customer_id = serializers.CharField()
    reason = serializers.CharField()


class PredictChurnOutputSerializer(serializers.Serializer):
    model_version = ModelVersionRefSerializer()
    horizon_days = serializers.IntegerField()
    threshold = serializers.FloatField()
    as_of = serializers.DateTimeField(allow_null=True, help_text="Feature cut-off (customer ids only).")
    count = serializers.IntegerField()
    results = PredictionSerializer(many=True)
    unscored = UnscoredSerializer(many=True, help_text="Unknown ids, or customers with no purchase before as_of.")


def _explanations(bundle: ChurnModelBundle, X: pd.DataFrame, top_k: int, proba: np.ndarray,
                  ) -> dict[str, dict[str, Any]]:
    """SHAP contributions for every row, purchase scenarios for the rows at or above the threshold (all rows at
    once: one SHAP matrix, one re-scoring call for every scenario)."""
    rows = explain_rows(bundle, X, top_k=top_k, proba=proba)
    above = X[proba >= bundle.threshold]
    plans = actions_from_features(bundle, above)
    out = {}
    for row in rows:
        cid = row["customer_id"]
        plan = plans.get(cid)
        best = plan.best if plan else None
        for contribution in row["contributions"]:
            del contribution["kind"]  # not part of the documented answer (ContributionSerializer)
        out[cid] = {
            "explanation": {"base_value": row["base_value"], "log_odds": row["log_odds"], "rest": row["rest"],
                            "contributions": row["contributions"]},
            "counterfactual": None if plan is None or best is None else {
                "message": plan.headline, "feasible": plan.reaches_threshold, "method": "purchases",
                "original_probability": plan.risk, "new_probability": best.risk_after,
                "changes": [a.to_dict() for a in plan.actions],
                "purchase_scenarios": [a.message for a in plan.actions],
            },
        }
    return out


def predict(bundle: ChurnModelBundle, X: pd.DataFrame, explain: bool, top_k: int) -> list[dict[str, Any]]:
    """Score a feature frame (indexed by the caller's customer ids)."""
    if not len(X):
        return []
    p = bundle.predict_proba(X)
    bands = bundle.bands.assign(p)
    results = [{"customer_id": str(cid), "probability": float(pi), "risk_band": str(b)}
               for cid, pi, b in zip(X.index, p, bands, strict=True)]
    if explain:
        extra = _explanations(bundle, X, top_k, p)
        for r in results:
            r.update(extra[r["customer_id"]])
            r.setdefault("counterfactual", None)
    return results


def response_body(bundle: ChurnModelBundle, results: list[dict[str, Any]], as_of: Any,
                  unscored: list[dict[str, str]]) -> dict[str, Any]:
    registry = bundle.metrics.get("registry", {})
    return {
        "model_version": {"kind": registry.get("kind", services.KIND), "version": registry.get("version", 0),
                          "id": registry.get("id", 0), "model_kind": bundle.kind},
        "horizon_days": bundle.horizon_days, "threshold": bundle.threshold, "as_of": as_of,
        "count": len(results), "results": results, "unscored": unscored,
    }


FAST_PATH_KEYS = frozenset({"features", "explain", "top_k"})


def fast_path_body(data: Any) -> dict[str, Any] | None:
    """The 200 body PredictChurnApi answers for a feature payload without explain, computed without DRF, or
    None when the request is anything else (ids, explain=true, invalid input, no fresh cached model): the
    serving fast path (rfm_portal.serving.fastpath) then hands it to the view, which answers it.

    The same checks as PredictChurnInputSerializer for this shape (no other keys; explain exactly false;
    top_k a whole number in bounds; features an object or a list, validated by features_from_payload), the
    same model and the same body as the view."""
    if type(data) is not dict or "features" not in data or not data.keys() <= FAST_PATH_KEYS:
        return None
    if data.get("explain", False) is not False:
        return None
    top_k = data.get("top_k", 5)
    if type(top_k) is not int or not 1 <= top_k <= 20:
        return None
    features = data["features"]
    if type(features) is not dict and (type(features) is not list
                                      or len(features) > PredictChurnInputSerializer.max_batch):
        return None
    active = cached_active_entry(services.KIND)
    if active is None:
        return None
    try:
        X = features_from_payload(features)
    except FeatureError:
        return None
    return response_body(active.obj, predict(active.obj, X, False, top_k), None, [])


class PredictChurnApi(APIView):
    """Churn risk for CRM integrations (API key) and portal users (session)."""

    schema = RequiredBodySchema()

    @extend_schema(
        operation_id="predict_churn",
        summary="Churn risk by customer id(s) or by feature payload",
        description=(
            "Probability that a customer makes no purchase within the active model's horizon (default 90 days). "
            "By `customer_id` / `customer_ids` the features are built from the stored transactions before `as_of` "
            "(default now) with the same feature code as training; by `features` the payload is validated field by "
            f"field. Batches up to {MAX_BATCH:,}; `explain=true` adds SHAP contributions (log-odds; base_value + Σ "
            "contributions + rest = log_odds) and, for customers above the threshold, what orders would do: 'k more "
            "orders worth about X now would bring churn risk from a to b' (k = 1…3, every feature recomputed, "
            "re-scored). Every answer "
            "names the model version. 503 when no churn model is active."
        ),
        request={"application/json": _request_schema()},
        responses={200: PredictChurnOutputSerializer, **error_responses(
            400, 404, 413, 415, 422, 503,
            extra={404: "customer_id: unknown customer.",
                   422: "customer_id: the customer has no purchase before as_of.",
                   503: "No churn model is active, or its artifact cannot be read; or the database is busy "
                        "(retry after Retry-After seconds)."})},
        examples=[OpenApiExample("by id", value={"customer_id": "12346", "explain": True}, request_only=True)],
        tags=["churn"],
    )
    def post(self, request: Request) -> Response:
        serializer = PredictChurnInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            bundle: ChurnModelBundle = load_active(services.KIND)
        except NoActiveModel:
            return Response({"detail": NO_MODEL}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        except (OSError, ArtifactIntegrityError) as error:
            logger.exception("cannot load the active churn model")
            return Response({"detail": f"The active churn model's artifact cannot be read ({type(error).__name__}); "
                                       "an admin should retrain or roll back on the Models page."},
                            status=status.HTTP_503_SERVICE_UNAVAILABLE)
        unscored: list[dict[str, str]] = []
        as_of = None
        if "features" in data:
            X = data["features"]
        else:
            ids = [data["customer_id"]] if "customer_id" in data else data["customer_ids"]
            as_of = services.as_of_datetime(data.get("as_of"))
            known = dict(Customer.objects.filter(external_id__in=ids).values_list("pk", "external_id"))
            X = services.features_for_customers(list(known), as_of)
            X.index = pd.Index([known[pk] for pk in X.index], name="customer_id")
            X = X.loc[[cid for cid in ids if cid in X.index]]  # answer in the order asked
            found = set(known.values())
            for cid in ids:
                if cid not in found:
                    unscored.append({"customer_id": cid, "reason": "unknown customer"})
                elif cid not in X.index:
                    unscored.append({"customer_id": cid, "reason": "no purchase before as_of"})
            if "customer_id" in data and unscored:
                code = status.HTTP_404_NOT_FOUND if unscored[0]["reason"] == "unknown customer" else 422
                return Response({"detail": f"Customer {data['customer_id']}: {unscored[0]['reason']}."}, status=code)
        results = predict(bundle, X, data["explain"], data["top_k"])
        body = response_body(bundle, results, as_of.to_pydatetime() if as_of is not None else None, unscored)
        # The body is already plain JSON values shaped as PredictChurnOutputSerializer documents it (for
        # explain=true tests/churn_app/test_predict_api.py checks that the serializer would return it unchanged);
        # running it through that nested serializer (a deep copy of every declared field) cost ~10 % of a
        # single-row call's CPU under load and about a third of an explain=true batch's.
        return Response(body)


# DRF does its own authentication (API key or session); the login-redirect middleware must not.
predict_churn_api = login_not_required(PredictChurnApi.as_view())
