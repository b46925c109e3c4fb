"""Makes the request's user and address known to audit receivers for the length of the request."""

from __future__ import annotations

from .services import acting_as


def client_ip(request) -> str | None:
    # REMOTE_ADDR only: X-Forwarded-For is set by the client unless a trusted proxy rewrites it
    # (axes' AXES_IPWARE_PROXY_COUNT covers the proxied case for login throttling).
    return request.META.get("REMOTE_ADDR") or None


class AuditContextMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        with acting_as(getattr(request, "user", None), client_ip(request)):
            return self.get_response(request)
