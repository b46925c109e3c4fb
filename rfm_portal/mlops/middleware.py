"""Turns JobQueueUnavailable (the broker is down) into an answer the user can act on."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.utils.deprecation import MiddlewareMixin
from django.utils.http import url_has_allowed_host_and_scheme

from .progress import JobQueueUnavailable


def wants_json(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "")
    return request.path.startswith("/api/") or ("application/json" in accept and "text/html" not in accept)


def queue_unavailable_response(request: HttpRequest, error: JobQueueUnavailable) -> HttpResponse:
    """APIs: 503 with Retry-After. Pages: the message, back where the user clicked."""
    if wants_json(request) or request.method not in ("POST", "GET"):
        response = JsonResponse({"detail": str(error), "job_id": error.job.pk}, status=503)
    else:
        messages.error(request, f"{error} (Job #{error.job.pk} was recorded as failed.)")
        referer = request.headers.get("Referer", "")
        safe = url_has_allowed_host_and_scheme(referer, {request.get_host()}, require_https=request.is_secure())
        response = redirect(referer if referer and safe else "mlops:jobs")
    response["Retry-After"] = str(error.retry_after)
    return response


class JobQueueUnavailableMiddleware(MiddlewareMixin):
    # MiddlewareMixin: sync and async capable, so it adds no thread hop under ASGI.
    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, JobQueueUnavailable):
            return queue_unavailable_response(request, exception)
        return None
