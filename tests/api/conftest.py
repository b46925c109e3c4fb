"""Generated customers (and their past campaign) imported through the product and small churn, CLTV,
segmentation, uplift and embeddings models trained on them, so the schemathesis run exercises the scoring
endpoints beyond their 503/409 "no model" answers.

Some customers get hostile ids and countries, and some products hostile descriptions (spreadsheet formulas), so
the export tests can check that every CSV export neutralises them.

Package-scoped and committed (training once keeps the run fast); everything it created is deleted afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from django.test import override_settings

from churn.models import ChurnScore
from churn.services import train_churn_model
from cltv.models import CLTVScore
from cltv.services import train_cltv_model
from embeddings.services import train_embeddings_model
from rfm_portal.customers import generator
from rfm_portal.customers import services as customer_services
from rfm_portal.customers.models import CampaignHistory, Customer, ImportJob, Product, Transaction
from rfm_portal.mlops import services as registry
from rfm_portal.mlops.models import Job, ModelVersion
from segmentation.models import RFMScore, SegmentationReport
from segmentation.services import train_segmentation
from uplift.pipeline import UpliftConfig
from uplift.services import train_uplift_model

N_CUSTOMERS = 300
SEED = 23
START, END = date(2023, 1, 1), date(2024, 6, 30)
# Spreadsheet formulas as imported values; {i} keeps the ids distinct.
HOSTILE_IDS = ("={i}+2", "@SUM({i}+1)", "=cmd|' /C calc'!A{i}", "-{i}+3", "+CONCAT({i})")
HOSTILE_COUNTRIES = ('=HYPERLINK("http://example.com","x")', "@SUM(1+1)", "-1+1", "+1+1", "=1+2")
HOSTILE_DESCRIPTION = "=cmd|' /C calc'!A0"
N_HOSTILE = 25


def wipe() -> None:
    ChurnScore.objects.all().delete()
    CLTVScore.objects.all().delete()
    RFMScore.objects.all().delete()
    SegmentationReport.objects.all().delete()
    Job.objects.all().delete()
    ModelVersion.objects.all().delete()
    CampaignHistory.objects.all().delete()
    Transaction.objects.all().delete()
    Customer.objects.all().delete()
    ImportJob.objects.all().delete()
    Product.objects.all().delete()
    registry.clear_model_cache()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def hostile_transactions(transactions: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str], dict[str, str]]:
    """The generated transactions with N_HOSTILE customers renamed to formula-like ids (their countries too) and
    every other product's description replaced by a formula; returns the frame, {hostile id: country} and
    {original id: hostile id}."""
    frame = transactions.copy()
    busiest = frame["customer_id"].value_counts().index[:N_HOSTILE]
    renamed = {old: HOSTILE_IDS[i % len(HOSTILE_IDS)].format(i=i) for i, old in enumerate(busiest)}
    countries = {new: HOSTILE_COUNTRIES[i % len(HOSTILE_COUNTRIES)] for i, new in enumerate(renamed.values())}
    hostile = frame["customer_id"].isin(renamed)
    frame.loc[hostile, "customer_id"] = frame.loc[hostile, "customer_id"].map(renamed)
    frame.loc[hostile, "country"] = frame.loc[hostile, "customer_id"].map(countries)
    skus = sorted(frame["sku"].unique())[::2]
    frame.loc[frame["sku"].isin(skus), "description"] = HOSTILE_DESCRIPTION
    return frame, countries, renamed


@dataclass
class TrainedModels:
    artifacts: Path
    hostile: dict[str, str]  # hostile customer id -> its hostile country


@pytest.fixture(scope="package")
def trained_models(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[TrainedModels]:
    """Imported customers (some hostile) with an active churn, CLTV and segmentation model."""
    artifacts = tmp_path_factory.mktemp("api_artifacts")
    data = generator.generate(N_CUSTOMERS, SEED, start=START, end=END)
    transactions, hostile, renamed = hostile_transactions(data.transactions)
    folder = tmp_path_factory.mktemp("api_gen")
    path, campaign_path = folder / "hostile.csv", folder / "hostile_campaigns.csv"
    transactions.to_csv(path, index=False, float_format="%.2f", date_format=generator.TIME_FORMAT)
    campaigns = data.campaigns.assign(customer_id=data.campaigns["customer_id"].replace(renamed))
    campaigns.to_csv(campaign_path, index=False, float_format="%.2f", date_format=generator.TIME_FORMAT)
    with django_db_blocker.unblock(), override_settings(ARTIFACT_ROOT=artifacts):
        wipe()
        job = customer_services.import_transactions(path)
        assert job.status == ImportJob.Status.SUCCEEDED, job.message
        job = customer_services.import_campaign_history(campaign_path)
        assert job.status == ImportJob.Status.SUCCEEDED, job.message
        train_segmentation()
        train_cltv_model(observation_end=END + timedelta(days=1), unit="W", n_draws=50)
        train_churn_model()
        train_uplift_model(config=UpliftConfig(forest_trees=40, bootstrap=4, gbm_iter=40, n_jobs=1))
        train_embeddings_model(dim=16, epochs=4, seed=3, map_method="pca", map_sample=200, threads=1)
        try:
            yield TrainedModels(artifacts=artifacts, hostile=hostile)
        finally:
            wipe()
