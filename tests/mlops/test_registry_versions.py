from datetime import UTC, datetime

import pytest

from rfm_portal.mlops import services
from rfm_portal.mlops.models import ModelVersion
from tests.mlops.helpers import run_in_threads

Status = ModelVersion.Status


@pytest.fixture(autouse=True)
def _artifact_root(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"


@pytest.mark.django_db
def test_versions_are_numbered_per_kind(admin):
    cutoff = datetime(2024, 1, 1, tzinfo=UTC)
    first = services.start_model_version("churn", {"depth": 3}, admin, cutoff)
    second = services.start_model_version("churn", {"depth": 4}, admin, cutoff)
    other = services.start_model_version("cltv", {}, None, None)
    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert first.status == Status.TRAINING
    assert first.params == {"depth": 3} and first.trained_by == admin and first.data_cutoff == cutoff


@pytest.mark.django_db(transaction=True)
def test_concurrent_starts_get_distinct_versions():
    results = run_in_threads([lambda: services.start_model_version("churn", {}, None, None) for _ in range(8)])
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sorted(mv.version for mv in results) == list(range(1, 9))


@pytest.mark.django_db
def test_complete_records_metrics_card_and_artifact_hash():
    mv = services.start_model_version("churn", {}, None, None)
    path, sha256 = services.write_artifact("churn", mv.version, {"weights": [1, 2, 3]})
    services.complete_model_version(mv, {"auc": 0.81}, path, "Gradient boosting on RFM features.")
    mv.refresh_from_db()
    assert mv.status == Status.READY
    assert mv.metrics == {"auc": 0.81}
    assert mv.artifact_sha256 == sha256 == services.file_sha256(services.resolve_artifact(path))
    assert mv.model_card.startswith("Gradient boosting")
    with pytest.raises(services.RegistryError):
        services.complete_model_version(mv, {}, path)


@pytest.mark.django_db
def test_failed_training_never_touches_the_active_version():
    active = services.start_model_version("churn", {}, None, None)
    path, _ = services.write_artifact("churn", active.version, "model one")
    services.complete_model_version(active, {"auc": 0.8}, path)
    services.promote(active)

    failing = services.start_model_version("churn", {}, None, None)
    services.fail_model_version(failing, "ValueError: no transactions before the cut-off")

    active.refresh_from_db()
    failing.refresh_from_db()
    assert active.status == Status.ACTIVE
    assert failing.status == Status.FAILED and "no transactions" in failing.error
    assert services.load_active("churn") == "model one"
    with pytest.raises(services.RegistryError):
        services.promote(failing)
    active.refresh_from_db()
    assert active.status == Status.ACTIVE
