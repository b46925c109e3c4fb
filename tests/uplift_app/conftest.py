"""Generated customers and a campaign imported through the ordinary imports, and a trained uplift model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rfm_portal.customers.generator import GeneratorParams, generate, write_outputs
from rfm_portal.customers.services import import_campaign_history, import_transactions
from rfm_portal.mlops.services import clear_model_cache
from uplift import services
from uplift.pipeline import UpliftConfig

N_CUSTOMERS = 1500
SEED = 8
FAST = UpliftConfig(forest_trees=40, bootstrap=4, gbm_iter=40, n_jobs=1)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    clear_model_cache()
    yield
    clear_model_cache()


@pytest.fixture(autouse=True)
def _fast_config(monkeypatch):
    """Views and tasks train with the default config; tests use few trees and refits."""
    monkeypatch.setattr(services, "UpliftConfig", lambda: FAST)


@pytest.fixture(scope="session")
def generated_files(tmp_path_factory) -> dict[str, Path]:
    data = generate(N_CUSTOMERS, seed=SEED, params=GeneratorParams(acquisition_share=1.0))
    return write_outputs(data, tmp_path_factory.mktemp("uplift_gen"), prefix="gen")


@pytest.fixture
def generated(db, generated_files) -> pd.DataFrame:
    """Transactions + the campaign imported; returns the truth table (evaluation only)."""
    for path, importer in ((generated_files["transactions"], import_transactions),
                           (generated_files["campaigns"], import_campaign_history)):
        job = importer(Path(path), file_name=Path(path).name)
        assert job.status == "succeeded", job.message
    return pd.read_csv(generated_files["truth"])


@pytest.fixture
def trained(generated, admin):
    """[champion (active uplift), challenger] trained through the service on the latest campaign."""
    return services.train_uplift_model(user=admin, config=FAST)
