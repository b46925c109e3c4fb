"""One global, append-only log of security- and model-relevant actions."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    """Who did what to which object, when and from where.

    Never holds a customer's personal data: targets are named by type and database id only, and details
    carry counts, statuses and versions (see ``services.record``, which refuses customer keys).
    """

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="+")
    # Kept when the user is later removed, and for failed logins (no user): the name that was typed.
    actor_label = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=48, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    details = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        who = self.actor_label or "-"
        return f"{self.at:%Y-%m-%d %H:%M:%S} {who} {self.action} {self.target_type}:{self.target_id}"
