"""Generated customers (with ground truth) imported through the ordinary import, and a trained churn model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from churn import services
from rfm_portal.customers.generator import generate, write_outputs
from rfm_portal.customers.services import import_transactions
from rfm_portal.mlops.services import clear_model_cache

N_CUSTOMERS = 800
SEED = 5


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    clear_model_cache()
    yield
    clear_model_cache()


@pytest.fixture(scope="session")
def generated_files(tmp_path_factory) -> dict[str, Path]:
    data = generate(N_CUSTOMERS, seed=SEED)
    return write_outputs(data, tmp_path_factory.mktemp("churn_gen"), prefix="gen")


@pytest.fixture
def generated(db, generated_files) -> pd.DataFrame:
    """The generated customers imported into the database; returns the truth table (evaluation only)."""
    job = import_transactions(Path(generated_files["transactions"]), file_name="gen.csv")
    assert job.status == "succeeded", job.message
    return pd.read_csv(generated_files["truth"])


@pytest.fixture
def trained(generated, admin):
    """[champion (active churn), challenger] trained through the service with the default cut-off."""
    return services.train_churn_model(user=admin)
