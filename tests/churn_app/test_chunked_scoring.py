"""Churn scores written in chunks: the rows of one unchunked scoring, and a failed chunk fails the training."""

from __future__ import annotations

import datetime as dt
import math

from churn import services, tasks
from churn.models import ChurnScore
from rfm_portal.customers.features import build_features
from rfm_portal.mlops.models import Job, ModelVersion, ScoringRun
from rfm_portal.mlops.progress import start_job
from rfm_portal.mlops.scoring import score_all_customers
from rfm_portal.mlops.services import load_active


def stored(mv: ModelVersion) -> dict[int, tuple]:
    return {row[0]: row[1:] for row in ChurnScore.objects.filter(model_version=mv).values_list(
        "customer_id", "probability", "risk_band", "top_contributions", "features", "scored_at")}


def _close(a, b, path: str = "") -> None:
    """Equal, floats up to 1e-12 relative (BLAS blocks its sums by the chunk's row count)."""
    if isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15), (path, a, b)
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), (path, a.keys(), b.keys())
        for key in a:
            _close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list | tuple) and isinstance(b, list | tuple):
        assert len(a) == len(b), (path, a, b)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    else:
        assert a == b, (path, a, b)


def test_chunked_scoring_writes_exactly_the_rows_of_unchunked_scoring(trained):
    champion, _ = trained
    bundle = load_active("churn")
    cut = champion.data_cutoff
    scored_at = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    # unchunked: every customer's features and scores at once, in memory, as training used to write them
    X = build_features(services.load_transactions(before=cut), services._utc(cut), services.load_customers())
    columns = services.score_columns(bundle, X, scored_at)
    unchunked = {pk: row for pk, *row in zip(*columns.values(), strict=True)}

    run = score_all_customers(champion, {"scored_at": scored_at.isoformat()}, chunk_size=97)
    assert run.chunks_total == 9 and run.state == ScoringRun.State.SUCCEEDED
    _close({pk: tuple(row) for pk, row in unchunked.items()}, stored(champion))
    assert len(stored(champion)) == champion.metrics["scored_customers"] == 800


def test_a_failing_chunk_fails_the_job_and_the_versions_and_leaves_the_active_model(trained, admin, settings,
                                                                                     monkeypatch):
    champion, challenger = trained
    before = stored(champion)
    settings.SCORING_CHUNK_SIZE = 100
    real = services.features_for_customers
    calls = []

    def fails_on_the_fourth_chunk(customer_pks, as_of):
        calls.append(len(customer_pks))
        if len(calls) == 4:
            raise MemoryError("chunk too big for this worker")
        return real(customer_pks, as_of)

    monkeypatch.setattr(services, "features_for_customers", fails_on_the_fourth_chunk)
    job = start_job(tasks.train_churn_task.name, {}, admin)
    tasks.train_churn_task.apply(args=[job.pk])
    job.refresh_from_db()
    assert job.state == Job.State.FAILED
    assert "ScoringFailed" in job.error and "MemoryError: chunk too big for this worker" in job.error
    new = ModelVersion.objects.exclude(pk__in=[champion.pk, challenger.pk])
    assert {mv.status for mv in new} == {ModelVersion.Status.FAILED} and new.count() == 2
    assert job.model_version_id in {mv.pk for mv in new}
    champion.refresh_from_db()
    assert champion.status == ModelVersion.Status.ACTIVE and stored(champion) == before
    assert not ChurnScore.objects.filter(model_version__in=new).exists()  # the three chunks done are gone too
    assert ScoringRun.objects.get(model_version__in=new).state == ScoringRun.State.FAILED
    assert len(calls) == 4
