"""Per-customer churn scores, one row per (customer, model version), so history is kept."""

from __future__ import annotations

from django.db import models

from rfm_portal.customers.models import Customer
from rfm_portal.mlops.models import ModelVersion


class ChurnScore(models.Model):
    """A customer's churn risk under one churn model version, as of the version's data cut-off.

    ``features`` are the model inputs exactly as ``build_features`` computed them at the cut-off
    (so the page can explain the score without recomputing it); ``top_contributions`` are the
    champion's three largest SHAP contributions (log-odds).
    """

    class Band(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="churn_scores")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="churn_scores")
    probability = models.FloatField(help_text="P(no purchase within the horizon after the cut-off)")
    risk_band = models.CharField(max_length=8, choices=Band.choices)
    top_contributions = models.JSONField(default=list, blank=True)
    features = models.JSONField(default=dict, blank=True)
    scored_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "model_version"], name="unique_churn_score_per_version"),
        ]
        indexes = [models.Index(fields=["model_version", "-probability"], name="churn_score_version_proba")]

    def __str__(self) -> str:
        return f"Churn {self.customer_id} v{self.model_version_id}: {self.probability:.3f}"
