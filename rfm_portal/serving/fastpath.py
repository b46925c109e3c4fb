"""A lean ASGI path in front of Django for the hot scoring calls: one payload, an API key, nothing else.

A CRM scoring customers one at a time sends ``POST /predict_churn`` or ``POST /predict_cltv`` with a feature
payload and ``Authorization: Api-Key …``. Through Django that costs a thread hop, ten middlewares, DRF's
dispatch, content negotiation and serializer copies: about 3 ms of CPU for a model call of well under one
(docs/benchmarks.md, issue 9). Here such a request is answered on the event loop instead, with exactly what the
Django path would answer:

* the same JSON parser (rfm_portal.core.parsers.parse_json_bytes), the same input checks and the same model
  and body code, which the views share (``fast_path_body`` in churn/api.py and cltv/api.py);
* the same per-process caches: the API key accepted only as APIKeyAuthentication accepts it from its cache
  (remembered, not revoked, not expired, last use recorded within the minute: ``cached_usable_key``), the
  active model only while its recheck is not due (``cached_active_entry``). When a cache cannot vouch, the
  same code (APIKeyAuthentication, load_active_entry) runs once in a thread — one query for all the requests
  waiting on it, none on the event loop — and a refused key or a missing model is left to Django;
* the same headers, from the same code: DRF's (Content-Type, Vary, Allow), SessionMiddleware's Vary: Cookie,
  CommonMiddleware's Content-Length, and XFrameOptionsMiddleware's and SecurityMiddleware's, run on a template
  response once per setting;
* the same host validation (ALLOWED_HOSTS) and no fast answer where SecurityMiddleware would redirect to https.

Everything else goes to Django unchanged, the body already read handed on: other paths and methods, websockets,
session cookies, another Accept, a query string, a body the fast checks do not accept (Django then answers with
DRF's exact field errors), explain=true, ids, CLTV settings, a refused key, no active model or an unreadable
artifact or an unreachable database (Django's 401/503), bodies over MAX_BODY_BYTES. The fast path switches itself
off if settings.MIDDLEWARE holds a middleware it does not know the effect of. Django's request_started/finished
signals are not sent for fast answers (their receivers manage database connections, which a fast answer never
touches).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.signals import setting_changed
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port, validate_host
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import Resolver404, resolve, reverse
from django.utils.cache import patch_vary_headers
from rest_framework.exceptions import ParseError
from rest_framework.renderers import JSONRenderer

from rfm_portal.accounts.authentication import APIKeyAuthentication, cached_usable_key
from rfm_portal.accounts.models import APIKey
from rfm_portal.core.parsers import parse_json_bytes
from rfm_portal.mlops.services import cached_active_entry, load_active_entry

logger = logging.getLogger(__name__)

ASGIApp = Callable[[dict, Callable, Callable], Awaitable[None]]
BodyFunction = Callable[[Any], "dict[str, Any] | None"]

MAX_BODY_BYTES = 64 * 1024  # larger bodies (big batches) are scored by Django, in a request thread
ACCEPTED_CONTENT_TYPES = {b"application/json", b"application/json; charset=utf-8", b"application/json;charset=utf-8"}
ACCEPTS = {None, b"*/*", b"application/json"}  # DRF negotiates JSONRenderer, media type without parameters

# Middlewares whose effect on a successful API-key POST the fast path reproduces (headers), or that have
# none: session and CSRF (no cookie on the fast path, csrf_exempt API views), authentication (DRF
# authenticates), messages (none added), login-required (the views opt out), the exception-only ones
# (the fast path raises nothing), WhiteNoise (static paths only), axes (login failures only), audit context
# (no audited write on this path). Any other middleware switches the fast path off.
SESSION_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"
LOGIN_REQUIRED_MIDDLEWARE = "django.contrib.auth.middleware.LoginRequiredMiddleware"
KNOWN_MIDDLEWARE = frozenset({
    "rfm_portal.serving.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    SESSION_MIDDLEWARE,
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    LOGIN_REQUIRED_MIDDLEWARE,
    "rfm_portal.mlops.middleware.JobQueueUnavailableMiddleware",
    "rfm_portal.audit.middleware.AuditContextMiddleware",
    "axes.middleware.AxesMiddleware",
})

_RENDERER = JSONRenderer()
_header_templates: dict[tuple[str, bool], list[tuple[bytes, bytes]]] = {}


def _clear_header_templates(**kwargs: Any) -> None:
    _header_templates.clear()


setting_changed.connect(_clear_header_templates, dispatch_uid="serving.fastpath.header_templates")


def response_headers(view_class: Any, secure: bool) -> list[tuple[bytes, bytes]]:
    """The headers of the Django path's JSON 200 from ``view_class`` (without Content-Length), in its order.

    Built the way that path builds them: DRF's Response and finalize_response, then the middlewares' own
    process_response (XFrameOptions, then CommonMiddleware's Content-Length — appended per answer, in its
    place — then Security). Cached per view and scheme; cleared when a setting changes."""
    key = (view_class.__qualname__, secure)
    cached = _header_templates.get(key)
    if cached is not None:
        return cached
    response = HttpResponse(content_type=_RENDERER.media_type)
    view = view_class()
    view.headers = view.default_response_headers
    vary = view.headers.pop("Vary", None)
    if vary is not None:
        patch_vary_headers(response, [v.strip() for v in vary.split(",")])
    for name, value in view.headers.items():
        response[name] = value
    request = HttpRequest()
    request.is_secure = lambda: secure  # type: ignore[method-assign]
    XFrameOptionsMiddleware(lambda r: response).process_response(request, response)
    if {SESSION_MIDDLEWARE, LOGIN_REQUIRED_MIDDLEWARE} <= set(settings.MIDDLEWARE):
        # LoginRequiredMiddleware reads request.user before it looks at the view's login_not_required, which
        # reads the (empty, cookie-less) session: SessionMiddleware then adds Vary: Cookie, in Vary's place.
        patch_vary_headers(response, ("Cookie",))
    before_length = list(response.items())
    after = SecurityMiddleware(lambda r: response).process_response(request, response)
    headers = [(k.encode("ascii"), v.encode("latin1")) for k, v in before_length]
    headers.append((b"Content-Length", b""))  # placeholder: filled per answer
    headers += [(k.encode("ascii"), v.encode("latin1")) for k, v in list(after.items())[len(before_length):]]
    _header_templates[key] = headers
    return headers


@dataclass(frozen=True)
class Route:
    body: BodyFunction  # request JSON -> the view's 200 body, or None for "Django answers this one"
    view_class: Any  # the DRF view whose answers it reproduces (its headers; it must be the routed view)
    model_kind: str  # the registry kind of the model it scores with


def default_routes() -> dict[str, Route]:
    """path → Route, for the URLs as routed."""
    from churn import api as churn_api
    from churn import services as churn_services
    from cltv import api as cltv_api
    from cltv import services as cltv_services

    return {reverse("churn:api-predict"): Route(churn_api.fast_path_body, churn_api.PredictChurnApi,
                                                churn_services.KIND),
            reverse("cltv:predict"): Route(cltv_api.fast_path_body, cltv_api.PredictCLTVApi, cltv_services.KIND)}


def _authenticate_key(header: str) -> None:
    """APIKeyAuthentication on the header alone (in a thread: it may read the key and record its last use);
    raises AuthenticationFailed as it does."""
    APIKeyAuthentication().authenticate_value(header)


def _closing_connections(function: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        try:
            return function()
        finally:
            connections.close_all()  # this thread's connection goes back to the pool

    return run


class ScoringFastPath:
    """ASGI app: fast answers for eligible scoring requests (see the module docstring), Django for the rest."""

    def __init__(self, django_app: ASGIApp, routes: dict[str, Route] | None = None) -> None:
        self.django = django_app
        self.answered = 0  # fast answers (tests and diagnostics)
        self.handed_on = 0  # scoring-path requests given to Django
        self.refreshes = 0  # cache refreshes run in a thread (each a query or two)
        self._refreshing: dict[str, asyncio.Future] = {}
        self.routes: dict[str, Route] = {}
        unknown = sorted(set(settings.MIDDLEWARE) - KNOWN_MIDDLEWARE)
        if unknown:
            logger.warning("scoring fast path off: unknown middleware %s", ", ".join(unknown))
            return
        for path, route in (default_routes() if routes is None else routes).items():
            try:
                routed = getattr(resolve(path).func, "view_class", None)
            except Resolver404:
                routed = None
            if routed is route.view_class:
                self.routes[path] = route
            else:
                logger.warning("scoring fast path: %s is not routed to %s; left to Django", path,
                               route.view_class.__name__)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        route = self.routes.get(scope.get("path")) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None or scope.get("query_string") or scope.get("root_path") or settings.FORCE_SCRIPT_NAME:
            return await self.django(scope, receive, send)
        eligible = self._eligible(scope)
        if eligible is None or not await self._key_usable(eligible[1]):
            self.handed_on += 1
            return await self.django(scope, receive, send)
        chunks: list[bytes] = []
        size, more = 0, True
        while more and size <= MAX_BODY_BYTES:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before sending its body: nothing to answer (as in Django)
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        content = None if more or not await self._model_fresh(route.model_kind) else self._answer(route, body)
        if content is None:
            self.handed_on += 1
            return await self.django(scope, _replay(body, more, receive), send)
        headers = response_headers(route.view_class, eligible[0]).copy()
        index = headers.index((b"Content-Length", b""))
        headers[index] = (b"Content-Length", str(len(content)).encode("ascii"))
        self.answered += 1
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content, "more_body": False})

    async def _key_usable(self, header: str) -> bool:
        """Whether APIKeyAuthentication accepts the key from this process's cache; if the cache cannot vouch
        for it (not remembered, remembered too long ago, last use to record), authenticate it once in a
        thread, as Django would, and look again. A refused key is left to Django (its 401)."""
        raw_key = header.split()[1]
        if cached_usable_key(raw_key) is not None:
            return True
        try:
            await self._refreshed(f"key:{APIKey.hash_key(raw_key)}", partial(_authenticate_key, header))
        except Exception:  # refused, or the database unavailable: Django answers (401, 503)
            logger.debug("API key not verified on the fast path", exc_info=True)
            return False
        return cached_usable_key(raw_key) is not None

    async def _model_fresh(self, kind: str) -> bool:
        """Whether this process's active model of ``kind`` is fresh; if a recheck is due, recheck it once in a
        thread (load_active_entry, as the view would) and look again."""
        if cached_active_entry(kind) is not None:
            return True
        try:
            await self._refreshed(f"model:{kind}", partial(load_active_entry, kind))
        except Exception:  # no active model, unreadable artifact, database unavailable: Django answers (503)
            logger.debug("no fresh %s model on the fast path", kind, exc_info=True)
            return False
        return cached_active_entry(kind) is not None

    async def _refreshed(self, name: str, function: Callable[[], Any]) -> Any:
        """Run a cache refresh in a thread, once however many requests wait for it (no thundering herd of
        identical queries when a cache interval ends under load); the event loop never waits on the database."""
        future = self._refreshing.get(name)
        if future is None or future.get_loop() is not asyncio.get_running_loop():
            self.refreshes += 1
            future = asyncio.ensure_future(sync_to_async(_closing_connections(function), thread_sensitive=False)())
            self._refreshing[name] = future
            future.add_done_callback(lambda done: self._refreshing.pop(name, None) if
                                     self._refreshing.get(name) is done else None)
        return await asyncio.shield(future)

    @staticmethod
    def _eligible(scope: dict) -> tuple[bool, str] | None:
        """(whether the request is https, for HSTS; its Authorization header), or None if its headers rule
        the fast path out."""
        wanted = {b"authorization": None, b"host": None, b"content-type": None, b"accept": None,
                  b"content-length": None}
        proxy_ssl = settings.SECURE_PROXY_SSL_HEADER
        proxy_header = None
        if proxy_ssl:
            meta_name = proxy_ssl[0]
            if not meta_name.startswith("HTTP_"):
                return None
            proxy_header = meta_name[5:].lower().replace("_", "-").encode("latin1")
            wanted[proxy_header] = None
        forwarded_host = settings.USE_X_FORWARDED_HOST
        for name, value in scope.get("headers", ()):
            name = name.lower()
            if name == b"cookie" or (forwarded_host and name == b"x-forwarded-host"):
                return None  # a browser session (Django decides), or a host only Django's rules resolve
            if name in wanted:
                if b"_" in name or wanted[name] is not None:
                    return None  # repeated: Django joins them with commas
                wanted[name] = value
        if wanted[b"content-type"] not in ACCEPTED_CONTENT_TYPES or wanted[b"accept"] not in ACCEPTS:
            return None
        authorization, host, length = wanted[b"authorization"], wanted[b"host"], wanted[b"content-length"]
        if authorization is None or host is None or length is None or not length.isdigit():
            return None
        if not 0 < int(length) <= MAX_BODY_BYTES:
            return None  # DRF reads no body without a Content-Length; big bodies are Django's
        parts = authorization.decode("latin1").split()
        if len(parts) != 2 or parts[0].lower() != APIKeyAuthentication.keyword.lower():
            return None
        if settings.DISALLOWED_USER_AGENTS or settings.PREPEND_WWW:
            return None
        allowed_hosts = settings.ALLOWED_HOSTS
        if settings.DEBUG and not allowed_hosts:
            allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
        domain, _ = split_domain_port(host.decode("latin1"))
        if not domain or not validate_host(domain, allowed_hosts):
            return None
        if proxy_header is not None and wanted[proxy_header] is not None:
            secure = wanted[proxy_header].decode("latin1").split(",", 1)[0].strip() == proxy_ssl[1]
        else:
            secure = scope.get("scheme") == "https"
        if settings.SECURE_SSL_REDIRECT and not secure:
            return None  # SecurityMiddleware redirects (or exempts) it
        return secure, authorization.decode("latin1")

    @staticmethod
    def _answer(route: Route, body: bytes) -> bytes | None:
        try:
            data = parse_json_bytes(body)
        except ParseError:
            return None  # Django answers with the parser's message
        try:
            answer = route.body(data)
            return None if answer is None else _RENDERER.render(answer)
        except Exception:
            # Not expected (invalid input returns None): Django answers it the ordinary way; logged once here.
            logger.exception("scoring fast path failed; the request goes to Django")
            return None


def _replay(body: bytes, more: bool, receive: Callable) -> Callable:
    """A receive that gives the body already read first, then whatever the client still sends."""
    pending = [{"type": "http.request", "body": body, "more_body": more}]

    async def replay() -> dict:
        return pending.pop() if pending else await receive()

    return replay
