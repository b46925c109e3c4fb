"""manage.py import_transactions."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from rfm_portal.customers.models import CampaignHistory, ImportJob, Transaction

RETAIL = Path(__file__).parent / "files" / "online_retail_sample.csv"


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_transactions", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_invalid_rows_fail_the_command_and_import_nothing(db):
    with pytest.raises(CommandError, match="rejected: 9 rows, 0 new, 0 already present, 1 rejected") as info:
        run(str(RETAIL))
    assert "nothing was imported" in str(info.value)
    assert Transaction.objects.count() == 0
    assert ImportJob.objects.get().status == ImportJob.Status.REJECTED


def test_skip_invalid_then_repeat(db):
    out, err = run(str(RETAIL), "--skip-invalid")
    assert "succeeded: 9 rows, 8 new, 0 already present, 1 rejected." in out
    assert "line 6: no customer id" in err
    out, _ = run(str(RETAIL), "--skip-invalid")
    assert "8 already present" in out
    assert Transaction.objects.count() == 8
    job = ImportJob.objects.first()
    assert job.created_by is None  # shown as "command line"


def test_map_and_dayfirst_options(db, tmp_path):
    path = tmp_path / "shop.csv"
    path.write_text("Bon,Kunde,Zeit,Menge,Preis\nB1,K1,1/12/2010 8:26,2,1.50\n")
    args = ["--map", "invoice=Bon", "--map", "customer_id=Kunde", "--map", "invoiced_at=Zeit"]
    args += ["--map", "quantity=Menge", "--map", "unit_price=Preis", "--dayfirst"]
    run(str(path), *args)
    t = Transaction.objects.get()
    assert (t.invoiced_at.month, t.invoiced_at.day) == (12, 1)
    assert ImportJob.objects.get().column_mapping["customer_id"] == "Kunde"


def test_bad_map_and_missing_file_are_command_errors(db, tmp_path):
    with pytest.raises(CommandError, match="target=SourceColumn"):
        run(str(RETAIL), "--map", "customer_id")
    with pytest.raises(CommandError, match="No such file"):
        run(str(tmp_path / "nope.csv"))


def test_kind_campaigns(db, tmp_path):
    path = tmp_path / "campaign.csv"
    path.write_text("customer_id,campaign,treated,converted,revenue,sent_at\n7,spring,true,false,0,2024-03-01\n")
    out, _ = run(str(path), "--kind", "campaigns")
    assert "1 new" in out
    assert CampaignHistory.objects.get().campaign == "spring"
    assert ImportJob.objects.get().kind == ImportJob.Kind.CAMPAIGNS
