"""DRF authentication by API key: `Authorization: Api-Key <key>`.

A CRM scores in tight loops, so a verified key is remembered in this process for
API_KEY_CACHE_SECONDS (settings; default 10 s): a scoring call then needs no database
connection at all. Revoking, expiring or deleting a key through the ORM forgets it here at once
(signals below); other processes stop accepting it within API_KEY_CACHE_SECONDS.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from rest_framework import authentication, exceptions

from .models import APIKey

LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_CACHED_KEYS = 1_000  # distinct valid keys remembered per process; past it the cache starts over

# hashed key -> (monotonic time it was read from the database, the key as read then)
_verified: dict[str, tuple[float, APIKey]] = {}
_verified_lock = threading.Lock()


def forget_api_key(hashed_key: str | None = None) -> None:
    """Drop one key (or all) from this process's cache of verified keys."""
    with _verified_lock:
        if hashed_key is None:
            _verified.clear()
        else:
            _verified.pop(hashed_key, None)


@receiver(post_save, sender=APIKey, dispatch_uid="accounts.forget_api_key_on_save")
@receiver(post_delete, sender=APIKey, dispatch_uid="accounts.forget_api_key_on_delete")
def _forget_changed_key(sender, instance: APIKey, **kwargs) -> None:
    forget_api_key(instance.hashed_key)


def _lookup(hashed_key: str) -> APIKey:
    ttl = float(getattr(settings, "API_KEY_CACHE_SECONDS", 0))
    now = time.monotonic()
    cached = _verified.get(hashed_key)
    if cached is not None and now - cached[0] < ttl:
        return cached[1]
    try:
        api_key = APIKey.objects.get(hashed_key=hashed_key)
    except APIKey.DoesNotExist:
        forget_api_key(hashed_key)
        raise exceptions.AuthenticationFailed("Unknown API key.") from None
    if ttl > 0:
        with _verified_lock:
            if len(_verified) >= MAX_CACHED_KEYS:
                _verified.clear()
            _verified[hashed_key] = (now, api_key)
    return api_key


def cached_usable_key(raw_key: str) -> APIKey | None:
    """The key if APIKeyAuthentication would accept it right now without touching the database: remembered and
    fresh in this process's cache, not revoked, not expired, and its last_used_at recent enough not to be
    written. None otherwise (then the ordinary authentication decides, with its queries and its messages).

    For the scoring fast path (rfm_portal.serving.fastpath), which runs on the event loop and never queries.
    """
    cached = _verified.get(APIKey.hash_key(raw_key))
    if cached is None or time.monotonic() - cached[0] >= float(getattr(settings, "API_KEY_CACHE_SECONDS", 0)):
        return None
    api_key = cached[1]
    if api_key.revoked_at is not None or api_key.last_used_at is None:
        return None
    now = timezone.now()
    if api_key.expires_at is not None and api_key.expires_at <= now:
        return None
    if now - api_key.last_used_at >= LAST_USED_RESOLUTION:
        return None
    return api_key


class APIKeyUser:
    """The request.user of an integration: authenticated, never a portal admin."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    is_portal_admin = False
    role = "integration"

    def __init__(self, api_key: APIKey) -> None:
        self.api_key = api_key
        self.pk = None
        self.id = None
        self.username = f"api-key:{api_key.prefix}"

    def __str__(self) -> str:
        return self.username


class APIKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request):
        return self.authenticate_value(authentication.get_authorization_header(request).decode("latin-1"))

    def authenticate_value(self, header: str) -> tuple[APIKeyUser, APIKey] | None:
        """authenticate() on the Authorization header's value (also the scoring fast path's, in a thread)."""
        if not header:
            return None
        parts = header.split()
        if not parts or parts[0].lower() != self.keyword.lower():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Malformed Api-Key header: expected 'Api-Key <key>'.")
        api_key = _lookup(APIKey.hash_key(parts[1]))
        if api_key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API key has been revoked.")
        now = timezone.now()
        if api_key.expires_at is not None and api_key.expires_at <= now:
            raise exceptions.AuthenticationFailed("This API key has expired.")
        if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_RESOLUTION:
            # One write a minute per key at most: a CRM scoring in a loop should not pay an UPDATE per call.
            APIKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
            api_key.last_used_at = now
        return (APIKeyUser(api_key), api_key)

    def authenticate_header(self, request) -> str:
        return self.keyword
