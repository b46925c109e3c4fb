"""ReDoc's standalone bundle, served with its one outside reference replaced.

drf-spectacular-sidecar ships ReDoc locally, but the bundle's sidebar footer still loads
"https://cdn.redoc.ly/redoc/logo-mini.svg" from Redocly's CDN on every visit (found by the browser
suite). This view serves the sidecar's file with that URL pointed at the portal's own icon;
SPECTACULAR_SETTINGS["REDOC_DIST"] points ReDoc here; like the docs page, it needs a login.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import drf_spectacular_sidecar
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

REDOC_CDN_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
SIDECAR_STATIC = Path(drf_spectacular_sidecar.__file__).parent / "static" / "drf_spectacular_sidecar"
BUNDLE = SIDECAR_STATIC / "redoc" / "bundles" / "redoc.standalone.js"


@lru_cache(maxsize=1)
def _bundle() -> bytes:
    return BUNDLE.read_text(encoding="utf-8").replace(REDOC_CDN_LOGO, static("favicon.svg")).encode("utf-8")


@require_GET
@cache_control(public=True, max_age=86400)
def redoc_bundle(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_bundle(), content_type="application/javascript; charset=utf-8")


@login_not_required  # the browser asks before anyone logs in
@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """/favicon.ico for pages without a <link rel="icon"> (CSV downloads, raw JSON): the portal's SVG icon."""
    return HttpResponsePermanentRedirect(static("favicon.svg"))  # resolved per request: manifest names in production
