"""REST for CRMs (API key or session): list campaigns; an approved campaign's target list, paged."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_not_required
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns import selectors
from campaigns.models import Campaign, CampaignTarget
from rfm_portal.core.api import error_responses

MAX_PAGE_SIZE = 5000

class StrictQuerySerializer(serializers.Serializer):
    """Query parameters: unknown ones are refused (a typo must not silently fall back to a default)."""

    def to_internal_value(self, data: Any) -> Any:
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({k: ["Unknown parameter."] for k in unknown})
        return super().to_internal_value(data)


class CampaignListQuery(StrictQuerySerializer):
    status = serializers.ChoiceField(choices=Campaign.Status.choices, required=False)


class TargetsQuery(StrictQuerySerializer):
    page = serializers.IntegerField(min_value=1, default=1)
    page_size = serializers.IntegerField(min_value=1, max_value=MAX_PAGE_SIZE, default=500)
    list = serializers.ChoiceField(choices=CampaignTarget.Arm.choices, default=CampaignTarget.Arm.CONTACT,
                                   help_text="contact (the list to send) or holdout (not contacted, for measurement)")


class CampaignOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    goal = serializers.CharField()
    status = serializers.CharField()
    budget = serializers.FloatField()
    holdout_share = serializers.FloatField()
    scheduled_for = serializers.DateField(allow_null=True)
    contacts = serializers.IntegerField(allow_null=True)
    holdout = serializers.IntegerField(allow_null=True)
    expected_profit = serializers.FloatField(allow_null=True)
    expected_spend = serializers.FloatField(allow_null=True)
    approved_at = serializers.DateTimeField(allow_null=True)
    targets_available = serializers.BooleanField()


class CampaignListOutputSerializer(serializers.Serializer):
    results = CampaignOutputSerializer(many=True)


class TargetOutputSerializer(serializers.Serializer):
    customer_id = serializers.CharField()
    channel = serializers.CharField()
    message = serializers.CharField()
    predicted_effect = serializers.FloatField()
    expected_profit = serializers.FloatField()
    segment = serializers.CharField()


class TargetPageOutputSerializer(serializers.Serializer):
    campaign = serializers.CharField()
    list = serializers.CharField()
    count = serializers.IntegerField()
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    next_page = serializers.IntegerField(allow_null=True)
    results = TargetOutputSerializer(many=True)


def _campaign_row(c: Campaign) -> dict[str, Any]:
    t = (c.plan or {}).get("totals", {})
    return {"id": c.pk, "name": c.name, "goal": c.goal, "status": c.status, "budget": c.budget,
            "holdout_share": c.holdout_share, "scheduled_for": c.scheduled_for, "contacts": t.get("contacts"),
            "holdout": t.get("holdout"), "expected_profit": t.get("contact_profit", t.get("profit")),
            "expected_spend": t.get("contact_spend", t.get("spend")),
            "approved_at": c.reviewed_at if c.exportable else None, "targets_available": c.exportable}


class CampaignListApi(APIView):
    @extend_schema(
        operation_id="campaigns_list", tags=["campaigns"],
        summary="Campaigns with their status and planned totals",
        parameters=[CampaignListQuery],
        responses={200: CampaignListOutputSerializer, **error_responses(400)},
    )
    def get(self, request: Request) -> Response:
        query = CampaignListQuery(data=request.query_params.dict())
        if not query.is_valid():
            return Response(query.errors, status=status.HTTP_400_BAD_REQUEST)
        rows = [_campaign_row(c) for c in selectors.campaign_list(query.validated_data.get("status", ""))[:500]]
        return Response(CampaignListOutputSerializer({"results": rows}).data)


class CampaignTargetsApi(APIView):
    @extend_schema(
        operation_id="campaigns_targets", tags=["campaigns"],
        summary="An approved campaign's target list (or its holdout), paged",
        description="Only approved (or already exported) campaigns have a list to send: others answer 409. "
                    "Holdout customers are never in the contact list; they are listed separately with list=holdout. "
                    "Messages are HTML-escaped.",
        parameters=[TargetsQuery],
        responses={200: TargetPageOutputSerializer, **error_responses(
            400, 404, 409, extra={409: "The campaign is not approved: it has no target list yet."})},
    )
    def get(self, request: Request, pk: str) -> Response:
        query = TargetsQuery(data=request.query_params.dict())
        if not query.is_valid():
            return Response(query.errors, status=status.HTTP_400_BAD_REQUEST)
        # Any text reaches the view (a JSON 404, never Django's HTML page, for an id that is not a number).
        campaign = selectors.campaign_get(int(pk)) if pk.isdigit() and len(pk) < 18 else None
        if campaign is None:
            return Response({"detail": "No such campaign."}, status=status.HTTP_404_NOT_FOUND)
        if not campaign.exportable:
            return Response({"detail": f"Campaign '{campaign.name}' is {campaign.get_status_display().lower()}: "
                                       "only approved campaigns have a target list."},
                            status=status.HTTP_409_CONFLICT)
        q = query.validated_data
        qs = selectors.target_page(campaign, q["list"])
        count = qs.count()
        start = (q["page"] - 1) * q["page_size"]
        rows = [{"customer_id": t.customer.external_id, "channel": t.channel, "message": t.message,
                 "predicted_effect": t.predicted_effect, "expected_profit": t.expected_profit, "segment": t.segment}
                for t in qs[start:start + q["page_size"]]]
        return Response(TargetPageOutputSerializer({
            "campaign": campaign.name, "list": q["list"], "count": count, "page": q["page"],
            "page_size": q["page_size"], "next_page": q["page"] + 1 if start + q["page_size"] < count else None,
            "results": rows}).data)


# DRF does its own authentication (API key or session); the login-redirect middleware must not.
campaign_list_api = login_not_required(CampaignListApi.as_view())
campaign_targets_api = login_not_required(CampaignTargetsApi.as_view())
