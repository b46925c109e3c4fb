from decimal import Decimal

import pytest
from django.urls import reverse

from rfm_portal.customers import selectors
from tests.factories import known_dataset


@pytest.fixture
def data(db):
    return known_dataset()


def test_kpis_match_hand_computed_figures(data):
    kpis = selectors.overview_kpis()
    assert kpis.customers == 3
    assert kpis.active_customers == 2  # A and C bought after 2023-12-21
    assert kpis.revenue == Decimal("220")
    assert kpis.returns_value == Decimal("-20")
    assert kpis.orders == 6
    assert kpis.average_order_value == Decimal("40")
    assert kpis.repeat_customers == 2
    assert kpis.repeat_purchase_rate == pytest.approx(2 / 3)


def test_monthly_revenue_sums_each_calendar_month(data):
    months = {row["month"].strftime("%Y-%m"): row for row in selectors.monthly_revenue()}
    assert sorted(months) == ["2023-10", "2023-11", "2023-12", "2024-01", "2024-03"]
    assert months["2024-03"]["revenue"] == Decimal("10")  # 30 bought, 20 returned
    assert months["2024-03"]["returns"] == Decimal("-20")
    assert months["2024-01"]["customers"] == 2
    assert sum(r["revenue"] for r in months.values()) == Decimal("220")


def test_overview_page_shows_kpis_and_chart(analyst_client, data):
    response = analyst_client.get(reverse("dashboard:overview"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-kpi="customers">3<' in html
    assert 'data-kpi="active">2<' in html
    assert 'data-kpi="aov">£40.00<' in html  # amounts carry the portal currency (GBP by default)
    assert 'data-kpi="repeat">66.7%<' in html
    assert 'id="fig-revenue"' in html
    assert "vendor/plotly/plotly.min.js" in html
    figure = response.context["revenue_figure"]
    net = next(trace for trace in figure["data"] if trace["name"] == "Net revenue")
    assert net["x"] == ["2023-10", "2023-11", "2023-12", "2024-01", "2024-03"]
    assert net["y"] == [100.0, 40.0, 10.0, 60.0, 10.0]


def test_overview_without_data_says_how_to_start(analyst_client):
    response = analyst_client.get(reverse("dashboard:overview"))
    assert response.status_code == 200
    assert "No transactions yet" in response.content.decode()
    assert response.context["revenue_figure"] is None


def test_overview_requires_login(outsider_client):
    response = outsider_client.get(reverse("dashboard:overview"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_every_capability_is_in_the_navigation(analyst_client):
    response = analyst_client.get(reverse("dashboard:overview"))
    titles = [item["title"] for item in response.context["nav_items"]]
    for title in ("Overview", "Customers", "Segments", "Lifetime value", "Churn risk", "Lookalikes", "Uplift",
                  "Campaigns", "Live feed", "Imports"):
        assert title in titles

