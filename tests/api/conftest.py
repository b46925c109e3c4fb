"""Generated customers imported through the product and a small churn, CLTV and segmentation model trained on
them, so the schemathesis run exercises the scoring endpoints beyond their 503/409 "no model" answers.

Module-scoped and committed (training once keeps the run fast); everything it created is deleted afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.test import override_settings

from churn.models import ChurnScore
from churn.services import train_churn_model
from cltv.models import CLTVScore
from cltv.services import train_cltv_model
from rfm_portal.customers import generator
from rfm_portal.customers import services as customer_services
from rfm_portal.customers.models import CampaignHistory, Customer, ImportJob, Product, Transaction
from rfm_portal.mlops import services as registry
from rfm_portal.mlops.models import Job, ModelVersion
from segmentation.models import RFMScore, SegmentationReport
from segmentation.services import train_segmentation

N_CUSTOMERS = 300
SEED = 23
START, END = date(2023, 1, 1), date(2024, 6, 30)


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


@pytest.fixture(scope="module")
def trained_models(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Path]:
    """Imported customers with an active churn, CLTV and segmentation model; yields the artifact directory."""
    artifacts = tmp_path_factory.mktemp("api_artifacts")
    data = generator.generate(N_CUSTOMERS, SEED, start=START, end=END)
    paths = generator.write_outputs(data, tmp_path_factory.mktemp("api_gen"))
    with django_db_blocker.unblock(), override_settings(ARTIFACT_ROOT=artifacts):
        wipe()
        job = customer_services.import_transactions(paths["transactions"])
        assert job.status == ImportJob.Status.SUCCEEDED, job.message
        train_segmentation()
        train_cltv_model(observation_end=END + timedelta(days=1), unit="W", n_draws=50)
        train_churn_model()
        try:
            yield artifacts
        finally:
            wipe()
