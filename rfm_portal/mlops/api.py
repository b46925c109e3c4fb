"""REST: job status and the model registry, for portal sessions and CRM API keys (read only)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

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
    @extend_schema(responses=JobOutputSerializer(many=True), summary="Recent jobs, newest first")
    def get(self, request: Request) -> Response:
        return Response(JobOutputSerializer(selectors.job_list(), many=True).data)


class JobDetailApi(APIView):
    @extend_schema(responses=JobOutputSerializer, summary="One job's state and progress")
    def get(self, request: Request, pk: int) -> Response:
        return Response(JobOutputSerializer(selectors.job_get(pk)).data)


class ModelVersionListApi(APIView):
    @extend_schema(responses=ModelVersionOutputSerializer(many=True), summary="Registered model versions")
    def get(self, request: Request) -> Response:
        return Response(ModelVersionOutputSerializer(selectors.model_version_list(), many=True).data)
