import pytest
from django.db import IntegrityError, transaction

from rfm_portal.mlops import services
from rfm_portal.mlops.models import ModelVersion
from tests.mlops.helpers import run_in_threads

Status = ModelVersion.Status


@pytest.fixture(autouse=True)
def _artifact_root(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"


def ready_version(kind: str = "churn", obj: object = None) -> ModelVersion:
    mv = services.start_model_version(kind, {}, None, None)
    path, _ = services.write_artifact(kind, mv.version, obj if obj is not None else f"{kind} v{mv.version}")
    return services.complete_model_version(mv, {"score": mv.version / 10}, path)


def statuses(kind: str = "churn") -> dict[int, str]:
    return dict(ModelVersion.objects.filter(kind=kind).values_list("version", "status"))


@pytest.mark.django_db
def test_promote_retires_the_previous_active_version():
    v1, v2 = ready_version(), ready_version()
    services.promote(v1)
    assert statuses() == {1: Status.ACTIVE, 2: Status.READY}
    services.promote(v2)
    assert statuses() == {1: Status.RETIRED, 2: Status.ACTIVE}
    services.promote(v2)  # promoting the active version again changes nothing
    assert statuses() == {1: Status.RETIRED, 2: Status.ACTIVE}


@pytest.mark.django_db
def test_only_finished_versions_can_be_promoted():
    training = services.start_model_version("churn", {}, None, None)
    with pytest.raises(services.RegistryError):
        services.promote(training)
    assert statuses() == {1: Status.TRAINING}


@pytest.mark.django_db
def test_kinds_are_independent():
    churn, cltv = ready_version("churn"), ready_version("cltv")
    services.promote(churn)
    services.promote(cltv)
    assert statuses("churn") == {1: Status.ACTIVE} and statuses("cltv") == {1: Status.ACTIVE}


@pytest.mark.django_db
def test_rollback_walks_back_through_promotions():
    v1, v2, v3 = ready_version(), ready_version(), ready_version()
    for mv in (v1, v2, v3):
        services.promote(mv)
    assert services.rollback("churn").version == 2
    assert statuses() == {1: Status.RETIRED, 2: Status.ACTIVE, 3: Status.READY}
    assert services.rollback("churn").version == 1
    assert statuses() == {1: Status.ACTIVE, 2: Status.READY, 3: Status.READY}
    with pytest.raises(services.RegistryError, match="no earlier"):
        services.rollback("churn")
    assert statuses() == {1: Status.ACTIVE, 2: Status.READY, 3: Status.READY}
    services.promote(v3)  # a rolled-back version can be promoted again explicitly
    assert services.rollback("churn").version == 1


@pytest.mark.django_db
def test_database_refuses_a_second_active_version():
    ready_version()
    services.promote(ModelVersion.objects.get(version=1))
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.create(kind="churn", version=2, status=Status.ACTIVE)


@pytest.mark.django_db(transaction=True)
def test_concurrent_promotions_leave_exactly_one_active():
    versions = [ready_version() for _ in range(6)]
    for _round in range(3):
        results = run_in_threads([lambda mv=mv: services.promote(mv) for mv in versions])
        assert not [r for r in results if isinstance(r, BaseException)], results
        current = statuses()
        assert list(current.values()).count(Status.ACTIVE) == 1
        assert set(current.values()) == {Status.ACTIVE, Status.RETIRED}


@pytest.mark.django_db(transaction=True)
def test_concurrent_promotions_and_rollbacks_keep_one_active():
    versions = [ready_version() for _ in range(4)]
    for mv in versions[:2]:
        services.promote(mv)

    def roll_back():
        try:
            return services.rollback("churn")
        except services.RegistryError as error:  # another thread may have used up the history
            return error

    results = run_in_threads(
        [lambda mv=mv: services.promote(mv) for mv in versions] + [roll_back, roll_back, roll_back]
    )
    assert not [r for r in results if isinstance(r, BaseException) and not isinstance(r, services.RegistryError)]
    assert list(statuses().values()).count(Status.ACTIVE) == 1


@pytest.mark.django_db
def test_a_version_still_writing_its_first_scores_cannot_be_promoted():
    from rfm_portal.mlops.models import ScoringRun

    mv = ready_version()
    run = ScoringRun.objects.create(model_version=mv, chunk_size=100, chunks_total=3)
    with pytest.raises(services.RegistryError, match="still scoring its customers"):
        services.promote(mv)
    assert statuses() == {1: Status.READY}

    run.state = ScoringRun.State.SUCCEEDED
    run.save(update_fields=["state"])
    services.promote(mv)
    assert statuses() == {1: Status.ACTIVE}


@pytest.mark.django_db
def test_re_scoring_a_fully_scored_version_does_not_block_its_promotion():
    from rfm_portal.mlops.models import ScoringRun

    v1, v2 = ready_version(), ready_version()
    services.promote(v1)
    ScoringRun.objects.create(model_version=v2, chunk_size=100, state=ScoringRun.State.SUCCEEDED)
    ScoringRun.objects.create(model_version=v2, chunk_size=100)  # a later "score all customers" job, running
    services.promote(v2)
    assert statuses() == {1: Status.RETIRED, 2: Status.ACTIVE}
