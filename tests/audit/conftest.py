"""Each audit test starts from an empty log: tests elsewhere that run real worker or consumer processes commit
rows (imports, trainings) whose audit entries outlive them; the deletion is rolled back with the test."""

from __future__ import annotations

import pytest

from rfm_portal.audit.models import AuditEntry


@pytest.fixture(autouse=True)
def _empty_audit_log(db):
    AuditEntry.objects.all().delete()
