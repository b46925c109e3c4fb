"""ASGI entry point: HTTP through Django (single-payload scoring calls by API key answered by the fast path in
front of it, rfm_portal.serving.fastpath), websockets through Channels (login required)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rfm_portal.settings")
django.setup(set_prefix=False)

from rfm_portal.serving.asgi import SyncChainASGIHandler  # noqa: E402
from rfm_portal.serving.fastpath import ScoringFastPath  # noqa: E402

# Django's ASGI handler, with the (all synchronous) middleware chain and view in one thread hop.
django_asgi_app = SyncChainASGIHandler()
http_app = ScoringFastPath(django_asgi_app)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from rfm_portal.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
