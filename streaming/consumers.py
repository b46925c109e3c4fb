"""Websocket of the Live feed: logged-in users join the `live` group; a snapshot on every connect."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from .feed import LIVE_GROUP
from .selectors import snapshot


class LiveFeedConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        await self.channel_layer.group_add(LIVE_GROUP, self.channel_name)
        await self.accept()
        # joined first, then the snapshot: nothing pushed in between is missed (at worst seen twice)
        await self.send_json(await database_sync_to_async(snapshot)())

    async def disconnect(self, code) -> None:
        await self.channel_layer.group_discard(LIVE_GROUP, self.channel_name)

    async def live_batch(self, event) -> None:
        await self.send_json(event["payload"])
