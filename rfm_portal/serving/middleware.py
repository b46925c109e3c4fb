"""503 + Retry-After when the database cannot give this request a connection.

The connection pool (settings: DB_POOL_*) makes a request wait up to DB_POOL_TIMEOUT for a free
connection, then raises psycopg_pool.PoolTimeout; PostgreSQL itself may refuse a connection ("too
many clients"). Both arrive as django.db.OperationalError. The server is overloaded, not broken: the
client should retry, so the answer is 503 with Retry-After — JSON for the API, a plain page otherwise.

`DatabaseUnavailableMiddleware` turns such an error raised by a view into that answer;
`server_error` (urls.handler500) does the same for one raised in a middleware (e.g. the session
read), which never reaches process_exception, and is Django's plain 500 page otherwise.
"""

from __future__ import annotations

import logging
import os
import sys

from django.db import OperationalError as DjangoOperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin
from django.views import defaults
from django.views.decorators.csrf import requires_csrf_token

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = int(os.environ.get("DB_RETRY_AFTER", 2))
API_PREFIXES = ("/api/", "/predict_", "/similar_customers", "/uplift_score")
MESSAGE = "The service is busy: no database connection is free right now. Please retry in a few seconds."


def is_database_unavailable(error: BaseException | None) -> bool:
    """A database error that retrying later can fix: pool timeout, refused or lost connection."""
    import psycopg

    while error is not None:
        if isinstance(error, DjangoOperationalError | psycopg.OperationalError):
            return True
        error = error.__cause__
    return False


def wants_json(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIXES) or "application/json" in request.headers.get("Accept", "")


def database_unavailable_response(request: HttpRequest, error: BaseException) -> HttpResponse:
    logger.warning("503 for %s %s: database unavailable (%s: %s)", request.method, request.path,
                   type(error).__name__, str(error).splitlines()[0] if str(error) else "")
    if wants_json(request):
        response: HttpResponse = JsonResponse({"detail": MESSAGE}, status=503)
    else:
        response = HttpResponse(f"<!doctype html><title>Busy</title><h1>Busy</h1><p>{MESSAGE}</p>",
                                status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


class DatabaseUnavailableMiddleware(MiddlewareMixin):
    """A view's database-unavailable error → 503 + Retry-After (API: JSON; pages: a plain page)."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if is_database_unavailable(exception):
            return database_unavailable_response(request, exception)
        return None


@requires_csrf_token
def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a 503 for database-unavailable errors raised outside views, Django's 500 page otherwise."""
    error = sys.exc_info()[1]
    if is_database_unavailable(error):
        return database_unavailable_response(request, error)
    return defaults.server_error(request)
