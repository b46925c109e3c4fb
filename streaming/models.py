"""Streamed events once applied, the change of churn risk each caused, and each customer's live risk."""

from __future__ import annotations

from django.db import models

from rfm_portal.customers.models import Customer
from rfm_portal.mlops.models import ModelVersion


class StreamEvent(models.Model):
    """One applied event. The unique ``event_id`` makes reprocessing a redelivered event a no-op."""

    class Kind(models.TextChoices):
        PURCHASE = "purchase", "Purchase"
        RETURN = "return", "Return"

    event_id = models.CharField(max_length=64, unique=True, help_text="Assigned by the producer.")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    customer_external_id = models.CharField(max_length=64)
    occurred_at = models.DateTimeField()
    amount = models.DecimalField(max_digits=14, decimal_places=4, help_text="Signed: negative for returns.")
    stream_entry_id = models.CharField(max_length=32, blank=True, help_text="Redis Stream entry id (ms-seq).")
    consumer = models.CharField(max_length=128, blank=True)
    processed_at = models.DateTimeField(auto_now_add=True)
    # The rows a batch inserted carry its token, so the batch knows which of its events were new.
    batch_token = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["-processed_at", "-id"]
        indexes = [models.Index(fields=["batch_token"]), models.Index(fields=["processed_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.event_id} ({self.customer_external_id})"


class RiskChange(models.Model):
    """The change of a customer's churn risk (and CLTV P(alive)) caused by one event."""

    event = models.OneToOneField(StreamEvent, on_delete=models.CASCADE, related_name="risk_change")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="risk_changes")
    churn_version = models.ForeignKey(ModelVersion, on_delete=models.SET_NULL, null=True, related_name="+")
    occurred_at = models.DateTimeField()
    old_probability = models.FloatField(null=True, blank=True, help_text="None: never scored before.")
    new_probability = models.FloatField()
    old_band = models.CharField(max_length=8, blank=True)
    new_band = models.CharField(max_length=8)
    old_p_alive = models.FloatField(null=True, blank=True)
    new_p_alive = models.FloatField(null=True, blank=True)
    clv = models.FloatField(null=True, blank=True, help_text="Expected CLV after the event (value at stake).")
    is_alert = models.BooleanField(default=False, help_text="Crossed into high risk or rose sharply.")
    reason = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["is_alert", "-created_at"], name="risk_change_alerts")]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.old_probability} → {self.new_probability}"


class LiveRisk(models.Model):
    """A customer's latest streamed risk (the "old" value for the next event)."""

    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, related_name="live_risk")
    churn_version = models.ForeignKey(ModelVersion, on_delete=models.SET_NULL, null=True, related_name="+")
    probability = models.FloatField()
    band = models.CharField(max_length=8)
    p_alive = models.FloatField(null=True, blank=True)
    clv = models.FloatField(null=True, blank=True)
    as_of = models.DateTimeField(help_text="Time of the event that set it.")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.probability:.3f}"
