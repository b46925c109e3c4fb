"""Django's ASGI handler with the middleware chain and the view run synchronously, in one thread hop.

Every view and middleware of the portal is synchronous. Django's own ASGIHandler loads the
middleware chain in async mode, so each synchronous middleware method and the view hop between the
event loop and the request's thread separately (about twenty hops per request). Here the chain is
loaded in sync mode and run, with the view, in one hop to the request's thread (Django's
ThreadSensitiveContext, so the database connection is used and given back to the pool on one thread).
Everything else — reading the body, the request signals, streaming the response — is Django's.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponseBase


class SyncChainASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)
