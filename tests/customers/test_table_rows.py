"""Paging the customer table and the churn lists by ``TableRows``: customers with a value in the sort column first
(read in the column's order), then those without; every page must hold exactly the rows the one-query table
(``customer_table`` / ``action_list``, sorted with nulls last) has at those positions, across the boundary
between the two parts, with every filter, in both directions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.paginator import Paginator
from django.urls import reverse

from churn import selectors as churn_selectors
from churn.models import ChurnScore
from cltv.models import CLTVScore
from rfm_portal.customers.models import Customer
from rfm_portal.customers.table import TableRows, customer_table, customer_table_rows, table_columns
from rfm_portal.mlops.models import ModelVersion
from segmentation.models import RFMScore
from tests.factories import make_transaction
from uplift.models import UpliftScore

NOW = datetime(2024, 6, 1, tzinfo=UTC)
# id: (country, orders, clv p50 or None = no CLTV score, p_alive, churn risk or None = no churn score, segment)
# Ties on purpose (CLV 300 three times, risk 0.5 twice): the customer id breaks them.
CAST = {
    "c01": ("France", 3, 900.0, 0.90, 0.20, "Champions"),
    "c02": ("France", 1, 300.0, 0.60, 0.50, "At Risk"),
    "c03": ("Germany", 2, 300.0, 0.10, 0.90, "At Risk"),
    "c04": ("Germany", 0, 300.0, 0.70, None, "Hibernating"),
    "c05": ("Spain", 4, 50.0, 0.05, 0.99, "Hibernating"),
    "c06": ("Spain", 1, None, None, 0.50, "Champions"),
    "c07": ("France", 2, None, None, None, "At Risk"),
    "c08": ("Germany", 0, None, None, None, None),
    "c09": ("France", 1, 10.0, 0.15, 0.30, "At Risk"),
    "c10": ("Spain", 0, None, None, 0.70, None),
}
PAGE_SIZES = (1, 3, 4)


@pytest.fixture
def cast(db) -> dict[str, Customer]:
    seg = ModelVersion.objects.create(kind="segmentation", version=1, status="active", data_cutoff=NOW)
    cltv = ModelVersion.objects.create(kind="cltv", version=1, status="active", data_cutoff=NOW)
    churn = ModelVersion.objects.create(kind="churn", version=1, status="active", data_cutoff=NOW,
                                        params={"horizon_days": 90})
    uplift = ModelVersion.objects.create(kind="uplift", version=1, status="active", data_cutoff=NOW)
    customers = {}
    for n, (eid, (country, orders, clv, p_alive, risk, segment)) in enumerate(CAST.items()):
        c = customers[eid] = Customer.objects.create(external_id=eid, country=country)
        for k in range(orders):
            make_transaction(c, f"{eid}-{k}", f"2024-0{k + 1}-1{n % 10}T10:00:00", 1, f"{(n + 3) * 7}.00")
        if segment is not None:
            RFMScore.objects.create(model_version=seg, customer=c, recency_days=10, frequency=1, monetary=1,
                                    first_purchase=NOW, last_purchase=NOW, r_score=3, f_score=3, m_score=3,
                                    rfm_code="333", segment=segment, cluster=n % 2, cluster_name=f"group {n % 2}")
        if clv is not None:
            CLTVScore.objects.create(customer=c, model_version=cltv, first_purchase=NOW.date(), frequency=1,
                                     recency=1, T=2, monetary=1, p_alive=p_alive, expected_purchases_30d=0,
                                     expected_purchases_90d=0, expected_purchases_365d=0, expected_aov=1, clv=clv,
                                     clv_p10=clv / 2, clv_p50=clv, clv_p90=clv * 2)
        if risk is not None:
            ChurnScore.objects.create(customer=c, model_version=churn, probability=risk,
                                      risk_band="high" if risk >= 0.5 else "low", scored_at=NOW)
            UpliftScore.objects.create(customer=c, model_version=uplift, uplift=0.1, uplift_low=0, uplift_high=0.2,
                                       baseline=0.3, revenue_uplift=5, expected_profit=1, contact=True,
                                       group="persuadable" if n % 2 else "sure_thing", scored_at=NOW)
    return customers


def ids(rows) -> list[str]:
    return [c.external_id for c in rows]


def paged(rows, size: int) -> list[str]:
    """Every page of a Paginator over ``rows``, concatenated."""
    paginator = Paginator(rows, size)
    return [eid for number in paginator.page_range for eid in ids(paginator.page(number).object_list)]


def sort_keys() -> list[str]:
    keys = [column.key for column in table_columns() if column.sortable] + ["external_id", "country"]
    return [order for key in keys for order in (key, f"-{key}")]


def test_pages_hold_the_one_query_tables_rows_for_every_order(cast):
    for order in sort_keys():
        expected = ids(customer_table({}, order))
        assert len(expected) == len(CAST), order
        for size in PAGE_SIZES:
            assert paged(customer_table_rows({}, order), size) == expected, (order, size)


def test_the_default_order_puts_scored_customers_by_value_then_the_unscored_by_id(cast):
    rows = customer_table_rows({}, "")
    assert rows.part_counts == [6, 4]
    # CLV 900, then three at 300 by id, 50, 10; then the four without a CLV score, by id. Page 2 of size 4
    # crosses the boundary between the two parts.
    assert paged(rows, 4) == ["c01", "c02", "c03", "c04", "c05", "c09", "c06", "c07", "c08", "c10"]
    assert ids(Paginator(rows, 4).page(2).object_list) == ["c05", "c09", "c06", "c07"]
    rows = customer_table_rows({}, "")
    assert all(r.clv_p50 is None for r in rows[6:10]) and rows[0:1][0].clv_p90 == 1800.0  # full rows, every column


def test_slices_anywhere(cast):
    expected = ids(customer_table({}, "-churn_risk"))
    rows = customer_table_rows({}, "-churn_risk")
    for start in range(len(expected) + 1):
        for stop in range(start, len(expected) + 2):
            assert ids(rows[start:stop]) == expected[start:stop], (start, stop)
    with pytest.raises(TypeError):
        rows[3]


@pytest.mark.parametrize("spec", [
    {"countries": ["France", "Spain"]},
    {"min_clv": 100.0},
    {"segments": ["At Risk"], "search": "0"},
    {"risk_bands": ["high"]},
    {"uplift_groups": ["persuadable"], "countries": ["Spain", "Germany"]},
    {"search": "c1"},
    {"countries": ["Portugal"]},  # nobody
])
def test_filters_across_models_keep_rows_and_order(cast, spec):
    for order in ("", "-clv_p50", "churn_risk", "-revenue", "orders", "-segment", "external_id"):
        expected = ids(customer_table(spec, order))
        for size in PAGE_SIZES:
            assert paged(customer_table_rows(spec, order), size) == expected, (spec, order, size)


def test_without_models_the_table_pages_by_id_or_revenue(db):
    for n in range(5):
        c = Customer.objects.create(external_id=f"n{n}", country="France")
        for k in range(n % 3):
            make_transaction(c, f"n{n}-{k}", "2024-01-10T10:00:00", 1, f"{10 * (n + 1)}.00")
    # no CLV yet: nobody has a value in the default order's column, so every customer is in the second part
    assert ids(customer_table({}, "")) == paged(customer_table_rows({}, ""), 2) == ["n0", "n1", "n2", "n3", "n4"]
    # revenue: n2 2 × 30, n4 50, n1 20; n0 and n3 never bought (no revenue), last by id
    assert paged(customer_table_rows({}, "-revenue"), 2) == ["n2", "n4", "n1", "n0", "n3"]


def test_table_page_shows_the_boundary_rows(cast, analyst_client, monkeypatch):
    from rfm_portal.customers import views

    monkeypatch.setattr(views, "PAGE_SIZE", 4)
    response = analyst_client.get(reverse("customers:list"), {"page": 2, "order": "-churn_risk"})
    assert response.status_code == 200
    assert "10 customers match" in response.content.decode()
    # risk: c05 .99, c03 .90, c10 .70, c02 .50, c06 .50, c09 .30, c01 .20; then the unscored c04, c07, c08
    assert ids(response.context["page"].object_list) == ["c06", "c09", "c01", "c04"]
    body = response.content.decode()
    assert body.index(">c01<") < body.index(">c04<")


@pytest.mark.parametrize("view", [churn_selectors.AT_RISK, churn_selectors.WIN_BACK])
@pytest.mark.parametrize("threshold", [0.2, 0.65])
def test_churn_lists_page_like_the_one_query_list(cast, settings, view, threshold):
    settings.CHURN_WINBACK_P_ALIVE = threshold
    filters = [churn_selectors.AtRiskFilters(), churn_selectors.AtRiskFilters(band="high"),
               churn_selectors.AtRiskFilters(country="france"), churn_selectors.AtRiskFilters(min_probability=0.4)]
    for order in churn_selectors.ORDERS[view]:
        for flt in filters:
            expected = ids(churn_selectors.action_list(flt, view, order))
            for size in PAGE_SIZES:
                assert paged(churn_selectors.action_rows(flt, view, order), size) == expected, (order, flt, size)


def test_at_risk_ranks_by_value_at_risk_then_risk(cast):
    rows = churn_selectors.action_rows(churn_selectors.AtRiskFilters(), churn_selectors.AT_RISK)
    assert isinstance(rows, TableRows)
    # value at risk: c01 900 × .2 = 180, c02 300 × .5 = 150; no CLV (unknown value), by risk: c10 .70, c06 .50
    assert paged(rows, 3) == ["c01", "c02", "c10", "c06"]
    win_back = churn_selectors.action_rows(churn_selectors.AtRiskFilters(), churn_selectors.WIN_BACK)
    # P(alive) below 0.2, by past revenue: c05 4 × 49, c09 77, c03 2 × 35
    assert paged(win_back, 1) == ["c05", "c09", "c03"]


def test_unfiltered_counts_are_stored_and_follow_the_totals_they_count(cast):
    from rfm_portal.customers.table import table_counts
    from rfm_portal.dashboard import summaries
    from rfm_portal.dashboard.models import PageSummary

    rows = customer_table_rows({}, "-clv_p50")
    assert rows.part_counts == [6, 4]
    stored = PageSummary.objects.get(name="customers.table_counts").payload
    assert (stored["customers"], stored["clv_p50"], stored["churn_risk"], stored["revenue"]) == (10, 6, 7, 7)
    for order in sort_keys():  # the stored counts split every order where the one-query table does
        assert paged(customer_table_rows({}, order), 3) == ids(customer_table({}, order)), order
    # a new customer (any path): the data key changes, totals and counts are rebuilt, and the new one is paged
    Customer.objects.create(external_id="c11", country="Spain")
    assert customer_table_rows({}, "").part_counts == [6, 5]
    assert paged(customer_table_rows({}, ""), 4)[-1] == "c11"
    # totals rebuilt on their own (e.g. stream events once stale): the counts are recounted against them
    summaries.refresh("customer_totals")
    assert table_counts()["totals_at"] == PageSummary.objects.get(name="customer_totals").computed_at.isoformat()


def test_churn_list_counts_are_stored_and_follow_the_threshold(cast, settings):
    from rfm_portal.dashboard.models import PageSummary

    settings.CHURN_WINBACK_P_ALIVE = 0.2
    rows = churn_selectors.action_rows(churn_selectors.AtRiskFilters(), churn_selectors.WIN_BACK, "-clv_p50")
    assert rows.part_counts == [3, 0]  # c05, c09, c03: all with a CLV
    stored = PageSummary.objects.get(name="churn.list_counts").payload
    assert stored["at-risk"]["rows"] == 4 and stored["at-risk"]["value_at_risk"] == 2
    settings.CHURN_WINBACK_P_ALIVE = 0.65  # now c02 (0.60) is gone too
    rows = churn_selectors.action_rows(churn_selectors.AtRiskFilters(), churn_selectors.WIN_BACK, "-clv_p50")
    assert rows.part_counts == [4, 0]
    assert paged(rows, 3) == ids(churn_selectors.action_list(churn_selectors.AtRiskFilters(), "win-back", "-clv_p50"))
