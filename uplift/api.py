"""POST /uplift_score: the effect of contact per customer for CRMs (API key) and portal users (session)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from django.contrib.auth.decorators import login_not_required
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from rfm_portal.core.api import (
    StrictFloatField,
    check_finite_output,
    error_responses,
)
from rfm_portal.core.schema import RequiredBodySchema
from rfm_portal.customers.feature_schema import CustomersOrFeaturesSerializer, scoring_request_schema
from rfm_portal.customers.models import Customer
from rfm_portal.mlops.services import ArtifactIntegrityError, NoActiveModel, load_active
from uplift import services
from uplift.pipeline import ProfitInputs, UpliftModel

logger = logging.getLogger(__name__)

MAX_BATCH = 10_000
MAX_MONEY = 1_000_000.0
NO_MODEL = ("No uplift model is active yet, so nothing can be scored. An admin can train one on the Uplift page "
            "(or run `manage.py train_uplift`).")


class UpliftScoreInputSerializer(CustomersOrFeaturesSerializer):
    contact_cost = StrictFloatField(required=False, min_value=0.0, max_value=MAX_MONEY,
                                    help_text="Cost of one contact (default from settings).")
    incentive_cost = StrictFloatField(required=False, min_value=0.0, max_value=MAX_MONEY,
                                      help_text="Cost of the incentive, paid when the customer buys.")
    margin = StrictFloatField(required=False, min_value=0.0, max_value=1.0,
                              help_text="Share of revenue kept as profit (0–1).")


class UpliftModelVersionRefSerializer(serializers.Serializer):
    kind = serializers.CharField()
    version = serializers.IntegerField()
    id = serializers.IntegerField()
    learner = serializers.CharField(help_text="causal_forest or t_learner")


class UpliftProfitInputsSerializer(serializers.Serializer):
    contact_cost = serializers.FloatField()
    incentive_cost = serializers.FloatField()
    margin = serializers.FloatField()


class UpliftResultSerializer(serializers.Serializer):
    customer_id = serializers.CharField()
    uplift = serializers.FloatField(help_text="Effect of contact on P(buy in the outcome window); 0.08 = +8 points.")
    uplift_low = serializers.FloatField(help_text="95 % interval, lower end.")
    uplift_high = serializers.FloatField(help_text="95 % interval, upper end.")
    baseline = serializers.FloatField(help_text="P(buy in the outcome window) without contact.")
    revenue_uplift = serializers.FloatField(help_text="Effect of contact on revenue in the outcome window.")
    group = serializers.ChoiceField(choices=["persuadable", "sure_thing", "lost_cause", "sleeping_dog"])
    expected_profit = serializers.FloatField(
        help_text="revenue_uplift × margin − contact_cost − incentive_cost × P(buy | contacted).")
    recommendation = serializers.ChoiceField(choices=["contact", "dont_contact"])
    reason = serializers.CharField()


class UpliftUnscoredSerializer(serializers.Serializer):
    customer_id = serializers.CharField()
    reason = serializers.CharField()


class UpliftScoreOutputSerializer(serializers.Serializer):
    model_version = UpliftModelVersionRefSerializer()
    as_of = serializers.DateTimeField(allow_null=True, help_text="Feature cut-off (customer ids only).")
    profit_inputs = UpliftProfitInputsSerializer()
    count = serializers.IntegerField()
    results = UpliftResultSerializer(many=True)
    unscored = UpliftUnscoredSerializer(many=True, help_text="Unknown ids, or customers with no purchase before as_of.")


def score(model: UpliftModel, X: pd.DataFrame, inputs: ProfitInputs) -> list[dict[str, Any]]:
    """Score a feature frame (indexed by the caller's customer ids), in its order."""
    if not len(X):
        return []
    s = model.score(X, inputs)
    return [{"customer_id": str(cid), "uplift": float(r[0]), "uplift_low": float(r[1]), "uplift_high": float(r[2]),
             "baseline": float(r[3]), "revenue_uplift": float(r[4]), "group": r[5], "expected_profit": float(r[6]),
             "recommendation": r[7], "reason": r[8]}
            for cid, r in zip(s.index, s.itertuples(index=False, name=None), strict=True)]


class UpliftScoreApi(APIView):
    """Uplift for CRM integrations (API key) and portal users (session)."""

    schema = RequiredBodySchema()

    @extend_schema(
        operation_id="uplift_score",
        summary="Effect of contact (uplift), group and expected profit by customer id(s) or feature payload",
        description=(
            "The active uplift model's estimate of what contacting a customer changes: `uplift` is the effect on "
            "the probability of buying within the campaign's outcome window (with a 95 % interval), `baseline` "
            "the probability without contact, `revenue_uplift` the effect on revenue. `group`: persuadable "
            "(effect confidently > 0), sleeping_dog (confidently < 0: do not contact), sure_thing / lost_cause "
            "(no clear effect; buys anyway / unlikely either way). `expected_profit` = revenue_uplift × margin − "
            "contact_cost − incentive_cost × P(buy | contacted); `recommendation` is contact when that is > 0 and "
            "the customer is not a sleeping dog. By `customer_id` / `customer_ids` the features are built from "
            "stored transactions before `as_of` (default: the day after the last imported transaction); by "
            f"`features` the payload is validated field by field. Batches up to {MAX_BATCH:,}. Unknown keys, "
            "non-finite or implausible numbers and out-of-range dates are rejected with 400 and field errors. "
            "503 when no uplift model is active."
        ),
        request={"application/json": scoring_request_schema({
            "contact_cost": {"type": "number", "minimum": 0, "maximum": MAX_MONEY},
            "incentive_cost": {"type": "number", "minimum": 0, "maximum": MAX_MONEY},
            "margin": {"type": "number", "minimum": 0, "maximum": 1},
        }, MAX_BATCH)},
        responses={200: UpliftScoreOutputSerializer, **error_responses(
            400, 404, 413, 415, 422, 503,
            extra={404: "customer_id: unknown customer.",
                   422: "customer_id: the customer has no purchase before as_of; or scores that are not finite.",
                   503: "No uplift model is active, or its artifact cannot be read; or the database is busy "
                        "(retry after Retry-After seconds)."})},
        examples=[
            OpenApiExample("by id", value={"customer_id": "10001"}, request_only=True),
            OpenApiExample("batch with profit inputs", request_only=True,
                           value={"customer_ids": ["10001", "10002"], "contact_cost": 0.3, "incentive_cost": 2.5,
                                  "margin": 0.35}),
            OpenApiExample("one result", response_only=True, value={
                "model_version": {"kind": "uplift", "version": 3, "id": 41, "learner": "causal_forest"},
                "as_of": "2025-01-01T00:00:00Z",
                "profit_inputs": {"contact_cost": 0.25, "incentive_cost": 2.0, "margin": 0.4}, "count": 1,
                "results": [{"customer_id": "10001", "uplift": 0.121, "uplift_low": 0.034, "uplift_high": 0.208,
                             "baseline": 0.18, "revenue_uplift": 5.9, "group": "persuadable",
                             "expected_profit": 1.52, "recommendation": "contact",
                             "reason": "Contact raises the chance to buy by +12.1%; expected incremental profit "
                                       "+1.52 per contact."}],
                "unscored": []}),
        ],
        tags=["uplift"],
    )
    def post(self, request: Request) -> Response:
        serializer = UpliftScoreInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            model: UpliftModel = load_active(services.KIND)
        except NoActiveModel:
            return Response({"detail": NO_MODEL}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        except (OSError, ArtifactIntegrityError) as error:
            logger.exception("cannot load the active uplift model")
            return Response({"detail": f"The active uplift model's artifact cannot be read ({type(error).__name__}); "
                                       "an admin should retrain or roll back on the Models page."},
                            status=status.HTTP_503_SERVICE_UNAVAILABLE)
        defaults = model.profit_defaults
        inputs = ProfitInputs(contact_cost=data.get("contact_cost", defaults.contact_cost),
                              incentive_cost=data.get("incentive_cost", defaults.incentive_cost),
                              margin=data.get("margin", defaults.margin))
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
            X = X.loc[[cid for cid in ids if cid in X.index]]
            found = set(known.values())
            for cid in ids:
                if cid not in found:
                    unscored.append({"customer_id": cid, "reason": "unknown customer"})
                elif cid not in X.index:
                    unscored.append({"customer_id": cid, "reason": "no purchase before as_of"})
            if "customer_id" in data and unscored:
                code = status.HTTP_404_NOT_FOUND if unscored[0]["reason"] == "unknown customer" else 422
                return Response({"detail": f"Customer {data['customer_id']}: {unscored[0]['reason']}."}, status=code)
        results = score(model, X, inputs)
        check_finite_output([[r["uplift"], r["uplift_low"], r["uplift_high"], r["baseline"], r["revenue_uplift"],
                              r["expected_profit"]] for r in results], "these customers")
        registry = model.metrics.get("registry", {})
        body = {
            "model_version": {"kind": registry.get("kind", services.KIND), "version": registry.get("version", 0),
                              "id": registry.get("id", 0), "learner": model.learner},
            "as_of": as_of.to_pydatetime() if as_of is not None else None,
            "profit_inputs": {"contact_cost": inputs.contact_cost, "incentive_cost": inputs.incentive_cost,
                              "margin": inputs.margin},
            "count": len(results), "results": results, "unscored": unscored,
        }
        return Response(UpliftScoreOutputSerializer(body).data)


# DRF does its own authentication (API key or session); the login-redirect middleware must not.
uplift_score_api = login_not_required(UpliftScoreApi.as_view())
