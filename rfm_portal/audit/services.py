"""Writes to the audit log. Other apps call ``record``; most entries come from signals (``signals.py``).

An entry must never carry a customer's personal data: a customer is named by database id only and the
details hold counts, statuses and versions. ``record`` refuses detail keys that usually hold such data,
so a careless caller fails in tests rather than leaking into the log.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import models

from .models import AuditEntry

logger = logging.getLogger(__name__)

# Keys that identify or describe a person; the audit log keeps ids and counts only.
FORBIDDEN_DETAIL_KEYS = frozenset({
    "external_id", "customer_external_id", "email", "name", "first_name", "last_name", "country", "address",
    "phone", "attributes", "customer", "customers", "customer_ids", "transactions", "password",
})

# The user and address of the request (or command) being served: set by AuditContextMiddleware,
# so signal receivers deep inside services know who acted without every service taking a user.
_current: contextvars.ContextVar[tuple[Any, str | None] | None] = contextvars.ContextVar("audit_actor", default=None)


@contextmanager
def acting_as(user, ip_address: str | None = None) -> Iterator[None]:
    token = _current.set((user, ip_address))
    try:
        yield
    finally:
        _current.reset(token)


def current_actor() -> tuple[Any, str | None]:
    return _current.get() or (None, None)


def _check_details(details: dict[str, Any], path: str = "") -> None:
    for key, value in details.items():
        if str(key).lower() in FORBIDDEN_DETAIL_KEYS:
            raise ValueError(f"audit details must not hold personal data: {path}{key}")
        if isinstance(value, dict):
            _check_details(value, f"{path}{key}.")


def _target(target: Any) -> tuple[str, str]:
    if target is None:
        return "", ""
    if isinstance(target, models.Model):
        return target._meta.label_lower, str(target.pk)
    if isinstance(target, tuple):
        return str(target[0]), str(target[1])
    return str(target), ""


def record(actor: Any, action: str, target: Any = None, details: dict[str, Any] | None = None, *,
           actor_label: str = "", ip_address: str | None = None) -> AuditEntry:
    """Append one entry. ``actor`` is a user (or None: the current request's user, else the system);
    ``target`` a model instance, a ``(type, id)`` pair or a string; ``details`` JSON of ids and counts."""
    details = dict(details or {})
    _check_details(details)
    context_user, context_ip = current_actor()
    if actor is None:
        actor = context_user
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    target_type, target_id = _target(target)
    return AuditEntry.objects.create(
        actor=actor if actor is not None and actor.pk else None,
        actor_label=actor_label or (actor.get_username() if actor is not None else "system"),
        action=action, target_type=target_type, target_id=target_id, details=details,
        ip_address=ip_address or context_ip,
    )


def record_safely(*args: Any, **kwargs: Any) -> AuditEntry | None:
    """``record`` for signal receivers: a failing audit write is logged, never breaks the action itself
    (a bad detail key still raises: that is a programming error)."""
    try:
        return record(*args, **kwargs)
    except ValueError:
        raise
    except Exception:
        logger.exception("audit entry %s could not be written", args[1] if len(args) > 1 else kwargs.get("action"))
        return None
