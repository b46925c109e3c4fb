"""Data for the Segmentation app tests: a hand-worked trio and generated customers with truth."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rfm_portal.customers.generator import generate, write_outputs
from rfm_portal.customers.services import import_transactions
from tests.factories import known_dataset


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"


@pytest.fixture
def trio(db):
    """tests.factories.known_dataset. With the default cut-off 2024-03-21 (worked by hand):

    A: recency 1, 3 orders, net 160 -> R5 F5 M5 "555" Champions
    B: recency 141, 1 order, 40     -> R1 F1 M3 "113" Lost (FM = 2)
    C: recency 66, 2 orders, 20     -> R3 F3 M1 "331" About to Sleep (FM = 2)
    """
    return known_dataset()


@pytest.fixture
def generated(db, tmp_path) -> pd.DataFrame:
    """400 generated customers imported through the ordinary import; returns the truth table."""
    data = generate(400, seed=11)
    paths = write_outputs(data, tmp_path / "gen", prefix="gen")
    job = import_transactions(Path(paths["transactions"]), file_name="gen.csv")
    assert job.status == "succeeded", job.message
    return data.truth
