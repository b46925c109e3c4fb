import pytest
from django.urls import reverse

from rfm_portal.accounts.models import User
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_user_list_shows_every_user_with_role(admin_client, analyst, admin):
    response = admin_client.get(reverse("accounts:users"))
    assert response.status_code == 200
    assert [u.username for u in response.context["users"]] == ["alice", "root"]
    body = response.content.decode()
    assert "alice" in body and "root" in body


def test_analyst_gets_403_on_every_user_admin_page(analyst_client, analyst):
    assert analyst_client.get(reverse("accounts:users")).status_code == 403
    assert analyst_client.get(reverse("accounts:user-create")).status_code == 403
    assert analyst_client.post(reverse("accounts:user-create"), {"username": "x"}).status_code == 403
    assert analyst_client.post(reverse("accounts:user-role", args=[analyst.pk]), {"role": "admin"}).status_code == 403
    analyst.refresh_from_db()
    assert analyst.role == User.Role.ANALYST


def test_admin_creates_user_with_role_and_initial_password(admin_client, client):
    response = admin_client.post(
        reverse("accounts:user-create"),
        {"username": "bob", "email": "bob@example.com", "role": "admin", "password": "a-long-enough-pass-7"},
    )
    assert response.status_code == 302
    bob = User.objects.get(username="bob")
    assert bob.role == User.Role.ADMIN
    assert bob.is_portal_admin
    assert client.login(username="bob", password="a-long-enough-pass-7")


def test_create_user_rejects_weak_password_and_duplicate_username(admin_client, analyst):
    weak = admin_client.post(reverse("accounts:user-create"), {"username": "bob", "role": "analyst", "password": "123"})
    assert weak.status_code == 200
    assert weak.context["form"].errors["password"]
    duplicate = admin_client.post(
        reverse("accounts:user-create"), {"username": "ALICE", "role": "analyst", "password": "a-long-enough-pass-7"}
    )
    assert "already exists" in str(duplicate.context["form"].errors["username"])
    assert not User.objects.filter(username="bob").exists()


def test_admin_changes_role(admin_client, analyst):
    response = admin_client.post(reverse("accounts:user-role", args=[analyst.pk]), {"role": "admin"})
    assert response.status_code == 302
    analyst.refresh_from_db()
    assert analyst.role == User.Role.ADMIN


def test_last_admin_cannot_be_demoted(admin_client, admin):
    response = admin_client.post(reverse("accounts:user-role", args=[admin.pk]), {"role": "analyst"}, follow=True)
    admin.refresh_from_db()
    assert admin.role == User.Role.ADMIN
    assert "last active admin" in response.content.decode()


def test_deactivated_user_can_no_longer_log_in(admin_client, analyst, client):
    response = admin_client.post(reverse("accounts:user-deactivate", args=[analyst.pk]))
    assert response.status_code == 302
    analyst.refresh_from_db()
    assert analyst.is_active is False
    assert not client.login(username="alice", password=PASSWORD)


def test_admin_cannot_deactivate_themselves(admin_client, admin):
    admin_client.post(reverse("accounts:user-deactivate", args=[admin.pk]))
    admin.refresh_from_db()
    assert admin.is_active is True


def test_role_and_deactivate_refuse_get(admin_client, analyst):
    assert admin_client.get(reverse("accounts:user-deactivate", args=[analyst.pk])).status_code == 405
    analyst.refresh_from_db()
    assert analyst.is_active
