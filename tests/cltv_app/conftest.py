"""Generated retail data (with ground truth) imported through the product, and a CLTV model trained on it.

Module-scoped and committed (training once per module keeps the suite fast); everything it
created is deleted afterwards, so other modules start from an empty database.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd
import pytest

from cltv.models import CLTVScore
from cltv.services import train_cltv_model
from rfm_portal.customers import generator
from rfm_portal.customers import services as customer_services
from rfm_portal.customers.models import CampaignHistory, Customer, ImportJob, Product, Transaction
from rfm_portal.mlops import services as registry
from rfm_portal.mlops.models import Job, ModelVersion

N_CUSTOMERS = 1200
SEED = 11
START, END = date(2023, 1, 1), date(2024, 6, 30)


@dataclass
class Trained:
    mv: ModelVersion
    truth: pd.DataFrame


def wipe() -> None:
    CLTVScore.objects.all().delete()
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
def trained(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Trained]:
    data = generator.generate(N_CUSTOMERS, SEED, start=START, end=END)
    paths = generator.write_outputs(data, tmp_path_factory.mktemp("gen"))
    with django_db_blocker.unblock():
        wipe()
        job = customer_services.import_transactions(paths["transactions"])
        assert job.status == ImportJob.Status.SUCCEEDED, job.message
        mv = train_cltv_model(observation_end=END + timedelta(days=1), unit="W", n_draws=100)
        yield Trained(mv=mv, truth=data.truth)
        wipe()
