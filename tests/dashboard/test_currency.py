"""One currency setting: amounts on pages, CSV headers and the API docs use it."""

import pytest
from django.template import Context, Template

from rfm_portal.dashboard.currency import format_money, money_column, money_label


def test_default_currency_is_pounds(settings):
    settings.CURRENCY, settings.CURRENCY_SYMBOL = "GBP", ""
    assert format_money(29650.123) == "£29,650"
    assert format_money(-29650.1) == "−£29,650"
    assert format_money(12.345) == "£12.35"
    assert format_money(None) == "–" and format_money(float("nan")) == "–"
    assert money_column("clv") == "clv_gbp" and money_label("Net revenue") == "Net revenue (£)"


def test_another_currency_and_an_explicit_symbol(settings):
    settings.CURRENCY, settings.CURRENCY_SYMBOL = "EUR", ""
    assert format_money(1234.5, 2) == "€1,234.50" and money_column("net_revenue") == "net_revenue_eur"
    settings.CURRENCY, settings.CURRENCY_SYMBOL = "XYZ", ""
    assert format_money(5) == "XYZ 5.00"
    settings.CURRENCY_SYMBOL = "Ƶ"
    assert format_money(500) == "Ƶ500"


def test_template_filters(settings):
    settings.CURRENCY, settings.CURRENCY_SYMBOL = "USD", ""
    html = Template("{% load portal %}{{ a|money }} {{ a|money:2 }} {{ b|number }} {{ b|number:1 }}").render(
        Context({"a": 1234.5, "b": -29650.04})
    )
    assert html == "$1,234 $1,234.50 -29,650 -29,650.0"


@pytest.mark.django_db
def test_api_docs_state_the_currency(analyst_client, settings):
    schema = analyst_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert f"are in {settings.CURRENCY}" in schema["info"]["description"]
