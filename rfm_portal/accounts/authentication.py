"""DRF authentication by API key: `Authorization: Api-Key <key>`."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions

from .models import APIKey

LAST_USED_RESOLUTION = timedelta(minutes=1)


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
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if not parts or parts[0].lower() != self.keyword.lower():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Malformed Api-Key header: expected 'Api-Key <key>'.")
        raw_key = parts[1]
        try:
            api_key = APIKey.objects.get(hashed_key=APIKey.hash_key(raw_key))
        except APIKey.DoesNotExist:
            raise exceptions.AuthenticationFailed("Unknown API key.") from None
        if api_key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API key has been revoked.")
        if api_key.expires_at is not None and api_key.expires_at <= timezone.now():
            raise exceptions.AuthenticationFailed("This API key has expired.")
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_RESOLUTION:
            # One write a minute per key at most: a CRM scoring in a loop should not pay an UPDATE per call.
            APIKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        return (APIKeyUser(api_key), api_key)

    def authenticate_header(self, request) -> str:
        return self.keyword
