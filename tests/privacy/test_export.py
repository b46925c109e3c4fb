"""Right of access: everything held about one customer, as JSON (service, page and command)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from rfm_portal.audit.models import AuditEntry
from rfm_portal.customers.models import Customer
from rfm_portal.privacy import services

from .conftest import SECRET_ID, fill_every_customer_table


def test_export_holds_every_table_and_the_index_entry(indexed, admin):
    target = indexed["target"]
    filled = fill_every_customer_table(target)
    data = json.loads(services.export_customer(customer=target, actor=admin))
    assert data["customer"]["external_id"] == SECRET_ID and data["customer"]["country"] == "Iceland"
    assert filled <= set(data["tables"])
    assert len(data["tables"]["customers.transaction"]) == 2
    versions = data["stores"]["embeddings-index"]
    assert set(versions) == {f"v{indexed['old'].version}", f"v{indexed['active'].version}"}
    assert len(versions[f"v{indexed['active'].version}"]["vector"]) == 8
    # Nobody else's data is in it.
    assert "KEEP-0" not in json.dumps(data)
    entry = AuditEntry.objects.get(action="customer.exported", target_id=str(target.pk))
    assert entry.target_id == str(target.pk) and SECRET_ID not in json.dumps(entry.details)


def test_export_download_for_admins(people, admin_client):
    response = admin_client.get(reverse("privacy:customer-export", args=[SECRET_ID]))
    assert response["Content-Type"] == "application/json"
    assert "attachment" in response["Content-Disposition"] and SECRET_ID not in response["Content-Disposition"]
    assert json.loads(response.content)["customer"]["external_id"] == SECRET_ID


def test_commands(people, tmp_path):
    out = tmp_path / "c.json"
    call_command("export_customer", SECRET_ID, output=str(out), stdout=io.StringIO())
    assert json.loads(out.read_text())["customer"]["external_id"] == SECRET_ID
    printed = io.StringIO()
    call_command("export_customer", f"pk:{people['target'].pk}", stdout=printed)
    assert json.loads(printed.getvalue())["customer"]["country"] == "Iceland"
    printed = io.StringIO()
    call_command("erase_customer", SECRET_ID, yes=True, stdout=printed)
    assert "erased: 3 rows" in printed.getvalue()
    assert not Customer.objects.filter(external_id=SECRET_ID).exists()
    with pytest.raises(CommandError, match="no customer"):
        call_command("erase_customer", SECRET_ID, yes=True)
    with pytest.raises(CommandError, match="no customer"):
        call_command("export_customer", "pk:nope")
