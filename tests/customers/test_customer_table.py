"""The customer table: every model's active scores in one query, filters across models, CSV of exactly what is
shown, save as a filter audience that resolves to the same customers."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from churn.models import ChurnScore
from cltv.models import CLTVScore
from rfm_portal.customers import selectors
from rfm_portal.customers.models import Audience, Customer
from rfm_portal.customers.table import customer_table
from rfm_portal.dashboard import summaries
from rfm_portal.mlops.models import ModelVersion
from segmentation.models import RFMScore
from tests.factories import make_transaction
from uplift.models import UpliftScore

NOW = datetime(2024, 6, 1, tzinfo=UTC)
# external id: (country, segment, cluster, clv p50, p_alive, risk now, risk before, band, uplift group)
CAST = {
    "A1": ("France", "Champions", 0, 900.0, 0.95, 0.20, 0.10, "low", "persuadable"),
    "B2": ("France", "At Risk", 1, 500.0, 0.60, 0.70, 0.40, "high", "persuadable"),
    "C3": ("Germany", "At Risk", 1, 450.0, 0.50, 0.65, 0.64, "high", "sure_thing"),
    "D4": ("Germany", "Hibernating", 2, 20.0, 0.05, 0.99, 0.90, "high", "lost_cause"),
    "=E5": ("=cmd", "Champions", 0, 700.0, 0.90, 0.30, 0.35, "medium", "sleeping_dog"),
}


def _version(kind: str, version: int, status: str = "active") -> ModelVersion:
    return ModelVersion.objects.create(kind=kind, version=version, status=status, data_cutoff=NOW)


@pytest.fixture
def cast(db) -> dict[str, Customer]:
    seg, cltv, uplift = _version("segmentation", 1), _version("cltv", 1), _version("uplift", 1)
    churn_old, churn = _version("churn", 1, "retired"), _version("churn", 2)
    customers = {}
    for n, (eid, (country, segment, cluster, clv, p_alive, risk, before, band, group)) in enumerate(CAST.items()):
        c = customers[eid] = Customer.objects.create(external_id=eid, country=country)
        for k in range(n + 1):
            make_transaction(c, f"{eid}-{k}", f"2024-0{k + 1}-10T10:00:00", 1, f"{100 * (n + 1)}.00")
        RFMScore.objects.create(model_version=seg, customer=c, recency_days=10, frequency=n + 1, monetary=100,
                                first_purchase=NOW, last_purchase=NOW, r_score=3, f_score=3, m_score=3,
                                rfm_code="333", segment=segment, cluster=cluster, cluster_name=f"group {cluster}")
        CLTVScore.objects.create(customer=c, model_version=cltv, first_purchase=NOW.date(), frequency=n, recency=1,
                                 T=2, monetary=10, p_alive=p_alive, expected_purchases_30d=0.1,
                                 expected_purchases_90d=0.3, expected_purchases_365d=1, expected_aov=10, clv=clv,
                                 clv_p10=clv * 0.5, clv_p50=clv, clv_p90=clv * 2)
        for mv, p in ((churn, risk), (churn_old, before)):
            ChurnScore.objects.create(customer=c, model_version=mv, probability=p, risk_band=band, scored_at=NOW)
        UpliftScore.objects.create(customer=c, model_version=uplift, uplift=0.1, uplift_low=0, uplift_high=0.2,
                                   baseline=0.3, revenue_uplift=5, group=group, expected_profit=1, contact=True,
                                   scored_at=NOW)
    Customer.objects.create(external_id="Z9", country="Spain")  # never bought, never scored
    return customers


def ids(qs) -> list[str]:
    return [c.external_id for c in qs]


def test_every_active_score_is_on_the_row(cast):
    row = customer_table({}, "external_id").get(external_id="B2")
    assert (row.segment, row.cluster, row.cluster_name) == ("At Risk", 1, "group 1")
    assert (row.clv_p10, row.clv_p50, row.clv_p90, row.p_alive) == (250.0, 500.0, 1000.0, 0.6)
    assert (row.churn_risk, row.risk_band, row.uplift_group) == (0.70, "high", "persuadable")
    assert row.risk_change == pytest.approx(0.30)
    assert (row.orders, float(row.revenue)) == (2, 400.0)
    unscored = customer_table({}, "external_id").get(external_id="Z9")
    assert unscored.churn_risk is None and unscored.clv_p50 is None and unscored.orders == 0


def test_one_query_for_a_page_whatever_the_filters(cast):
    spec = {"min_clv": 100.0, "risk_rising": True, "segments": ["At Risk", "Champions"], "uplift_groups":
            ["persuadable", "sure_thing"], "risk_bands": ["high", "low"], "countries": ["France", "Germany"],
            "clusters": ["0", "1"], "search": "2"}
    summaries.ensure_customer_totals()  # rebuilt once after the data changed (tests/dashboard/test_summaries.py)
    with CaptureQueriesContext(connection) as ctx:
        rows = list(customer_table(spec, "-clv_p50")[:50])
    assert ids(rows) == ["B2"]
    # model-version look-ups are tiny (one per app and per filter), and so is the check that the stored totals
    # are current (counters, highest ids); the rows come from one statement, joining scores and totals
    rows_statements = [q["sql"] for q in ctx.captured_queries
                       if "FROM \"customers_customer\"" in q["sql"] and "JOIN" in q["sql"]]
    assert len(rows_statements) == 1 and "dashboard_customertotals" in rows_statements[0]


@pytest.mark.parametrize(("spec", "expected"), [
    ({"min_clv": 450.0, "risk_rising": True}, ["A1", "B2"]),  # valuable, risk up ≥ 5 points (C3 +1 only)
    ({"segments": ["At Risk"]}, ["B2", "C3"]),
    ({"clusters": ["0"]}, ["=E5", "A1"]),
    ({"uplift_groups": ["lost_cause", "sleeping_dog"]}, ["=E5", "D4"]),
    ({"risk_bands": ["high"], "countries": ["Germany"]}, ["C3", "D4"]),
    ({"min_p_alive": 0.5, "min_risk": 0.6}, ["B2", "C3"]),
    ({"search": "rman"}, ["C3", "D4"]),  # partial text, anywhere in id or country
])
def test_filters_combine(cast, spec, expected):
    assert ids(customer_table(spec, "external_id")) == expected


def test_sort_by_model_columns_puts_unscored_last(cast):
    assert ids(customer_table({}, "-churn_risk")) == ["D4", "B2", "C3", "=E5", "A1", "Z9"]
    assert ids(customer_table({}, "clv_p50")) == ["D4", "C3", "B2", "=E5", "A1", "Z9"]
    assert ids(customer_table({}, "-risk_change"))[:2] == ["B2", "A1"]
    assert ids(customer_table({}, "no_such_column"))[0] == "A1"  # unknown → the default: CLV, highest first
    assert ids(customer_table({}, "-revenue"))[0] == "=E5"


def test_page_shows_filters_and_scores(cast, analyst_client):
    response = analyst_client.get(reverse("customers:list"), {"segments": "At Risk", "order": "-clv_p50"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "2 customers match" in body and "At Risk" in body and "▲ +30 pts" in body and "Persuadable" in body
    assert body.index(">B2<") < body.index(">C3<")


def test_bad_number_is_reported_not_ignored(cast, analyst_client):
    response = analyst_client.get(reverse("customers:list"), {"min_clv": "lots"})
    assert response.status_code == 200 and "Not a number." in response.content.decode()
    assert analyst_client.get(reverse("customers:list-csv"), {"min_clv": "lots"}).status_code == 400


def test_csv_is_what_the_table_shows_and_formula_safe(cast, analyst_client):
    params = {"countries": ["France", "=cmd"], "order": "-churn_risk"}
    response = analyst_client.get(reverse("customers:list-csv"), params)
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    header, body = rows[0], rows[1:]
    assert header[:2] == ["customer_id", "country"] and "clv_p10" in header and "uplift_group" in header
    assert [r[0] for r in body] == ["B2", "'=E5", "A1"]
    assert body[1][1] == "'=cmd"
    b2 = dict(zip(header, body[0], strict=True))
    assert (b2["clv_p50"], b2["clv_p90"], b2["churn_risk"], b2["risk_band"], b2["risk_change"]) == (
        "500.00", "1000.00", "0.7000", "high", "0.3000")
    assert (b2["orders"], b2["revenue"], b2["last_purchase"]) == ("2", "400.00", "2024-02-10")


def test_save_as_audience_stores_the_filters_and_resolves_them(cast, analyst_client, analyst):
    data = {"name": "Valuable, risk rising", "min_clv": "450", "risk_rising": "1", "query": "min_clv=450"}
    response = analyst_client.post(reverse("customers:list-save-audience"), data)
    assert response.status_code == 302
    audience = Audience.objects.get(name="Valuable, risk rising")
    assert audience.kind == Audience.Kind.FILTER and audience.filter == {"min_clv": 450.0, "risk_rising": True}
    assert audience.size == 2 and audience.created_by == analyst
    assert sorted(selectors.audience_customer_ids(audience)) == sorted([cast["A1"].pk, cast["B2"].pk])


def test_save_as_audience_refuses_without_a_name(cast, analyst_client):
    response = analyst_client.post(reverse("customers:list-save-audience"), {"name": " ", "segments": "At Risk"})
    assert response.status_code == 302 and not Audience.objects.exists()
