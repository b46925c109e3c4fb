"""Role checks, enforced on the server for both pages and API views."""

from __future__ import annotations

from functools import wraps

from django.core.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission


def is_portal_admin(user) -> bool:
    return bool(getattr(user, "is_portal_admin", False))


class IsPortalAdmin(BasePermission):
    message = "Admins only."

    def has_permission(self, request, view) -> bool:
        return is_portal_admin(request.user)


class IsPortalUser(BasePermission):
    """A logged-in person (analyst or admin), not an integration key."""

    message = "Portal users only."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and getattr(request.user, "pk", None))


def admin_required(view_func):
    """Page decorator: 403 for logged-in non-admins (login itself is enforced by middleware)."""

    @wraps(view_func)
    def wrapper(request, *args, **kwargs):
        if not is_portal_admin(request.user):
            raise PermissionDenied("Admins only.")
        return view_func(request, *args, **kwargs)

    return wrapper
