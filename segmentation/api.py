"""REST: segment and cluster statistics, and one customer's current RFM (API key or session)."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from rfm_portal.core.api import error_responses
from rfm_portal.customers.models import Customer
from segmentation import selectors

NO_MODEL = "No segmentation model is active yet. An admin can train one on the Segments page."


class SegmentationErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class SegmentationModelVersionSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    version = serializers.IntegerField()
    data_cutoff = serializers.DateTimeField(allow_null=True)
    activated_at = serializers.DateTimeField(allow_null=True)


class SegmentStatsSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    action = serializers.CharField()
    customers = serializers.IntegerField()
    customer_share = serializers.FloatField(allow_null=True)
    revenue = serializers.FloatField(allow_null=True)
    revenue_share = serializers.FloatField(allow_null=True)
    mean_recency_days = serializers.FloatField(allow_null=True)
    mean_frequency = serializers.FloatField(allow_null=True)
    mean_monetary = serializers.FloatField(allow_null=True)


class ClusterStatsSerializer(serializers.Serializer):
    cluster = serializers.IntegerField()
    name = serializers.CharField()
    customers = serializers.IntegerField()
    customer_share = serializers.FloatField(allow_null=True)
    revenue = serializers.FloatField(allow_null=True)
    revenue_share = serializers.FloatField(allow_null=True)
    median_recency_days = serializers.FloatField(allow_null=True)
    median_frequency = serializers.FloatField(allow_null=True)
    median_monetary = serializers.FloatField(allow_null=True)
    r_level = serializers.CharField()
    f_level = serializers.CharField()
    m_level = serializers.CharField()


class SegmentsOutputSerializer(serializers.Serializer):
    model_version = SegmentationModelVersionSerializer()
    customers = serializers.IntegerField()
    k = serializers.IntegerField()
    k_explanation = serializers.CharField()
    pareto_top20_share = serializers.FloatField(allow_null=True)
    segments = SegmentStatsSerializer(many=True)
    clusters = ClusterStatsSerializer(many=True)


class CustomerRFMOutputSerializer(serializers.Serializer):
    customer_id = serializers.CharField(source="customer.external_id")
    model_version = SegmentationModelVersionSerializer()
    recency_days = serializers.IntegerField()
    frequency = serializers.IntegerField()
    monetary = serializers.DecimalField(max_digits=16, decimal_places=4)
    first_purchase = serializers.DateTimeField()
    last_purchase = serializers.DateTimeField()
    r_score = serializers.IntegerField()
    f_score = serializers.IntegerField()
    m_score = serializers.IntegerField()
    rfm_code = serializers.CharField()
    segment = serializers.CharField()
    segment_description = serializers.SerializerMethodField()
    segment_action = serializers.SerializerMethodField()
    cluster = serializers.IntegerField()
    cluster_name = serializers.CharField()

    def get_segment_description(self, obj) -> str:
        return selectors.SEGMENT_INFO[obj.segment].description

    def get_segment_action(self, obj) -> str:
        return selectors.SEGMENT_INFO[obj.segment].action


class SegmentsApi(APIView):
    @extend_schema(
        summary="Segments and clusters of the active segmentation model",
        responses={
            200: SegmentsOutputSerializer,
            **error_responses(),
            409: OpenApiResponse(SegmentationErrorSerializer, description="no active model"),
        },
    )
    def get(self, request: Request) -> Response:
        mv = selectors.active_version()
        if mv is None:
            return Response({"detail": NO_MODEL}, status=status.HTTP_409_CONFLICT)
        summary = selectors.summary(mv)
        segments: list[dict[str, Any]] = [
            {**row, "description": row["info"].description, "action": row["info"].action}
            for row in summary.segment_rows()
        ]
        payload = {
            "model_version": mv,
            "customers": mv.metrics["customers"],
            "k": mv.metrics["k"],
            "k_explanation": mv.metrics["k_explanation"],
            "pareto_top20_share": mv.metrics.get("pareto_top20_share"),
            "segments": segments,
            "clusters": summary.cluster_rows(),
        }
        return Response(SegmentsOutputSerializer(payload).data)


class CustomerRFMApi(APIView):
    @extend_schema(
        summary="A customer's current RFM values, scores, segment and cluster",
        responses={
            200: CustomerRFMOutputSerializer,
            **error_responses(),
            404: OpenApiResponse(
                SegmentationErrorSerializer, description="unknown customer, or not scored in the active model"
            ),
            409: OpenApiResponse(SegmentationErrorSerializer, description="no active model"),
        },
    )
    def get(self, request: Request, external_id: str) -> Response:
        customer = get_object_or_404(Customer, external_id=external_id)
        mv = selectors.active_version()
        if mv is None:
            return Response({"detail": NO_MODEL}, status=status.HTTP_409_CONFLICT)
        score = selectors.customer_score(customer, mv)
        if score is None:
            return Response(
                {
                    "detail": f"Customer {external_id} has no RFM score in segmentation v{mv.version}: no purchase "
                    "before its data cut-off."
                },
                status=status.HTTP_404_NOT_FOUND,
            )
        return Response(CustomerRFMOutputSerializer(score).data)
