"""Per-customer uplift scores, one row per (customer, model version), so history is kept."""

from __future__ import annotations

from django.db import models

from rfm_portal.customers.models import Customer
from rfm_portal.mlops.models import ModelVersion


class UpliftScore(models.Model):
    """What contacting a customer would change, under one uplift model version, as of its data cut-off.

    ``uplift`` is the effect of contact on the probability of buying in the campaign's outcome window
    (with a 95 % interval); ``revenue_uplift`` the effect on revenue in that window; ``baseline`` the
    probability of buying without contact. ``expected_profit`` and ``recommendation`` use the default
    profit inputs of the version (the page and the API recompute them for other inputs).
    """

    class Group(models.TextChoices):
        PERSUADABLE = "persuadable", "Persuadable"
        SURE_THING = "sure_thing", "Sure thing"
        LOST_CAUSE = "lost_cause", "Lost cause"
        SLEEPING_DOG = "sleeping_dog", "Sleeping dog"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="uplift_scores")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="uplift_scores")
    uplift = models.FloatField(help_text="Effect of contact on P(buy in the outcome window)")
    uplift_low = models.FloatField()
    uplift_high = models.FloatField()
    baseline = models.FloatField(help_text="P(buy in the outcome window) without contact")
    revenue_uplift = models.FloatField(help_text="Effect of contact on revenue in the outcome window")
    group = models.CharField(max_length=16, choices=Group.choices)
    expected_profit = models.FloatField()
    contact = models.BooleanField(help_text="Recommendation under the default profit inputs")
    scored_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "model_version"], name="unique_uplift_score_per_version"),
        ]
        indexes = [
            models.Index(fields=["model_version", "-expected_profit"], name="uplift_score_version_profit"),
            models.Index(fields=["model_version", "group"], name="uplift_score_version_group"),
        ]

    def __str__(self) -> str:
        return f"Uplift {self.customer_id} v{self.model_version_id}: {self.uplift:+.3f}"
