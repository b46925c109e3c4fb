"""The audit log page (admins only): filters, pages and a formula-safe CSV of the same selection."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from rfm_portal.audit.models import AuditEntry
from rfm_portal.audit.services import record


def row(action: str) -> str:
    return f"<code>{action}</code>"


def _entries(admin):
    record(admin, "model.promoted", ("mlops.modelversion", 7), {"kind": "churn", "version": 3})
    record(None, "auth.login_failed", ("accounts.user", ""), {}, actor_label="=HYPERLINK(\"http://x\")")
    old = record(admin, "import.succeeded", ("customers.importjob", 1), {"rows_inserted": 10})
    AuditEntry.objects.filter(pk=old.pk).update(at=timezone.now() - timedelta(days=40))


def test_admin_sees_entries_and_filters(admin_client, admin):
    _entries(admin)
    page = admin_client.get(reverse("audit:log")).content.decode()
    assert all(row(a) in page for a in ("model.promoted", "auth.login_failed", "import.succeeded"))
    only_models = admin_client.get(reverse("audit:log"), {"action": "model."}).content.decode()
    assert row("model.promoted") in only_models and row("auth.login_failed") not in only_models
    since = (timezone.now() - timedelta(days=1)).date().isoformat()
    recent = admin_client.get(reverse("audit:log"), {"since": since}).content.decode()
    assert row("import.succeeded") not in recent and row("model.promoted") in recent
    by_user = admin_client.get(reverse("audit:log"), {"actor": "root", "action": "model.promoted"}).content.decode()
    assert "mlops.modelversion #7" in by_user


def test_bad_filter_says_so(admin_client):
    response = admin_client.get(reverse("audit:log"), {"since": "2025-02-01", "until": "2025-01-01"})
    assert response.status_code == 200 and "after" in response.content.decode()


def test_csv_is_filtered_and_formula_safe(admin_client, admin):
    _entries(admin)
    response = admin_client.get(reverse("audit:log-csv"), {"action": "auth."})
    assert response["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["at", "user", "action", "object_type", "object_id", "ip_address", "details"]
    actions = [r[2] for r in rows[1:]]
    assert "auth.login_failed" in actions and "model.promoted" not in actions
    failed = next(r for r in rows[1:] if r[2] == "auth.login_failed")
    assert failed[1].startswith("'=")  # neutralised, never a live formula


def test_analysts_are_refused(analyst_client):
    assert analyst_client.get(reverse("audit:log")).status_code == 403
    assert analyst_client.get(reverse("audit:log-csv")).status_code == 403
