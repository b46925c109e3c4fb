"""Every listed security- and model-relevant action writes one audit entry, and none holds customer data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from campaigns import services as campaign_services
from campaigns.models import Campaign
from rfm_portal.accounts import services as account_services
from rfm_portal.accounts.models import User
from rfm_portal.audit.models import AuditEntry
from rfm_portal.customers.models import Customer
from rfm_portal.customers.services import import_transactions
from rfm_portal.mlops import services as registry
from rfm_portal.privacy import services as privacy_services
from tests.conftest import PASSWORD

SAMPLE = Path(__file__).resolve().parent.parent / "customers" / "files" / "online_retail_sample.csv"


def actions() -> list[str]:
    return list(AuditEntry.objects.order_by("id").values_list("action", flat=True))


def test_login_and_failed_login(analyst):
    client = Client(REMOTE_ADDR="10.1.2.3")
    client.post(reverse("login"), {"username": "alice", "password": "wrong-password"})
    failed = AuditEntry.objects.get(action="auth.login_failed")
    assert failed.actor is None and failed.actor_label == "alice" and failed.ip_address == "10.1.2.3"
    assert "wrong-password" not in json.dumps(failed.details)
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    ok = AuditEntry.objects.get(action="auth.login")
    assert ok.actor == analyst and ok.target_id == str(analyst.pk) and ok.ip_address == "10.1.2.3"
    client.post(reverse("logout"))
    assert AuditEntry.objects.filter(action="auth.logout", actor=analyst).exists()


def test_user_created_role_changed_deactivated(admin):
    user = account_services.user_create(username="bob", password="a-long-enough-pass-7", role="analyst")
    account_services.user_change_role(user=user, role=User.Role.ADMIN, by=admin)
    account_services.user_deactivate(user=user, by=admin)
    mine = AuditEntry.objects.filter(target_type="accounts.user", target_id=str(user.pk), action__startswith="user.")
    assert list(mine.order_by("id").values_list("action", flat=True)) == [
        "user.created", "user.role_changed", "user.deactivated"]
    changed = AuditEntry.objects.get(action="user.role_changed")
    assert changed.details["role"] == {"from": "analyst", "to": "admin"} and changed.target_id == str(user.pk)
    # A login's last_login update is not a user change.
    Client().force_login(user)
    assert actions().count("user.role_changed") == 1


def test_api_key_created_and_revoked(admin):
    created = account_services.api_key_create(name="CRM", created_by=admin)
    account_services.api_key_revoke(api_key=created.api_key)
    account_services.api_key_revoke(api_key=created.api_key)  # twice: one revocation
    made = AuditEntry.objects.get(action="api_key.created")
    assert made.actor == admin and made.details["prefix"] == created.api_key.prefix
    assert created.raw_key not in json.dumps(made.details)
    assert actions().count("api_key.revoked") == 1


def test_import_started_and_finished(admin):
    job = import_transactions(SAMPLE, user=admin, file_name="sample.csv", skip_invalid=True)
    assert job.status == "succeeded"
    started, finished = AuditEntry.objects.filter(action__startswith="import.").order_by("id")
    assert (started.action, finished.action) == ("import.started", "import.succeeded")
    assert finished.actor == admin and finished.details["rows_inserted"] == job.rows_inserted > 0


def test_training_promotion_and_rollback(admin, settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path
    first = registry.start_model_version("churn", {}, user=admin)
    path, _ = registry.write_artifact("churn", first.version, {"model": 1})
    registry.complete_model_version(first, {"auc": 0.7}, path)
    registry.promote(first)
    second = registry.start_model_version("churn", {})
    path, _ = registry.write_artifact("churn", second.version, {"model": 2})
    registry.complete_model_version(second, {"auc": 0.8}, path)
    registry.promote(second)
    registry.rollback("churn")
    broken = registry.start_model_version("churn", {})
    registry.fail_model_version(broken, "boom")
    model_actions = [a for a in actions() if a.startswith("model.")]
    assert model_actions == ["model.training_started", "model.ready", "model.promoted",
                             "model.training_started", "model.ready", "model.promoted", "model.rolled_back",
                             "model.training_started", "model.failed"]
    assert AuditEntry.objects.filter(action="model.training_started").first().actor is None  # system runs
    assert AuditEntry.objects.get(action="model.training_started", target_id=str(first.pk)).actor == admin
    rolled = AuditEntry.objects.get(action="model.rolled_back")
    assert rolled.details == {"kind": "churn", "version": first.version}


def test_campaign_approval_and_export_are_mirrored(admin):
    campaign = Campaign.objects.create(name="Winback", goal="retain", budget=100.0, status=Campaign.Status.SUBMITTED,
                                       channels=[{"name": "email", "cost": 0.1, "effect_factor": 1.0}])
    campaign_services.campaign_approve(campaign, user=admin, comment="ok for Jane Doe")
    campaign.refresh_from_db()
    list(campaign_services.export_targets(campaign, user=admin, fmt="csv"))
    approve = AuditEntry.objects.get(action="campaigns.approve")
    export = AuditEntry.objects.get(action="campaigns.export")
    for entry in (approve, export):
        assert entry.actor == admin and entry.target_type == "campaigns.campaign"
        assert entry.target_id == str(campaign.pk)
    assert "Jane Doe" not in json.dumps(approve.details)  # free-text comments stay in the campaign's own log
    assert export.details["changed_fields"] == ["format", "list", "rows", "status"]


def test_erasure_and_export_are_logged(admin):
    customer = Customer.objects.create(external_id="PII-77", country="Malta")
    privacy_services.export_customer(customer=customer, actor=admin)
    privacy_services.erase_customer(customer=customer, actor=admin)
    assert actions()[-2:] == ["customer.exported", "customer.erased"]


def test_no_entry_holds_customer_personal_data(admin, analyst):
    customer = Customer.objects.create(external_id="PII-88", country="Liechtenstein", attributes={"email": "p@x.io"})
    import_transactions(SAMPLE, user=admin, file_name="sample.csv", skip_invalid=True)
    imported = list(Customer.objects.exclude(pk=customer.pk).values_list("external_id", "country"))
    assert imported
    privacy_services.export_customer(customer=customer, actor=admin)
    privacy_services.erase_customer(customer=customer, actor=admin)
    text = json.dumps(list(AuditEntry.objects.values("actor_label", "target_id", "details")))
    for secret in ["PII-88", "Liechtenstein", "p@x.io", *[value for row in imported for value in row if value]]:
        assert f'"{secret}"' not in text and f"{secret}@" not in text, secret


def test_record_refuses_personal_data_keys(admin):
    from rfm_portal.audit.services import record

    before = AuditEntry.objects.count()
    with pytest.raises(ValueError, match="personal data"):
        record(admin, "customer.viewed", ("customers.customer", 1), {"external_id": "C-1"})
    with pytest.raises(ValueError, match="personal data"):
        record(admin, "x.y", None, {"nested": {"country": "France"}})
    assert AuditEntry.objects.count() == before
