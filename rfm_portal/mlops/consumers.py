"""Websocket feed of job progress: every logged-in user joins the `jobs` group.

Each socket also joins its user's own group, so deactivating the user closes it at once
(accounts.signals sends `user.deactivated`); every job message also re-checks the user at
most once per USER_RECHECK_SECONDS, which catches deactivations made behind the ORM's back.
When the channel layer (Redis) is down the socket is accepted and closed with 1013 "try
again later", never a 500; the Jobs page reconnects with back-off.
"""

from __future__ import annotations

import asyncio
import logging
import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

logger = logging.getLogger(__name__)

JOBS_GROUP = "jobs"
USER_RECHECK_SECONDS = 30
CLOSE_LOGGED_OUT = 4401
CLOSE_DEACTIVATED = 4403
CLOSE_TRY_AGAIN_LATER = 1013


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


class JobsConsumer(AsyncJsonWebsocketConsumer):
    _layer_failed = False
    _user_checked_at = 0.0

    # AsyncConsumer.__call__ assigns channel_receive from the layer and awaits it beside the
    # socket; a layer error there would crash the connection (a 500 at handshake). This
    # property keeps our own, error-tolerant receive in its place.
    @property
    def channel_receive(self):
        return self._receive_from_layer

    @channel_receive.setter
    def channel_receive(self, _value) -> None:
        pass

    async def _receive_from_layer(self) -> dict:
        if not self._layer_failed:
            try:
                return await self.channel_layer.receive(self.channel_name)
            except Exception as error:
                logger.warning("channel layer unavailable for %s: %r", self.channel_name, error)
                self._layer_failed = True
                return {"type": "layer.unavailable"}
        await asyncio.Event().wait()  # the socket side carries on until it closes
        return {}

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_LOGGED_OUT)
            return
        self._user_checked_at = time.monotonic()
        try:
            await self.channel_layer.group_add(JOBS_GROUP, self.channel_name)
            await self.channel_layer.group_add(user_group(user.pk), self.channel_name)
        except Exception as error:
            logger.warning("channel layer unavailable; live job updates refused: %r", error)
            self._layer_failed = True
            await self.accept()
            await self.layer_unavailable({})
            return
        await self.accept()

    async def disconnect(self, code) -> None:
        if self._layer_failed:
            return
        user = self.scope.get("user")
        try:
            await self.channel_layer.group_discard(JOBS_GROUP, self.channel_name)
            if user is not None and user.is_authenticated:
                await self.channel_layer.group_discard(user_group(user.pk), self.channel_name)
        except Exception as error:  # the group entries expire on their own
            logger.warning("could not leave the jobs group: %r", error)

    async def layer_unavailable(self, event) -> None:
        await self.send_json({"unavailable": "Live updates are paused: the message service is unreachable."})
        await self.close(code=CLOSE_TRY_AGAIN_LATER)

    async def user_deactivated(self, event) -> None:
        await self.close(code=CLOSE_DEACTIVATED)

    async def job_progress(self, event) -> None:
        if time.monotonic() - self._user_checked_at > USER_RECHECK_SECONDS:
            self._user_checked_at = time.monotonic()
            if not await self._user_still_active():
                await self.close(code=CLOSE_DEACTIVATED)
                return
        await self.send_json(event["job"])

    @database_sync_to_async
    def _user_still_active(self) -> bool:
        from django.contrib.auth import get_user_model

        user = self.scope["user"]
        return get_user_model().objects.filter(pk=user.pk, is_active=True).exists()
