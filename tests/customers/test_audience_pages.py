"""The Audiences page: list, CSV of members, delete (owner or admin)."""

from __future__ import annotations

import csv
import io

import pytest

from rfm_portal.customers import services
from rfm_portal.customers.models import Audience, Customer


@pytest.fixture
def audience(db, analyst):
    customers = [Customer.objects.create(external_id=f"C{i}", country="France") for i in range(3)]
    return services.audience_create(name="Gardeners lookalikes", kind="fixed", user=analyst,
                                    customer_ids=[c.pk for c in reversed(customers)], scores=[0.9, 0.8, 0.7],
                                    source="lookalike of cluster 2")


def test_the_list_shows_name_size_source_and_creator(analyst_client, audience):
    body = analyst_client.get("/audiences/").content.decode()
    assert "Gardeners lookalikes" in body and "lookalike of cluster 2" in body and "alice" in body
    assert f'data-audience="{audience.pk}"' in body and "Delete" in body


def test_members_csv_in_rank_order(analyst_client, audience):
    response = analyst_client.get(f"/audiences/members.csv?id={audience.pk}")
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["customer_id"] for r in rows] == ["C2", "C1", "C0"] and rows[0]["score"] == "0.9000"
    assert analyst_client.get("/audiences/members.csv?id=999999").status_code == 404
    assert analyst_client.get("/audiences/members.csv?id=x").status_code == 404


def test_delete_by_another_analyst_is_refused_by_the_owner_allowed(client, analyst_client, audience):
    from rfm_portal.accounts.models import User

    other = User.objects.create_user("bob", "b@example.com", "pw-long-enough-1", role=User.Role.ANALYST)
    client.force_login(other)
    assert "Delete" not in client.get("/audiences/").content.decode().split("<tbody>")[1]
    client.post("/audiences/delete/", {"id": audience.pk})
    assert Audience.objects.filter(pk=audience.pk).exists()
    response = analyst_client.post("/audiences/delete/", {"id": audience.pk})
    assert response.status_code == 302 and not Audience.objects.filter(pk=audience.pk).exists()


def test_an_admin_may_delete_anyones(admin_client, audience):
    admin_client.post("/audiences/delete/", {"id": audience.pk})
    assert not Audience.objects.exists()
