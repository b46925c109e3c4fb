"""Model registry (ModelVersion) and long-running work (Job)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class ModelVersion(models.Model):
    class Status(models.TextChoices):
        TRAINING = "training", "Training"
        READY = "ready", "Ready"
        ACTIVE = "active", "Active"
        FAILED = "failed", "Failed"
        RETIRED = "retired", "Retired"

    kind = models.CharField(max_length=32, help_text="e.g. segmentation, cltv, churn, uplift, embeddings")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.TRAINING)
    params = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    artifact_path = models.CharField(max_length=500, blank=True)
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    data_cutoff = models.DateTimeField(null=True, blank=True)
    model_card = models.TextField(blank=True)
    trained_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["kind", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "version"], name="unique_version_per_kind"),
            # The database itself guarantees one active version per kind.
            models.UniqueConstraint(fields=["kind"], condition=Q(status="active"), name="one_active_version_per_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} v{self.version} ({self.status})"


class Job(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=64, help_text="what the job does, e.g. train_churn")
    task_id = models.CharField(max_length=255, blank=True, db_index=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    progress = models.PositiveSmallIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="last sign of life from the worker running it (see progress.reap_stale_jobs)"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "heartbeat_at"], name="job_state_heartbeat")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} {self.state} {self.progress}%"


class ScoringRun(models.Model):
    """Scoring every customer under one model version, split into chunks that Celery workers share.

    See ``rfm_portal.mlops.scoring``. ``params`` are what every chunk needs beyond the version's artifact
    (e.g. the as-of time and the one ``scored_at`` stamp of the run).
    """

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="scoring_runs")
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="scoring_runs")
    state = models.CharField(max_length=16, choices=State.choices, default=State.RUNNING)
    params = models.JSONField(default=dict, blank=True)
    chunk_size = models.PositiveIntegerField()
    chunks_total = models.PositiveIntegerField(default=0)
    customers_total = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"scoring of {self.model_version} #{self.pk} {self.state}"


class ScoringChunk(models.Model):
    """Customers ``first_customer_id`` … ``last_customer_id`` (pks, inclusive) of a run.

    A worker claims a chunk by locking its row (``SKIP LOCKED``) and holds that transaction while it
    scores and replaces the chunk's score rows, so a chunk is done exactly once: a worker that dies
    rolls back, and the chunk is pending again for the next one.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    run = models.ForeignKey(ScoringRun, on_delete=models.CASCADE, related_name="chunks")
    number = models.PositiveIntegerField()
    first_customer_id = models.BigIntegerField()
    last_customer_id = models.BigIntegerField()
    customers = models.PositiveIntegerField(help_text="customers in the pk range when the run was planned")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    rows_written = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True, help_text="per-chunk aggregates the model sums up")
    worker = models.CharField(max_length=255, blank=True)
    seconds = models.FloatField(null=True, blank=True)
    cpu_seconds = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="unique_chunk_number_per_run")]
        indexes = [models.Index(fields=["run", "state"], name="scoring_chunk_run_state")]

    def __str__(self) -> str:
        return f"chunk {self.number} of run {self.run_id} ({self.state})"
