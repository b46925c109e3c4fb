"""Campaign planner fixtures: generated data with truth (evaluation only) and a fast uplift model."""

from __future__ import annotations

import pytest

from rfm_portal.customers.generator import GeneratorParams, generate
from uplift.pipeline import UpliftConfig, train_uplift
from uplift.synthetic import campaign_frame

TRUTH_CUSTOMERS = 5000
TRUTH_SEED = 3
FAST = UpliftConfig(forest_trees=100, bootstrap=10, gbm_iter=100, n_jobs=2)


@pytest.fixture(scope="session")
def scored_truth():
    """(predicted scores, features+outcomes, truth table) for ≈ 3,700 campaign customers. The model is fitted on
    the generated randomised campaign; the truth only scores the planner afterwards."""
    data = generate(TRUTH_CUSTOMERS, TRUTH_SEED, params=GeneratorParams(acquisition_share=1.0))
    frame, _ = campaign_frame(data)
    result = train_uplift(frame, FAST)
    scores = result.models[result.champion].score(frame)
    truth = data.truth.set_index(data.truth["customer_id"].astype(str)).reindex(frame.index)
    return scores, frame, truth


# ---------------------------------------------------------------------------------------------
# the database: generated customers imported through the ordinary imports, models trained through services
# ---------------------------------------------------------------------------------------------

DB_CUSTOMERS = 700
DB_SEED = 11
DB_UPLIFT = UpliftConfig(forest_trees=20, bootstrap=5, gbm_iter=40, n_jobs=1, learners=("t_learner",), min_arm=50)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(settings, tmp_path):
    from rfm_portal.mlops.services import clear_model_cache

    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    clear_model_cache()
    yield
    clear_model_cache()


@pytest.fixture(scope="session")
def db_files(tmp_path_factory):
    from rfm_portal.customers.generator import write_outputs

    data = generate(DB_CUSTOMERS, DB_SEED, params=GeneratorParams(acquisition_share=1.0))
    return write_outputs(data, tmp_path_factory.mktemp("campaigns_gen"), prefix="gen")


@pytest.fixture
def scored_db(db, db_files, admin):
    """Imported data + active segmentation, churn and uplift models (trained through their services)."""
    from churn.services import train_churn_model
    from rfm_portal.customers.services import import_campaign_history, import_transactions
    from segmentation.services import train_segmentation
    from uplift.services import train_uplift_model

    job = import_transactions(db_files["transactions"], file_name="gen.csv")
    assert job.status == "succeeded", job.message
    job = import_campaign_history(db_files["campaigns"], file_name="gen_campaigns.csv")
    assert job.status == "succeeded", job.message
    train_segmentation(user=admin)
    train_churn_model(user=admin)
    train_uplift_model(user=admin, config=DB_UPLIFT)
    return db_files


# ---------------------------------------------------------------------------------------------
# a planned campaign written directly (no models): for lifecycle, roles, exports and the API
# ---------------------------------------------------------------------------------------------


def make_planned_campaign(user, *, name: str = "Spring retain", n_contact: int = 6, n_holdout: int = 2,
                          status: str = "draft", message: str = "Hello {id}"):
    from campaigns import services
    from campaigns.models import Campaign, CampaignTarget
    from rfm_portal.customers.models import Customer

    campaign = services.campaign_create(user=user, name=name, goal="retain", budget=100.0, holdout_share=0.25,
                                        channels=[{"name": "email", "cost": 0.5, "effect_factor": 1.0}])
    customers = [Customer.objects.create(external_id=f"{name[:3]}-{i:03d}", country="France")
                 for i in range(n_contact + n_holdout)]
    CampaignTarget.objects.bulk_create([
        CampaignTarget(campaign=campaign, customer=c, arm="holdout" if i >= n_contact else "contact",
                       channel="email", segment="Champions", predicted_effect=0.1, expected_profit=1.5 - i * 0.1,
                       spend=0.6, message="" if i >= n_contact else message.format(id=c.external_id))
        for i, c in enumerate(customers)])
    campaign.plan = {"totals": {"contacts": n_contact, "holdout": n_holdout, "profit": 9.0, "spend": 4.8,
                                "selected": n_contact + n_holdout, "audience": 20, "budget": 100.0}}
    campaign.planned_at = campaign.created_at
    campaign.status = status
    campaign.save()
    return Campaign.objects.get(pk=campaign.pk)


@pytest.fixture
def planned(analyst):
    return make_planned_campaign(analyst)
