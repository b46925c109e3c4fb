"""REST: job status and the model registry, for portal sessions and CRM API keys (read only)."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from rfm_portal.core.api import error_responses

from . import selectors
from .models import Job


class JobOutputSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)

    class Meta:
        model = Job
        fields = [
            "id", "kind", "state", "progress", "message", "error", "result",
            "created_by", "created_at", "started_at", "finished_at",
        ]  # fmt: skip


class ModelVersionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    version = serializers.IntegerField()
    status = serializers.CharField()
    params = serializers.JSONField()
    metrics = serializers.JSONField()
    artifact_sha256 = serializers.CharField()
    data_cutoff = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    activated_at = serializers.DateTimeField(allow_null=True)


class JobListApi(APIView):
    @extend_schema(responses={200: JobOutputSerializer(many=True), **error_responses()},
                   summary="Recent jobs, newest first")
    def get(self, request: Request) -> Response:
        return Response(JobOutputSerializer(selectors.job_list(), many=True).data)


class JobDetailApi(APIView):
    @extend_schema(responses={200: JobOutputSerializer, **error_responses(404, extra={404: "No such job."})},
                   parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH, description="The job's id.")],
                   summary="One job's state and progress")
    def get(self, request: Request, pk: str) -> Response:
        if not pk.isascii() or not pk.isdigit() or len(pk) > 18:
            raise Http404("No such job.")
        return Response(JobOutputSerializer(selectors.job_get(int(pk))).data)


class ModelVersionListApi(APIView):
    @extend_schema(responses={200: ModelVersionOutputSerializer(many=True), **error_responses()},
                   summary="Registered model versions")
    def get(self, request: Request) -> Response:
        return Response(ModelVersionOutputSerializer(selectors.model_version_list(), many=True).data)
