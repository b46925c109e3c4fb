"""Reads of the audit log: filtered entries for the admin page and its CSV."""

from __future__ import annotations

from datetime import date, datetime, time

from django.db.models import QuerySet
from django.utils import timezone

from .models import AuditEntry


def audit_entries(*, action: str = "", actor: str = "", target_type: str = "", since: date | None = None,
                  until: date | None = None) -> QuerySet[AuditEntry]:
    """``action``: an exact action or a family prefix ending in '.' (e.g. ``model.``); ``until`` inclusive."""
    qs = AuditEntry.objects.select_related("actor")
    if action:
        qs = qs.filter(action__startswith=action) if action.endswith(".") else qs.filter(action=action)
    if actor:
        qs = qs.filter(actor_label__iexact=actor)
    if target_type:
        qs = qs.filter(target_type=target_type)
    tz = timezone.get_current_timezone()
    if since:
        qs = qs.filter(at__gte=datetime.combine(since, time.min, tzinfo=tz))
    if until:
        qs = qs.filter(at__lte=datetime.combine(until, time.max, tzinfo=tz))
    return qs.order_by("-at", "-id")


def known_actions() -> list[str]:
    return list(AuditEntry.objects.order_by("action").values_list("action", flat=True).distinct())


def action_families(actions: list[str]) -> list[str]:
    return sorted({a.split(".", 1)[0] + "." for a in actions if "." in a})
