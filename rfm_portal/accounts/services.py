"""Writes for users, roles and API keys. Views and commands call these, never the ORM directly."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .authentication import forget_api_key
from .models import APIKey, User


def user_create(*, username: str, password: str, role: str, email: str = "") -> User:
    """A new portal user. The password must pass the project's password validators."""
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": "A user with that username already exists."})
    if role not in User.Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}."})
    candidate = User(username=username, email=email, role=role)
    validate_password(password, user=candidate)
    return User.objects.create_user(username=username, email=email, password=password, role=role)


def _other_active_admins(user: User) -> bool:
    return User.objects.filter(is_active=True, role=User.Role.ADMIN).exclude(pk=user.pk).exists()


@transaction.atomic
def user_change_role(*, user: User, role: str, by: User) -> User:
    if role not in User.Role.values:
        raise ValidationError(f"Unknown role {role!r}.")
    # Lock the admins so two concurrent demotions cannot leave the portal without one.
    list(User.objects.select_for_update().filter(role=User.Role.ADMIN, is_active=True))
    if user.role == User.Role.ADMIN and role != User.Role.ADMIN and not _other_active_admins(user):
        raise ValidationError("The last active admin cannot be demoted.")
    user.role = role
    user.save(update_fields=["role"])
    return user


@transaction.atomic
def user_deactivate(*, user: User, by: User) -> User:
    """Deactivate rather than delete: history (jobs, keys, model versions) keeps its author."""
    if user.pk == by.pk:
        raise ValidationError("You cannot deactivate your own account.")
    list(User.objects.select_for_update().filter(role=User.Role.ADMIN, is_active=True))
    if user.role == User.Role.ADMIN and user.is_active and not _other_active_admins(user):
        raise ValidationError("The last active admin cannot be deactivated.")
    user.is_active = False
    user.save(update_fields=["is_active"])
    return user


@dataclass(frozen=True)
class CreatedAPIKey:
    api_key: APIKey
    raw_key: str  # shown once; only its hash is stored


def api_key_create(*, name: str, expires_in_days: int | None = None, created_by: User | None = None) -> CreatedAPIKey:
    name = name.strip()
    if not name:
        raise ValidationError({"name": "A name is required."})
    if expires_in_days is not None and expires_in_days < 1:
        raise ValidationError({"expires_in_days": "Expiry must be at least one day."})
    raw = APIKey.generate_raw_key()
    expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
    api_key = APIKey.objects.create(
        name=name,
        prefix=raw.split(".", 1)[0],
        hashed_key=APIKey.hash_key(raw),
        created_by=created_by,
        expires_at=expires_at,
    )
    return CreatedAPIKey(api_key=api_key, raw_key=raw)


def api_key_revoke(*, api_key: APIKey) -> APIKey:
    # Conditional update: revoking twice keeps the first revocation time.
    revoked = APIKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key.refresh_from_db(fields=["revoked_at"])
    if revoked:
        from rfm_portal.audit.signals import api_key_revoked

        api_key_revoked(api_key)
    forget_api_key(api_key.hashed_key)  # this process stops accepting it now; others within API_KEY_CACHE_SECONDS
    return api_key


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    role: str
    created: bool


def generate_password() -> str:
    return secrets.token_urlsafe(12)


@transaction.atomic
def demo_user_ensure(*, username: str, role: str, password: str | None) -> DemoLogin:
    """Idempotent: creates the user, or brings an existing one back to the given role.

    An existing user's password is only replaced when one is given, so a second run of
    the run script does not lock out someone who already logged in.
    """
    user = User.objects.select_for_update().filter(username=username).first()
    if user is None:
        password = password or generate_password()
        User.objects.create_user(username=username, password=password, role=role)
        return DemoLogin(username, password, role, created=True)
    user.role = role
    user.is_active = True
    fields = ["role", "is_active"]
    if password:
        user.set_password(password)
        fields.append("password")
    user.save(update_fields=fields)
    return DemoLogin(username, password or "(unchanged)", role, created=False)
