import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from rfm_portal.mlops import services
from rfm_portal.mlops.models import ModelVersion


@pytest.fixture(autouse=True)
def _artifact_root(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    services.clear_model_cache()
    yield
    services.clear_model_cache()


def registered(kind: str, obj: object, promote: bool = True) -> ModelVersion:
    mv = services.start_model_version(kind, {}, None, None)
    path, _ = services.write_artifact(kind, mv.version, obj)
    services.complete_model_version(mv, {}, path)
    return services.promote(mv) if promote else mv


def test_write_artifact_is_versioned_atomic_and_hashed(settings):
    path, sha256 = services.write_artifact("cltv", 3, {"alpha": 1.5})
    assert path == "cltv/v3/model.joblib"
    full = settings.ARTIFACT_ROOT / path
    assert services.file_sha256(full) == sha256
    assert services.load_artifact(path, sha256) == {"alpha": 1.5}
    # Rewriting replaces the file in one rename and leaves no temporary files behind.
    _, sha256_again = services.write_artifact("cltv", 3, {"alpha": 2.0})
    assert sha256_again != sha256
    assert [p.name for p in full.parent.iterdir()] == ["model.joblib"]


def test_write_artifact_failure_leaves_nothing(settings):
    class Unpicklable:
        def __reduce__(self):
            raise TypeError("cannot pickle this")

    with pytest.raises(TypeError):
        services.write_artifact("cltv", 1, Unpicklable())
    assert list((settings.ARTIFACT_ROOT / "cltv" / "v1").iterdir()) == []


def test_load_refuses_an_artifact_whose_hash_does_not_match(settings):
    path, sha256 = services.write_artifact("churn", 1, [1, 2, 3])
    (settings.ARTIFACT_ROOT / path).write_bytes(b"tampered")
    with pytest.raises(services.ArtifactIntegrityError):
        services.load_artifact(path, sha256)


@pytest.mark.django_db
def test_load_active_caches_per_version_and_reloads_after_promotion():
    registered("churn", {"model": "one"})
    first = services.load_active("churn")
    assert first == {"model": "one"}
    with CaptureQueriesContext(connection) as queries:
        assert services.load_active("churn") is first  # same object: not read again
    assert len(queries) == 1  # only the cheap "which version is active" check

    second_version = registered("churn", {"model": "two"})
    assert services.load_active("churn") == {"model": "two"}
    services.rollback("churn")
    assert services.load_active("churn") == {"model": "one"}
    services.promote(second_version)
    assert services.load_active("churn") == {"model": "two"}


@pytest.mark.django_db
def test_load_active_verifies_the_hash_and_needs_an_active_version(settings):
    with pytest.raises(services.NoActiveModel):
        services.load_active("churn")
    mv = registered("churn", "weights")
    (settings.ARTIFACT_ROOT / mv.artifact_path).write_bytes(b"swapped on disk")
    with pytest.raises(services.ArtifactIntegrityError):
        services.load_active("churn")
