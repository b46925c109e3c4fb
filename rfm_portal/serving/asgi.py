"""Django's ASGI handler, cheaper per request: one thread hop for the whole synchronous chain, reused threads.

Every view and middleware of the portal is synchronous. Django's own ASGIHandler

* loads the middleware chain in async mode, so each synchronous middleware method and the view hop
  between the event loop and the request's thread separately (about twenty hops per request). Here
  the chain is loaded in sync mode and runs, with the view, in one hop;
* gives every request a ThreadSensitiveContext with a new single-thread executor, i.e. starts and
  stops an OS thread per request. Here each request still gets its own context and its own thread
  for its whole life (so its database connection is opened, used and given back to the pool on one
  thread, as under a threaded WSGI server), but the single-thread executors are kept and reused.

Everything else — reading the body, the request signals, streaming the response, cancelling on a
client disconnect — is Django's. Measured in docs/benchmarks.md (issue 9).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponseBase

MAX_IDLE_THREADS = 64  # request threads kept per process for reuse; more are stopped when their request ends


class SyncChainASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        # Used only from the event loop's thread: no lock needed.
        self._idle_executors: list[ThreadPoolExecutor] = []

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        idle = self._idle_executors
        executor = idle.pop() if idle else ThreadPoolExecutor(max_workers=1, thread_name_prefix="django-request")
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            if len(idle) < MAX_IDLE_THREADS:
                idle.append(executor)
            else:
                executor.shutdown(wait=False)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)
