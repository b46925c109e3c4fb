"""Training through the service: registry, scores, refusals, and failures that leave the active model alone."""

from __future__ import annotations

import pytest

from rfm_portal.customers.models import CampaignHistory, Customer
from rfm_portal.mlops.models import ModelVersion
from rfm_portal.mlops.services import load_active
from uplift import services
from uplift.models import UpliftScore
from uplift.pipeline import UpliftError


def test_training_registers_both_learners_and_scores_every_customer(trained):
    champion, challenger = trained
    assert champion.kind == "uplift" and champion.status == ModelVersion.Status.ACTIVE
    assert challenger.kind == "uplift_challenger" and challenger.status == ModelVersion.Status.READY
    assert {champion.metrics["learner"], challenger.metrics["learner"]} == {"causal_forest", "t_learner"}
    m = champion.metrics
    assert m["qini"] >= challenger.metrics["qini"]
    assert m["campaign"]["excluded_no_history"] == 0 and m["campaign"]["used_customers"] > 900
    assert set(m["evaluation"]) >= {"causal_forest", "t_learner", "most_likely_buyers", "highest_churn_risk",
                                    "random"}
    assert m["normalisation"].startswith("Curves are in incremental conversions")
    n_scores = UpliftScore.objects.filter(model_version=champion).count()
    assert n_scores == Customer.objects.count() == m["scored_customers"]
    assert sum(m["groups"].values()) == m["scored_customers"]
    assert "Held-out evaluation" in champion.model_card
    assert load_active("uplift").learner == m["learner"]


def test_stored_scores_equal_the_served_model(trained):
    champion, _ = trained
    model = load_active("uplift")
    scores = list(UpliftScore.objects.filter(model_version=champion).select_related("customer")[:40])
    X = services.features_for_customers([s.customer_id for s in scores], champion.data_cutoff)
    fresh = model.score(X.loc[[s.customer_id for s in scores]])
    for s, (_, row) in zip(scores, fresh.iterrows(), strict=True):
        assert s.uplift == pytest.approx(row["uplift"]) and s.group == row["group"]


def test_one_armed_campaign_is_refused_without_a_model_version(generated):
    CampaignHistory.objects.update(treated=True)
    with pytest.raises(UpliftError, match="No campaign has both a contacted and a held-back"):
        services.train_uplift_model()
    name = CampaignHistory.objects.values_list("campaign", flat=True).first()
    with pytest.raises(UpliftError, match="no control customers"):
        services.train_uplift_model(campaign=name)
    assert not ModelVersion.objects.filter(kind__startswith="uplift").exists()


def test_tiny_campaign_is_refused(generated):
    keep = list(CampaignHistory.objects.values_list("pk", flat=True)[:150])
    CampaignHistory.objects.exclude(pk__in=keep).delete()
    with pytest.raises(UpliftError, match="too small"):
        services.train_uplift_model()
    assert not ModelVersion.objects.filter(kind__startswith="uplift").exists()


def test_no_campaign_is_a_clear_message(db):
    with pytest.raises(UpliftError, match="no campaign history"):
        services.train_uplift_model()


def test_failed_training_leaves_the_active_model_untouched(trained, monkeypatch):
    champion, _ = trained
    before = UpliftScore.objects.filter(model_version=champion).count()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(services, "write_scores", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        services.train_uplift_model()
    champion.refresh_from_db()
    assert champion.status == ModelVersion.Status.ACTIVE
    assert UpliftScore.objects.filter(model_version=champion).count() == before
    failed = ModelVersion.objects.filter(kind__startswith="uplift", status=ModelVersion.Status.FAILED)
    assert failed.count() == 2 and all("disk full" in mv.error for mv in failed)
    assert UpliftScore.objects.exclude(model_version=champion).count() == 0


def test_campaign_customers_without_history_before_the_send_are_left_out_and_counted(generated):
    first = CampaignHistory.objects.first()
    newcomer = Customer.objects.create(external_id="brand-new", country="France")
    CampaignHistory.objects.create(customer=newcomer, campaign=first.campaign, treated=True, converted=True,
                                   revenue=12, sent_at=first.sent_at)
    frame, info = services.campaign_training_frame(first.campaign)
    assert info["excluded_no_history"] == 1 and newcomer.pk not in frame.index
    assert info["used_customers"] == len(frame) == info["campaign_customers"] - 1
    # features as of the send: nobody's recency can be negative or reach into the outcome window
    assert (frame["recency_days"] > 0).all()
