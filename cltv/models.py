"""Per-customer CLTV scores, one row per (customer, model version), so history is kept."""

from __future__ import annotations

from django.db import models

from rfm_portal.customers.models import Customer
from rfm_portal.mlops.models import ModelVersion


class CLTVScore(models.Model):
    """Scores of one customer under one CLTV model version (as of the version's data cut-off).

    Times (recency, T) are in the model's unit (``model_version.params["unit"]``); CLV and its
    P10/P50/P90 are for the settings the version was trained with (horizon, discount, margin).
    """

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="cltv_scores")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="cltv_scores")
    first_purchase = models.DateField()
    frequency = models.PositiveIntegerField(help_text="repeat purchase days")
    recency = models.FloatField()
    T = models.FloatField()
    monetary = models.FloatField(help_text="mean value of repeat purchase days")
    p_alive = models.FloatField()
    expected_purchases_30d = models.FloatField()
    expected_purchases_90d = models.FloatField()
    expected_purchases_365d = models.FloatField()
    expected_aov = models.FloatField()
    clv = models.FloatField()
    clv_p10 = models.FloatField()
    clv_p50 = models.FloatField()
    clv_p90 = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "model_version"], name="unique_cltv_score_per_version"),
        ]
        indexes = [
            models.Index(fields=["model_version", "-clv"], name="cltv_score_version_clv"),
            # The customer table's default order (CLV P50, highest first) walks it for a page's rows.
            models.Index(fields=["model_version", "-clv_p50"], name="cltv_score_version_clv_p50"),
        ]

    def __str__(self) -> str:
        return f"CLTV {self.customer_id} v{self.model_version_id}: {self.clv:.2f}"
