"""An in-memory channel layer that Celery's embedded worker thread can send to.

The stock InMemoryChannelLayer keeps asyncio queues bound to the web server's event
loop; a send from another thread's loop would not wake that loop. This layer notes
the loop that receives and hands sends from any other loop over to it. Embedded runs
only (one process); production uses channels-redis.
"""

from __future__ import annotations

import asyncio

from channels.layers import InMemoryChannelLayer


class ThreadSafeInMemoryChannelLayer(InMemoryChannelLayer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._home_loop: asyncio.AbstractEventLoop | None = None

    def _foreign_loop(self) -> asyncio.AbstractEventLoop | None:
        home = self._home_loop
        if home is None or home.is_closed() or not home.is_running():
            return None
        return None if asyncio.get_running_loop() is home else home

    async def receive(self, channel):
        self._home_loop = asyncio.get_running_loop()
        return await super().receive(channel)

    async def send(self, channel, message):
        home = self._foreign_loop()
        if home is None:
            return await super().send(channel, message)
        future = asyncio.run_coroutine_threadsafe(super().send(channel, message), home)
        return await asyncio.wrap_future(future)

    async def group_send(self, group, message):
        home = self._foreign_loop()
        if home is None:
            return await super().group_send(group, message)
        future = asyncio.run_coroutine_threadsafe(super().group_send(group, message), home)
        return await asyncio.wrap_future(future)
