"""Login throttling: wrong passwords are recorded; N of them lock the account (from that address), clearly said."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.test import Client
from django.utils import timezone

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


@pytest.fixture
def limit(settings) -> int:
    settings.AXES_FAILURE_LIMIT = 5
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    return 5


def attempt(client: Client, password: str, username: str = "alice", ip: str = "127.0.0.10"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip)


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_wrong_passwords_lock_the_account_even_for_the_right_password(analyst, limit):
    client = Client()
    for _ in range(limit - 1):
        response = attempt(client, "wrong-password")
        assert response.status_code == 200 and b"didn't match" in response.content
    response = attempt(client, "wrong-password")  # the limit-th failure locks
    assert response.status_code == 429

    response = attempt(client, PASSWORD)
    assert response.status_code == 429
    assert not logged_in(client)
    page = response.content.decode()
    assert "Too many failed log-in attempts" in page and "even with the right password" in page
    assert "Try again in 15 minutes" in page
    assert response["Retry-After"] == str(15 * 60)


def test_failed_attempts_are_recorded(analyst, limit):
    client = Client()
    for _ in range(3):
        attempt(client, "wrong-password")
    record = AccessAttempt.objects.get(username="alice", ip_address="127.0.0.10")
    assert record.failures_since_start == 3
    assert AccessFailureLog.objects.filter(username="alice").count() == 3


def test_the_lock_lifts_after_the_cool_off(analyst, limit):
    client = Client()
    for _ in range(limit):
        attempt(client, "wrong-password")
    assert attempt(client, PASSWORD).status_code == 429

    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))

    response = attempt(client, PASSWORD)
    assert response.status_code == 302 and logged_in(client)
    assert not AccessAttempt.objects.exists()  # reset on success


def test_the_lock_is_per_username_and_address(analyst, admin, limit):
    for _ in range(limit):
        attempt(Client(), "wrong-password")
    elsewhere = Client()
    assert attempt(elsewhere, PASSWORD, ip="127.0.0.11").status_code == 302 and logged_in(elsewhere)
    other_user = Client()
    assert attempt(other_user, PASSWORD, username="root").status_code == 302 and logged_in(other_user)


def test_a_few_mistakes_then_the_right_password_logs_in_and_clears_the_count(analyst, limit):
    client = Client()
    for _ in range(limit - 1):
        attempt(client, "wrong-password")
    assert attempt(client, PASSWORD).status_code == 302 and logged_in(client)
    assert not AccessAttempt.objects.filter(username="alice").exists()
