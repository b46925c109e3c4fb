"""REST import endpoint for integrations: POST /api/imports/ (multipart)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from rfm_portal.accounts.authentication import APIKeyUser
from rfm_portal.accounts.permissions import is_portal_admin
from rfm_portal.core.api import VALIDATION_ERROR_SCHEMA, UploadedFileField, error_responses
from rfm_portal.mlops.progress import JobQueueUnavailable

from . import importing, services
from .models import ImportJob


class CanImport(BasePermission):
    """Admins (session) and API key integrations; analysts may look but not import."""

    message = "Imports are for admins and API key integrations."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return is_portal_admin(user) or (isinstance(user, APIKeyUser) and user.role == "integration")


class ImportInputSerializer(serializers.Serializer):
    file = UploadedFileField(help_text="CSV (UTF-8 or latin-1, delimiter sniffed) or .xlsx.")
    kind = serializers.ChoiceField(choices=ImportJob.Kind.choices, default=ImportJob.Kind.TRANSACTIONS)
    skip_invalid = serializers.BooleanField(
        default=False, help_text="Import the valid rows and report the rest; by default any invalid row rejects all."
    )
    dayfirst = serializers.BooleanField(default=False, help_text="Read 1/12/2010 as 1 December (transactions).")
    mapping = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text='Target field -> source column, as a JSON object ({"customer_id": "Client"}) or '
        "target=Source items separated by commas or new lines.",
    )

    def validate_mapping(self, value: str) -> dict[str, str]:
        try:
            return importing.parse_mapping(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class ImportErrorSerializer(serializers.Serializer):
    line = serializers.IntegerField()
    reason = serializers.CharField()


class ImportJobOutputSerializer(serializers.ModelSerializer):
    errors = ImportErrorSerializer(many=True, help_text="Rejected lines (capped; rows_rejected is exact).")

    class Meta:
        model = ImportJob
        fields = [
            "id", "kind", "file_name", "file_sha256", "status", "skip_invalid", "column_mapping",
            "rows_total", "rows_accepted", "rows_inserted", "rows_duplicate", "rows_rejected",
            "errors", "message", "created_at", "finished_at", "job",
        ]  # fmt: skip
        read_only_fields = fields


class QueueUnavailableSerializer(serializers.Serializer):
    detail = serializers.CharField()
    import_job = ImportJobOutputSerializer(required=False, help_text="the import, recorded as failed "
                                           "(absent when the database itself was unavailable)")


class ImportCreateApi(APIView):
    permission_classes = [CanImport]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="imports_create",
        summary="Import transactions or campaign history from a file",
        description="Validated, atomic and idempotent: a file with invalid rows imports nothing (400, with the "
        "bad lines) unless skip_invalid is set; the same file twice adds nothing. Admins or API keys. Files "
        "larger than the background threshold (5 MB by default) are answered 202 with the pending import: "
        "the job named by `job` (and the Location header) reports progress and the outcome; 503 with "
        "Retry-After when the job queue is unavailable.",
        request={"multipart/form-data": ImportInputSerializer},
        responses={
            201: ImportJobOutputSerializer,
            202: ImportJobOutputSerializer,
            **error_responses(403, 413, 415),
            400: OpenApiResponse(
                {"anyOf": [{"$ref": "#/components/schemas/ImportJobOutput"}, VALIDATION_ERROR_SCHEMA]},
                description="The file was read and rejected (the import job, status rejected or failed, with the "
                "bad lines; nothing was imported), or the form itself is invalid (field errors).",
            ),
            503: OpenApiResponse(
                QueueUnavailableSerializer,
                description="The job queue or the database is unavailable: retry after Retry-After seconds. "
                "When the queue was down, the import is recorded as failed and returned.",
            ),
        },
        tags=["imports"],
    )
    def post(self, request: Request) -> Response:
        serializer = ImportInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if services.is_large_upload(data["file"]):
            return self._queue(request, data)
        job = services.import_uploaded_file(
            data["file"],
            kind=data["kind"],
            mapping=data["mapping"],
            skip_invalid=data["skip_invalid"],
            dayfirst=data["dayfirst"],
            user=request.user,
        )
        code = status.HTTP_201_CREATED if job.status == ImportJob.Status.SUCCEEDED else status.HTTP_400_BAD_REQUEST
        return Response(ImportJobOutputSerializer(job).data, status=code)

    def _queue(self, request: Request, data: dict) -> Response:
        """A large file: 202 with the pending import; its job (Location) reports progress and the outcome."""
        try:
            job = services.queue_import(
                data["file"],
                kind=data["kind"],
                mapping=data["mapping"],
                skip_invalid=data["skip_invalid"],
                dayfirst=data["dayfirst"],
                user=request.user,
            )
        except JobQueueUnavailable as error:
            failed = ImportJob.objects.get(job=error.job)
            body = {"detail": str(error), "import_job": ImportJobOutputSerializer(failed).data}
            return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "30"})
        location = reverse("mlops:api-job", kwargs={"pk": job.job_id})
        return Response(
            ImportJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED, headers={"Location": location}
        )


# DRF does its own authentication (API key or session); the login-redirect middleware must not.
import_create_api = login_not_required(ImportCreateApi.as_view())
