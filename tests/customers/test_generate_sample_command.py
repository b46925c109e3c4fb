"""manage.py generate_sample: the committed data/ files are exactly what it produces; --import loads them."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pandas as pd
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db.models import Sum

from rfm_portal.customers import generator
from rfm_portal.customers.models import CampaignHistory, Customer, ImportJob, Transaction

FILES = ("sample.csv", "sample_campaigns.csv", "sample_truth.csv", "sample_meta.json")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_committed_sample_is_what_the_command_generates(tmp_path):
    meta = json.loads((settings.DATA_DIR / "sample_meta.json").read_text())
    assert (meta["n_customers"], meta["seed"]) == (generator.SAMPLE_CUSTOMERS, generator.SAMPLE_SEED)
    assert (meta["start"], meta["end"]) == (generator.SAMPLE_START.isoformat(), generator.SAMPLE_END.isoformat())
    out = StringIO()
    call_command("generate_sample", out=str(tmp_path), stdout=out)  # the documented defaults: N=3000, seed 42
    for name in FILES:
        assert sha256(tmp_path / name) == sha256(settings.DATA_DIR / name), (
            f"data/{name} differs from a fresh `manage.py generate_sample`; regenerate and commit it"
        )
    assert "3,000 customers (seed 42)" in out.getvalue()


def test_committed_sample_size_and_notice():
    sample = settings.DATA_DIR / "sample.csv"
    assert sample.stat().st_size <= 5 * 1024 * 1024
    meta = json.loads((settings.DATA_DIR / "sample_meta.json").read_text())
    assert "EVALUATION ONLY" in meta["notice"]
    readme = (settings.DATA_DIR / "README.md").read_text()
    assert "evaluation only" in readme.lower() and "generate_sample" in readme
    rows = pd.read_csv(sample, dtype=str)
    assert len(rows) == meta["counts"]["transaction_lines"]
    assert rows["customer_id"].nunique() == meta["n_customers"]


def test_options_reach_the_generator(tmp_path):
    options = {"customers": 150, "seed": 9, "start": "2022-01-01", "end": "2022-12-31"}
    call_command("generate_sample", out=str(tmp_path), stdout=StringIO(), **options)
    meta = json.loads((tmp_path / "sample_meta.json").read_text())
    assert (meta["n_customers"], meta["seed"], meta["start"], meta["end"]) == (150, 9, "2022-01-01", "2022-12-31")
    truth = pd.read_csv(tmp_path / "sample_truth.csv")
    assert len(truth) == 150
    expected = generator.generate(150, 9, start=date(2022, 1, 1), end=date(2022, 12, 31))
    assert len(pd.read_csv(tmp_path / "sample.csv")) == len(expected.transactions)


def test_bad_options_are_refused(tmp_path):
    with pytest.raises(CommandError):
        call_command("generate_sample", customers=0, out=str(tmp_path), stdout=StringIO())
    with pytest.raises(CommandError):
        call_command("generate_sample", start="2024-01-01", end="2023-01-01", out=str(tmp_path), stdout=StringIO())


@pytest.mark.django_db
def test_import_loads_transactions_and_campaign_but_never_the_truth(tmp_path):
    call_command("generate_sample", customers=300, seed=5, out=str(tmp_path), do_import=True, stdout=StringIO())
    tx = pd.read_csv(tmp_path / "sample.csv", dtype=str)
    campaigns = pd.read_csv(tmp_path / "sample_campaigns.csv", dtype=str)
    assert Transaction.objects.count() == len(tx)
    assert Customer.objects.count() == 300
    assert CampaignHistory.objects.count() == 300
    assert Transaction.objects.filter(is_return=True).count() == (tx["quantity"].astype(int) < 0).sum()
    total = (tx["quantity"].astype(int) * tx["unit_price"].map(Decimal)).sum()
    assert Transaction.objects.aggregate(s=Sum("amount"))["s"] == total
    assert CampaignHistory.objects.filter(treated=True).count() == (campaigns["treated"] == "1").sum()
    assert CampaignHistory.objects.aggregate(s=Sum("revenue"))["s"] == campaigns["revenue"].map(Decimal).sum()
    jobs = ImportJob.objects.all()
    assert sorted(jobs.values_list("file_name", flat=True)) == ["sample.csv", "sample_campaigns.csv"]
    assert all(job.status == ImportJob.Status.SUCCEEDED for job in jobs)
    # Running it again with the same seed adds nothing (the import is idempotent).
    call_command("generate_sample", customers=300, seed=5, out=str(tmp_path), do_import=True, stdout=StringIO())
    assert Transaction.objects.count() == len(tx)
    assert CampaignHistory.objects.count() == 300
