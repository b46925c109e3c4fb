"""drf-spectacular helpers shared by the API views."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema


class RequiredBodySchema(AutoSchema):
    """For views whose request body is a hand-written OpenAPI schema (a dict): the body is required (drf-spectacular
    marks dict bodies optional)."""

    def _get_request_for_media_type(self, serializer, direction="request"):
        schema, required = super()._get_request_for_media_type(serializer, direction)
        return schema, required or isinstance(serializer, dict)
