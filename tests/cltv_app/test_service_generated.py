"""train_cltv_model on generated data with ground truth: ranking, scores, failure handling."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from cltv import services
from cltv.models import CLTVScore
from rfm_portal.mlops import services as registry
from rfm_portal.mlops.models import ModelVersion

from .conftest import Trained

# P(alive) must rank customers alive at the cut-off above those who had dropped out. The BG/NBD
# is the generating process here, so the ranking is good but not perfect (a customer who just
# dropped out looks like one who just bought); 0.80 is a floor well under what the model reaches.
AUC_FLOOR = 0.80


def auc(score: np.ndarray, label: np.ndarray) -> float:
    """Mann-Whitney AUC: P(score of a positive > score of a negative), ties counted half."""
    pos, neg = score[label], score[~label]
    order = np.argsort(np.r_[pos, neg], kind="mergesort")
    ranks = np.empty(order.size)
    values = np.r_[pos, neg][order]
    # average ranks for ties
    _, inv, counts = np.unique(values, return_inverse=True, return_counts=True)
    cum = np.cumsum(counts)
    avg = cum - (counts - 1) / 2.0
    ranks[order] = avg[inv]
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


@pytest.mark.django_db
def test_p_alive_ranks_truly_alive_customers_first(trained: Trained) -> None:
    rows = CLTVScore.objects.filter(model_version=trained.mv).values_list("customer__external_id", "p_alive")
    p_alive = dict(rows)
    truth = trained.truth.assign(customer_id=trained.truth["customer_id"].astype(str))
    truth = truth[truth["customer_id"].isin(p_alive)]
    assert len(truth) > 1000
    score = truth["customer_id"].map(p_alive).to_numpy(dtype=float)
    alive = truth["alive_at_cutoff"].to_numpy(dtype=bool)
    value = auc(score, alive)
    print(f"P(alive) AUC vs truth: {value:.3f} ({alive.sum()} alive, {(~alive).sum()} gone)")
    assert value > AUC_FLOOR


@pytest.mark.django_db
def test_scores_are_complete_and_never_negative(trained: Trained) -> None:
    scores = CLTVScore.objects.filter(model_version=trained.mv)
    assert scores.count() == trained.mv.metrics["n_customers"]
    assert not scores.filter(clv__lt=0).exists()
    assert not scores.filter(clv_p10__lt=0).exists()
    assert not scores.filter(clv_p10__gt=models_f("clv_p90")).exists()
    assert not scores.filter(recency__gt=models_f("T")).exists()
    assert trained.mv.status == ModelVersion.Status.ACTIVE
    m = trained.mv.metrics
    assert {"calibration_fits", "calibration_gamma_gamma", "transaction_fit", "gamma_gamma_fit", "validation"} <= set(m)
    assert m["calibration_end_exclusive"] < m["observation_end_exclusive"] == "2024-07-01"
    assert "frequency_monetary_corr" in m["gamma_gamma_fit"]["extra"]


def models_f(name: str):
    from django.db.models import F

    return F(name)


@pytest.mark.django_db
def test_failed_training_leaves_the_active_version_and_its_scores(trained: Trained, monkeypatch) -> None:
    active = ModelVersion.objects.get(kind="cltv", status=ModelVersion.Status.ACTIVE)
    n_scores = CLTVScore.objects.filter(model_version=active).count()

    def boom(*args, **kwargs):
        raise RuntimeError("optimiser exploded")

    monkeypatch.setattr(services, "score_in_pk_blocks", boom)
    with pytest.raises(RuntimeError, match="optimiser exploded"):
        services.train_cltv_model(observation_end=date(2024, 7, 1), n_draws=20)
    failed = ModelVersion.objects.filter(kind="cltv").order_by("-version").first()
    assert failed.status == ModelVersion.Status.FAILED and "optimiser exploded" in failed.error
    active.refresh_from_db()
    assert active.status == ModelVersion.Status.ACTIVE
    assert CLTVScore.objects.filter(model_version=active).count() == n_scores
    assert not CLTVScore.objects.filter(model_version=failed).exists()
    assert registry.load_active("cltv").observation_end == "2024-06-30"


@pytest.mark.django_db
def test_training_without_transactions_fails_cleanly(trained: Trained) -> None:
    with pytest.raises(services.CLTVTrainingError):
        services.train_cltv_model(observation_end=date(2000, 1, 1))
    assert ModelVersion.objects.get(kind="cltv", status=ModelVersion.Status.ACTIVE).pk == trained.mv.pk


@pytest.mark.django_db
def test_closed_form_recompute_with_other_settings(trained: Trained) -> None:
    from cltv import selectors

    bundle = registry.load_active("cltv")
    frame = selectors.scores_frame(trained.mv)
    same = services.closed_form_clv(bundle, frame)
    np.testing.assert_allclose(same, frame["clv"].to_numpy(), rtol=1e-9, atol=1e-9)
    half = services.closed_form_clv(services.bundle_with_settings(bundle, margin=0.5), frame)
    np.testing.assert_allclose(half, 0.5 * same, rtol=1e-9, atol=1e-9)
    longer = services.closed_form_clv(services.bundle_with_settings(bundle, horizon_days=730), frame)
    assert (longer >= same - 1e-9).all() and longer.sum() > same.sum()
