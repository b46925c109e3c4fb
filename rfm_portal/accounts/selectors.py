"""Reads for the user and API-key admin pages."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from .models import APIKey, User


def user_list() -> QuerySet[User]:
    return User.objects.order_by("-is_active", "username")


def user_get(pk: int) -> User:
    return get_object_or_404(User, pk=pk)


def api_key_list() -> QuerySet[APIKey]:
    return APIKey.objects.select_related("created_by").order_by("-created_at", "-id")


def api_key_get(pk: int) -> APIKey:
    return get_object_or_404(APIKey, pk=pk)
