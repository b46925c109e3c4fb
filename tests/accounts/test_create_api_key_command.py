from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from rfm_portal.accounts.models import APIKey

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("create_api_key", *args, stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


def test_prints_the_key_once_and_stores_its_hash():
    raw, notes = run("Salesforce")
    key = APIKey.objects.get()
    assert key.name == "Salesforce"
    assert key.hashed_key == APIKey.hash_key(raw)
    assert key.expires_at is None
    assert raw not in notes and key.prefix in notes


def test_expiry_in_days():
    run("Zapier", "--expires-days", "7")
    key = APIKey.objects.get()
    assert 6.99 < (key.expires_at - timezone.now()).total_seconds() / 86400 <= 7


def test_bad_expiry_is_an_error():
    with pytest.raises(CommandError, match="at least one day"):
        run("Zapier", "--expires-days", "0")
    assert not APIKey.objects.exists()
