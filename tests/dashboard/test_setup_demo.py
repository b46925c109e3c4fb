"""`make run` prepares the embedded demo with `setup_demo`: data, models and logins, once."""

import json
from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from rfm_portal.customers.models import CampaignHistory, Transaction
from rfm_portal.mlops.models import ModelVersion


@pytest.mark.django_db
def test_setup_demo_loads_sample_trains_models_and_prints_working_logins(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.EMBEDDINGS = {**settings.EMBEDDINGS, "epochs": 3, "map_method": "pca"}  # keep the suite fast
    first = StringIO()
    # The demo generates 20,000 customers at set-up; the test asks for fewer (same code path, seconds not minutes).
    call_command("setup_demo", customers=1200, seed=2024, stdout=first)

    demo = tmp_path / "demo"
    lines = sum(1 for _ in open(demo / "demo.csv")) - 1
    campaign_rows = sum(1 for _ in open(demo / "demo_campaigns.csv")) - 1
    assert Transaction.objects.count() == lines > 0
    assert CampaignHistory.objects.count() == campaign_rows < 1200  # customers acquired after the send are not in it
    assert (demo / "demo_truth.csv").exists()  # written for evaluation, never imported
    for kind in ("segmentation", "cltv", "churn", "uplift", "embeddings"):
        assert ModelVersion.objects.filter(kind=kind, status=ModelVersion.Status.ACTIVE).count() == 1
    logins = json.loads((tmp_path / "demo_logins.json").read_text())
    output = first.getvalue()
    for role, password in logins.items():
        assert f"password: {password}" in output
        user = authenticate(username=role, password=password)
        assert user is not None and user.role == role

    second = StringIO()
    call_command("setup_demo", stdout=second)
    assert "not importing again" in second.getvalue()
    assert "already active" in second.getvalue()
    assert Transaction.objects.count() == lines
    assert ModelVersion.objects.count() == ModelVersion.objects.filter(version=1).count()
    assert all(f"password: {password}" in second.getvalue() for password in logins.values())
