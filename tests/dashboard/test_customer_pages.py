from decimal import Decimal

import pytest
from django.urls import reverse

from rfm_portal.customers.models import CampaignHistory, Customer
from tests.factories import known_dataset


@pytest.fixture
def data(db):
    return known_dataset()


def test_list_orders_by_revenue_with_totals(analyst_client, data):
    response = analyst_client.get(reverse("customers:list"))
    assert response.status_code == 200
    rows = list(response.context["page"])
    assert [c.external_id for c in rows] == ["A", "B", "C"]
    assert [c.revenue for c in rows] == [Decimal("160"), Decimal("40"), Decimal("20")]
    assert [c.orders for c in rows] == [3, 1, 2]


def test_list_search_by_id_prefix_and_country(analyst_client, data):
    by_country = analyst_client.get(reverse("customers:list"), {"q": "united kingdom"})
    assert {c.external_id for c in by_country.context["page"]} == {"A", "C"}
    by_id = analyst_client.get(reverse("customers:list"), {"q": "B"})
    assert [c.external_id for c in by_id.context["page"]] == ["B"]
    nothing = analyst_client.get(reverse("customers:list"), {"q": "zzz"})
    assert nothing.context["page"].paginator.count == 0
    assert "No customers" in nothing.content.decode()


def test_list_pages_through_many_customers(analyst_client, db):
    Customer.objects.bulk_create([Customer(external_id=f"X{i:03d}") for i in range(120)])
    first = analyst_client.get(reverse("customers:list"), {"order": "external_id"})
    assert first.context["page"].paginator.num_pages == 3
    third = analyst_client.get(reverse("customers:list"), {"order": "external_id", "page": 3})
    assert [c.external_id for c in third.context["page"]] == [f"X{i:03d}" for i in range(100, 120)]
    assert "Page 3 of 3" in third.content.decode()


def test_list_ignores_unknown_sort_field(analyst_client, data):
    response = analyst_client.get(reverse("customers:list"), {"order": "password"})
    assert response.status_code == 200
    assert [c.external_id for c in response.context["page"]] == ["A", "B", "C"]


def test_customer_360_shows_profile_totals_and_timeline(analyst_client, data):
    CampaignHistory.objects.create(
        customer=data["A"], campaign="spring", treated=True, converted=True, revenue=Decimal("30"),
        sent_at=data["A"].transactions.first().invoiced_at,
    )
    response = analyst_client.get(reverse("customers:detail", args=["A"]))
    assert response.status_code == 200
    totals = response.context["totals"]
    assert totals.orders == 3
    assert totals.gross_sales == Decimal("180")
    assert totals.returns_value == Decimal("-20")
    assert totals.net_revenue == Decimal("160")
    assert totals.average_order_value == Decimal("60")
    html = response.content.decode()
    assert 'data-total="net">£160.00<' in html  # amounts carry the portal currency (GBP by default)
    assert "United Kingdom" in html and "spring" in html and "C1004" in html
    figure = response.context["timeline_figure"]
    purchases = next(t for t in figure["data"] if t["name"] == "Purchase")
    assert purchases["y"] == [100.0, 50.0, 30.0]
    cumulative = next(t for t in figure["data"] if t["name"] == "Cumulative net revenue")
    assert cumulative["y"][-1] == pytest.approx(160.0)


def test_customer_360_unknown_customer_is_404(analyst_client, data):
    assert analyst_client.get(reverse("customers:detail", args=["nope"])).status_code == 404


def test_customer_pages_require_login(outsider_client, data):
    for url in (reverse("customers:list"), reverse("customers:detail", args=["A"])):
        response = outsider_client.get(url)
        assert response.status_code == 302 and reverse("login") in response["Location"]
