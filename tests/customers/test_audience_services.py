"""Audiences: create (fixed list or filter), resolve to customers, update, delete with owner/admin rights."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from rfm_portal.accounts.models import User
from rfm_portal.customers import audiences, selectors, services
from rfm_portal.customers.audiences import AudienceError, register_audience_filter
from rfm_portal.customers.models import Audience, AudienceMember, Customer


@pytest.fixture
def customers(db) -> list[Customer]:
    return [Customer.objects.create(external_id=f"C{i:02d}", country="France" if i % 3 == 0 else "Germany")
            for i in range(12)]


def test_fixed_list_keeps_rank_order_and_scores(customers, analyst):
    picked = [customers[5].pk, customers[1].pk, customers[5].pk, customers[9].pk]
    audience = services.audience_create(name="Lookalikes A", kind="fixed", user=analyst, customer_ids=picked,
                                        scores=[0.9, 0.8, 0.9, 0.7], source="lookalike of segment Champions")
    assert audience.size == 3 and audience.created_by == analyst and audience.kind == Audience.Kind.FIXED
    assert selectors.audience_customer_ids(audience) == [customers[5].pk, customers[1].pk, customers[9].pk]
    rows = list(selectors.audience_member_rows(audience))
    assert rows == [("C05", "Germany", 1, 0.9), ("C01", "Germany", 2, 0.8), ("C09", "France", 3, 0.7)]


def test_filter_audience_is_applied_to_todays_customers(customers, analyst):
    audience = services.audience_create(name="French", kind="filter", user=analyst, filter={"countries": ["France"]})
    assert audience.size == 4 and audience.filter == {"countries": ["France"]}
    Customer.objects.create(external_id="C99", country="France")
    assert len(selectors.audience_customer_ids(audience)) == 5


def test_capability_apps_can_register_filter_keys(customers, analyst, monkeypatch):
    monkeypatch.setattr(audiences, "_FILTERS", dict(audiences._FILTERS))  # this test's key does not leak
    register_audience_filter("id_prefix", label="Id starts with", validate=str,
                             apply=lambda qs, v: qs.filter(external_id__startswith=v))
    audience = services.audience_create(name="C0x", kind="filter", user=analyst, filter={"id_prefix": "C0"})
    assert audience.size == 10


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": " ", "kind": "fixed", "customer_ids": [1]}, "needs a name"),
    ({"name": "x" * 121, "kind": "fixed", "customer_ids": [1]}, "at most 120"),
    ({"name": "A", "kind": "list", "customer_ids": [1]}, "Unknown audience kind"),
    ({"name": "A", "kind": "fixed", "customer_ids": []}, "at least one customer"),
    ({"name": "A", "kind": "fixed", "customer_ids": [10**9]}, "do not exist"),
    ({"name": "A", "kind": "fixed", "customer_ids": [1], "filter": {"countries": ["X"]}}, "no filter"),
    ({"name": "A", "kind": "filter", "filter": {"colour": "red"}}, "Unknown filter key"),
    ({"name": "A", "kind": "filter", "filter": {"countries": []}}, "non-empty list"),
    ({"name": "A", "kind": "filter", "filter": {"min_revenue": float("nan")}}, "finite number"),
    ({"name": "A", "kind": "filter", "filter": ["countries"]}, "must be an object"),
])
def test_bad_audiences_are_refused_and_nothing_is_saved(customers, kwargs, message):
    with pytest.raises(AudienceError, match=message):
        services.audience_create(**kwargs)
    assert not Audience.objects.exists() and not AudienceMember.objects.exists()


def test_names_are_unique_regardless_of_case(customers):
    services.audience_create(name="Spring", kind="fixed", customer_ids=[customers[0].pk])
    with pytest.raises(AudienceError, match="already exists"):
        services.audience_create(name="  SPRING ", kind="fixed", customer_ids=[customers[1].pk])


def test_only_the_owner_or_an_admin_changes_or_deletes(customers, analyst, admin):
    other = User.objects.create_user("bob", "b@example.com", "pw-long-enough-1", role=User.Role.ANALYST)
    audience = services.audience_create(name="Mine", kind="filter", user=analyst, filter={"countries": ["France"]})
    with pytest.raises(PermissionDenied):
        services.audience_update(audience, user=other, name="Theirs")
    with pytest.raises(PermissionDenied):
        services.audience_delete(audience, user=other)
    services.audience_update(audience, user=analyst, name="Renamed", filter={"countries": ["Germany"]})
    audience.refresh_from_db()
    assert audience.name == "Renamed" and audience.size == 8
    services.audience_delete(audience, user=admin)
    assert not Audience.objects.exists()
