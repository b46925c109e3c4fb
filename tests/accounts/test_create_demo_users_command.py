from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from rfm_portal.accounts.models import User

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("create_demo_users", *args, stdout=out)
    return out.getvalue()


def test_creates_admin_and_analyst_with_given_passwords():
    output = run("--admin-password", "admin-pass-123", "--analyst-password", "analyst-pass-123")
    assert User.objects.get(username="admin").role == User.Role.ADMIN
    assert User.objects.get(username="analyst").role == User.Role.ANALYST
    assert "admin-pass-123" in output and "analyst-pass-123" in output
    assert Client().login(username="admin", password="admin-pass-123")
    assert Client().login(username="analyst", password="analyst-pass-123")


def test_generated_passwords_are_printed_and_work():
    output = run()
    lines = {line.split()[0]: line.split() for line in output.splitlines()[1:]}
    admin_password = lines["admin"][lines["admin"].index("password:") + 1]
    assert len(admin_password) >= 12
    assert Client().login(username="admin", password=admin_password)


def test_idempotent_and_keeps_passwords_unless_given():
    run("--admin-password", "first-pass-123", "--analyst-password", "first-pass-456")
    output = run()
    assert User.objects.filter(username__in=["admin", "analyst"]).count() == 2
    assert "already present" in output
    assert Client().login(username="admin", password="first-pass-123")
    run("--admin-password", "second-pass-123")
    assert Client().login(username="admin", password="second-pass-123")


def test_restores_role_and_activity_of_an_existing_user():
    User.objects.create_user("admin", password="x-pass-123456", role=User.Role.ANALYST, is_active=False)
    run()
    admin = User.objects.get(username="admin")
    assert admin.role == User.Role.ADMIN and admin.is_active
