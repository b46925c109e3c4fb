"""Campaigns: the plan (who, which channel, what effect and profit), its approval trail, its message templates."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from rfm_portal.customers.models import Audience, Customer
from rfm_portal.mlops.models import Job


class Goal(models.TextChoices):
    RETAIN = "retain", "Retain (keep customers who may leave)"
    WIN_BACK = "win_back", "Win back (lapsed customers)"
    GROW = "grow", "Grow (more from active customers)"


class MessageTemplate(models.Model):
    """A message for a goal (and optionally one RFM segment) with {{ placeholders }} from campaigns.pipeline."""

    name = models.CharField(max_length=120, unique=True)
    goal = models.CharField(max_length=16, choices=Goal.choices)
    segment = models.CharField(max_length=32, blank=True, help_text="RFM segment it is written for; blank = any")
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["goal", "segment", "name"]

    def __str__(self) -> str:
        return self.name


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SUBMITTED = "submitted", "Submitted for approval"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        EXPORTED = "exported", "Exported"
        MEASURED = "measured", "Results measured"
        CLOSED = "closed", "Closed"

    # The name is what outcomes are imported under (CampaignHistory.campaign has 64 characters).
    name = models.CharField(max_length=64, unique=True)
    goal = models.CharField(max_length=16, choices=Goal.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    # SET_NULL so deleting an audience never fails; audience_name remembers it, and planning then refuses (rather
    # than silently widening the campaign to every customer).
    audience = models.ForeignKey(Audience, on_delete=models.SET_NULL, null=True, blank=True, related_name="campaigns")
    audience_name = models.CharField(max_length=120, blank=True)
    segments = models.JSONField(default=list, blank=True, help_text="RFM segments (empty = any)")
    clusters = models.JSONField(default=list, blank=True, help_text="cluster numbers (empty = any)")
    filters = models.JSONField(default=dict, blank=True, help_text="churn risk, CLV, P(alive), uplift group, country")
    channels = models.JSONField(default=list, help_text="[{name, cost, effect_factor}]")
    incentive_cost = models.FloatField(default=0.0, help_text="paid per customer who redeems the offer")
    margin = models.FloatField(default=0.4, help_text="share of revenue kept")
    budget = models.FloatField()
    holdout_share = models.FloatField(default=0.1)
    segment_caps = models.JSONField(default=dict, blank=True, help_text="{segment: max contacts}")
    fatigue_days = models.PositiveIntegerField(default=14)
    offer = models.CharField(max_length=200, blank=True)
    template = models.ForeignKey(MessageTemplate, on_delete=models.SET_NULL, null=True, blank=True,
                                 related_name="campaigns", help_text="blank = the library's template per segment")
    scheduled_for = models.DateField(null=True, blank=True)
    holdout_seed = models.BigIntegerField(default=0)
    plan = models.JSONField(default=dict, blank=True, help_text="planner summary: totals, curve, naive rules, segments")
    planned_at = models.DateTimeField(null=True, blank=True)
    plan_job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    results = models.JSONField(default=dict, blank=True)
    measured_at = models.DateTimeField(null=True, blank=True)
    review_comment = models.TextField(blank=True)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    exported_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name

    @property
    def has_plan(self) -> bool:
        return bool(self.planned_at)

    @property
    def exportable(self) -> bool:
        return self.status in (self.Status.APPROVED, self.Status.EXPORTED, self.Status.MEASURED, self.Status.CLOSED)


class CampaignTarget(models.Model):
    class Arm(models.TextChoices):
        CONTACT = "contact", "Contact"
        HOLDOUT = "holdout", "Holdout (not contacted, for measurement)"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="targets", db_index=False)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="campaign_targets")
    arm = models.CharField(max_length=8, choices=Arm.choices)
    channel = models.CharField(max_length=32)
    segment = models.CharField(max_length=32, blank=True)
    predicted_effect = models.FloatField(help_text="predicted change in P(buy) from contact on this channel")
    expected_profit = models.FloatField()
    spend = models.FloatField(help_text="expected cost: contact + incentive × P(buy | contacted)")
    message = models.TextField(blank=True, help_text="rendered, HTML-escaped")

    class Meta:
        ordering = ["campaign", "id"]
        constraints = [models.UniqueConstraint(fields=["campaign", "customer"], name="one_target_per_campaign")]
        indexes = [models.Index(fields=["campaign", "arm", "id"], name="campaign_target_arm")]

    def __str__(self) -> str:
        return f"{self.campaign_id}:{self.customer_id} {self.arm}"


class CampaignAuditLog(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="audit_log")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                             related_name="+")
    action = models.CharField(max_length=32)
    changes = models.JSONField(default=dict, blank=True)
    comment = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.campaign_id} {self.action} {self.at:%Y-%m-%d %H:%M}"
