"""Training through the service, the Celery job and the command: registry, artifact, metrics, failure."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command

from embeddings import services
from embeddings.tasks import scheduled_retrain, train_embeddings_task
from rfm_portal.mlops import services as registry
from rfm_portal.mlops.models import Job, ModelVersion
from rfm_portal.mlops.progress import start_job

from .conftest import TEST_EMBEDDINGS, register_bundle


def test_the_job_trains_indexes_and_promotes_with_per_epoch_progress(generated, generated_files, monkeypatch):
    seen: list[tuple[int, str]] = []
    from rfm_portal.mlops import progress

    original = progress.JobReporter.report

    def spy(self, pct: int, message: str = "") -> None:
        seen.append((pct, message))
        original(self, pct, message)

    monkeypatch.setattr(progress.JobReporter, "report", spy)
    job = start_job(train_embeddings_task.name, {"truth_path": str(generated_files["truth"])})
    assert train_embeddings_task.apply(args=[job.pk]).successful()
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.error
    mv = ModelVersion.objects.get(pk=job.result["model_version_id"])
    assert mv.status == ModelVersion.Status.ACTIVE and mv.kind == "embeddings" and job.model_version_id == mv.pk
    epochs = [m for _, m in seen if m.startswith("Epoch ")]
    assert len(epochs) == TEST_EMBEDDINGS["epochs"] and [p for p, _ in seen] == sorted(p for p, _ in seen)
    m = mv.metrics
    assert len(m["loss_curve"]) == TEST_EMBEDDINGS["epochs"] and m["index_kind"] == "exact"
    assert m["index_recall_at_10"] == 1.0 and m["n_customers"] == generated["customer_id"].nunique()
    # the taste check against the truth file (evaluation only) is kept, and beats RFM alone
    assert m["taste_check"]["purity_at_10"] > m["taste_check"]["purity_at_10_rfm"] + 0.1
    assert m["quality"]["favourite_category_agreement_at_10"] > m["quality"]["favourite_category_agreement_rfm_at_10"]
    # the artifact is registered with its sha256 and loads as the served bundle
    path = registry.resolve_artifact(mv.artifact_path)
    assert Path(path).exists() and registry.file_sha256(path) == mv.artifact_sha256
    bundle = registry.load_active("embeddings")
    assert bundle.version == mv.version and len(bundle.vectors) == m["n_customers"]
    assert np.allclose(np.linalg.norm(bundle.vectors, axis=1), 1.0, atol=1e-4)
    assert "Customer2Vec" in mv.model_card


def test_a_failed_training_leaves_the_active_version_serving(generated, template_bundle, monkeypatch):
    active = register_bundle(template_bundle)
    before = registry.load_active("embeddings")

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(services.pipeline, "build_bundle", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        services.train_embeddings_model()
    failed = ModelVersion.objects.filter(kind="embeddings").order_by("-version").first()
    assert failed.status == ModelVersion.Status.FAILED and "disk full" in failed.error
    assert ModelVersion.objects.get(kind="embeddings", status=ModelVersion.Status.ACTIVE).pk == active.pk
    assert registry.load_active("embeddings") is before


def test_too_few_customers_is_a_clear_error(db):
    with pytest.raises(services.EmbeddingsError, match="at least"):
        services.train_embeddings_model()
    assert not ModelVersion.objects.filter(kind="embeddings", status=ModelVersion.Status.ACTIVE).exists()


def test_unknown_settings_are_refused(db, settings):
    settings.EMBEDDINGS = {**settings.EMBEDDINGS, "dimension": 8}
    with pytest.raises(services.EmbeddingsError, match="unknown embedding settings"):
        services.config_from_settings()


def test_the_management_command_trains_synchronously(generated):
    out = StringIO()
    call_command("train_embeddings", "--epochs", "2", "--seed", "4", stdout=out)
    mv = ModelVersion.objects.get(kind="embeddings", status=ModelVersion.Status.ACTIVE)
    assert mv.params["epochs"] == 2 and mv.params["seed"] == 4
    assert f"embeddings v{mv.version} active" in out.getvalue() and "Epoch 2 of 2" in out.getvalue()


def test_weekly_retrain_is_scheduled_and_queues_an_ordinary_job(db, settings, django_capture_on_commit_callbacks):
    entry = settings.CELERY_BEAT_SCHEDULE["embeddings-weekly-retrain"]
    assert entry["task"] == scheduled_retrain.name
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job_id = scheduled_retrain.apply().get()
    job = Job.objects.get(pk=job_id)
    assert job.kind == train_embeddings_task.name and job.state == Job.State.PENDING and len(callbacks) == 1
