"""Segmentation scores: one row per customer and model version, so history is kept and a
rolled-back version still has its scores."""

from __future__ import annotations

from django.db import models

from rfm_portal.customers.models import Customer
from rfm_portal.mlops.models import ModelVersion
from segmentation.segment_map import SEGMENT_NAMES


class RFMScore(models.Model):
    """A customer's RFM values, quintile scores, named segment and K-Means cluster in one run."""

    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="rfm_scores", db_index=False
    )  # the unique (model_version, customer) index serves lookups by version
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="rfm_scores", db_index=False)
    recency_days = models.PositiveIntegerField(help_text="Days from the last purchase day to the cut-off day.")
    frequency = models.PositiveIntegerField(help_text="Distinct purchase invoices before the cut-off.")
    monetary = models.DecimalField(max_digits=16, decimal_places=4, help_text="Net revenue after returns.")
    first_purchase = models.DateTimeField()
    last_purchase = models.DateTimeField()
    r_score = models.PositiveSmallIntegerField()
    f_score = models.PositiveSmallIntegerField()
    m_score = models.PositiveSmallIntegerField()
    rfm_code = models.CharField(max_length=3)
    segment = models.CharField(max_length=32, choices=[(name, name) for name in SEGMENT_NAMES])
    cluster = models.PositiveSmallIntegerField(help_text="0 = the cluster with the highest mean monetary value.")
    cluster_name = models.CharField(max_length=64)

    class Meta:
        ordering = ["model_version", "customer"]
        constraints = [
            models.UniqueConstraint(fields=["model_version", "customer"], name="one_rfm_score_per_customer_version")
        ]
        indexes = [
            models.Index(fields=["model_version", "segment"], name="rfmscore_version_segment"),
            models.Index(fields=["model_version", "cluster"], name="rfmscore_version_cluster"),
            # Deleting a customer cascades here; also serves a customer's history across versions.
            models.Index(fields=["customer"], name="rfmscore_customer"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} v{self.model_version_id} {self.rfm_code} {self.segment}"


class SegmentationReport(models.Model):
    """The statistics behind one version's pages (segment and cluster tables, Pareto curve, R × F
    grid, k search, migration), computed once at training time. The registry's ``metrics`` keep
    only the headline numbers, so the Models page stays readable."""

    model_version = models.OneToOneField(
        ModelVersion, on_delete=models.CASCADE, primary_key=True, related_name="segmentation_report"
    )
    data = models.JSONField()

    def __str__(self) -> str:
        return f"segmentation report v{self.model_version_id}"
