"""A user deactivated (by the accounts service, the admin site or a shell) loses their open websockets."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from .models import User

logger = logging.getLogger(__name__)


def close_user_sockets(user_id: int) -> None:
    """Ask every consumer in the user's group to close (see mlops.consumers.JobsConsumer)."""
    from rfm_portal.mlops.consumers import user_group

    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(user_group(user_id), {"type": "user.deactivated"})
    except Exception:  # layer down: each socket still re-checks its user on its next message
        logger.warning("could not close the websockets of user %s", user_id, exc_info=True)


@receiver(post_save, sender=User, dispatch_uid="accounts.close_sockets_of_inactive_user")
def _close_sockets_of_inactive_user(sender, instance: User, update_fields=None, **kwargs) -> None:
    if instance.is_active or (update_fields is not None and "is_active" not in update_fields):
        return
    user_id = instance.pk
    transaction.on_commit(lambda: close_user_sockets(user_id))
