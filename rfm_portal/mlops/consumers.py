"""Websocket feed of job progress: every logged-in user joins the `jobs` group."""

from __future__ import annotations

from channels.generic.websocket import AsyncJsonWebsocketConsumer

JOBS_GROUP = "jobs"


class JobsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        await self.channel_layer.group_add(JOBS_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code) -> None:
        await self.channel_layer.group_discard(JOBS_GROUP, self.channel_name)

    async def job_progress(self, event) -> None:
        await self.send_json(event["job"])
