"""Stored page summaries: equal to the live aggregates, served while the data hold, refreshed when they change."""

from __future__ import annotations

from dataclasses import asdict

import pytest
from django.db.models import Count, Max, Q, Sum
from django.urls import reverse

from rfm_portal.customers import selectors
from rfm_portal.customers.models import Customer
from rfm_portal.customers.services import import_transactions
from rfm_portal.dashboard import charts, summaries, views
from rfm_portal.dashboard.models import CustomerTotals, PageSummary
from rfm_portal.privacy.services import erase_customer
from tests.factories import known_dataset, make_transaction


@pytest.fixture
def data(db):
    return known_dataset()


def _stored_kpis() -> dict:
    return asdict(views._kpis(PageSummary.objects.get(name="overview").payload["kpis"]))


def test_stored_overview_equals_the_live_aggregates(data):
    payload = summaries.get("overview")
    assert asdict(views._kpis(payload["kpis"])) == asdict(selectors.overview_kpis())
    assert payload["revenue_figure"] == charts.monthly_revenue_figure(selectors.monthly_revenue())
    stored = PageSummary.objects.get(name="overview")
    assert stored.payload == payload
    assert stored.key["rows"]["customer"] == Customer.objects.aggregate(m=Max("pk"))["m"]


def test_the_page_serves_the_stored_summary_until_the_data_change(data, analyst_client):
    summaries.get("overview")
    PageSummary.objects.filter(name="overview").update(payload={**PageSummary.objects.get(name="overview").payload,
                                                                "revenue_figure": {"data": [], "marker": 1}})
    # nothing changed: the stored payload is what the page shows (here, the marker planted above)
    assert analyst_client.get(reverse("dashboard:overview")).context["revenue_figure"] == {"data": [], "marker": 1}
    # a transaction written by any path (no hook) changes the highest id: recomputed
    make_transaction(data["B"], "2002", "2024-03-25T10:00", 1, "7.00")
    response = analyst_client.get(reverse("dashboard:overview"))
    assert response.context["revenue_figure"] == charts.monthly_revenue_figure(selectors.monthly_revenue())
    assert response.context["kpis"].revenue == selectors.overview_kpis().revenue
    assert 'data-kpi="active">3<' in response.content.decode()  # B bought again within the 90 days


def test_an_import_refreshes_the_summaries_once_it_commits(data, tmp_path, django_capture_on_commit_callbacks):
    summaries.get("overview")
    imports_before = summaries.counters()["import"]  # counters are rows other (committing) tests may have bumped
    csv = tmp_path / "more.csv"
    csv.write_text("invoice,customer_id,invoiced_at,quantity,unit_price,country\n"
                   "9001,NEW1,2024-03-21 10:00:00,2,15.00,Germany\n")
    with django_capture_on_commit_callbacks(execute=True):
        job = import_transactions(csv, file_name="more.csv")
    assert job.status == "succeeded", job.message
    assert summaries.counters()["import"] == imports_before + 1
    stored = PageSummary.objects.get(name="overview")
    assert stored.key["counters"]["import"] == imports_before + 1  # computed by the hook, not by a page visit
    assert _stored_kpis() == asdict(selectors.overview_kpis())
    assert _stored_kpis()["customers"] == 4
    totals = CustomerTotals.objects.get(customer__external_id="NEW1")
    assert (totals.orders, float(totals.revenue)) == (1, 30.0)


def test_a_stream_batch_outdates_the_overview_after_the_allowed_age(data, settings):
    summaries.get("overview")
    streams_before = summaries.counters()["stream"]
    make_transaction(data["B"], "2002", "2024-03-25T10:00", 1, "7.00")
    summaries.bump("stream")  # what data_changed("stream") does once the batch commits
    settings.PAGE_SUMMARY_STREAM_MAX_AGE = 60
    assert views._kpis(summaries.get("overview")["kpis"]).orders == 6  # within a minute: the stored one
    settings.PAGE_SUMMARY_STREAM_MAX_AGE = 0
    assert views._kpis(summaries.get("overview")["kpis"]).orders == 7
    assert PageSummary.objects.get(name="overview").key["counters"]["stream"] == streams_before + 1


def test_erasure_drops_every_summary_and_the_next_view_recomputes(data, admin):
    summaries.get("overview")
    summaries.ensure_customer_totals()
    erasures_before = summaries.counters()["erasure"]
    erase_customer(customer=data["A"], actor=admin)
    assert not PageSummary.objects.exists()
    assert summaries.counters()["erasure"] == erasures_before + 1
    assert not summaries.summaries_contain(data["A"].pk, "A")
    kpis = views._kpis(summaries.get("overview")["kpis"])
    assert kpis.customers == 2 and kpis == selectors.overview_kpis()
    assert not CustomerTotals.objects.filter(customer_id=data["A"].pk).exists()


def test_stored_customer_totals_equal_the_live_per_customer_aggregates(data):
    Customer.objects.create(external_id="Z", country="Spain")  # no transactions: 0 orders, no revenue
    summaries.ensure_customer_totals()
    live = {c.pk: (c.orders, c.revenue, c.last_purchase) for c in Customer.objects.annotate(
        orders=Count("transactions__invoice", distinct=True, filter=Q(transactions__is_return=False)),
        revenue=Sum("transactions__amount"),
        last_purchase=Max("transactions__invoiced_at", filter=Q(transactions__is_return=False)))}
    stored = {t.customer_id: (t.orders, t.revenue, t.last_purchase) for t in CustomerTotals.objects.all()}
    assert stored == live
    assert stored[data["A"].pk][:2] == (3, 160)


def _broken(versions):
    raise RuntimeError("boom")


def test_a_failing_refresh_never_breaks_the_change_that_triggered_it(data, monkeypatch, caplog,
                                                                   django_capture_on_commit_callbacks):
    monkeypatch.setitem(summaries.SPECS, "overview", summaries.SummarySpec(
        "overview", "tests.dashboard.test_summaries._broken", counters=summaries.COUNTERS))
    imports_before = summaries.counters()["import"]
    with django_capture_on_commit_callbacks(execute=True):
        summaries.data_changed("import")
    assert summaries.counters()["import"] == imports_before + 1
    assert "could not refresh page summary overview" in caplog.text


def test_filter_choice_lists_are_stored_and_follow_the_data_and_the_model(data):
    from datetime import UTC, datetime

    from rfm_portal.mlops.models import ModelVersion
    from segmentation import selectors as segmentation_selectors
    from segmentation.models import RFMScore

    assert selectors.countries() == ["France", "United Kingdom"]
    assert PageSummary.objects.get(name="customers.countries").payload == {"countries": ["France", "United Kingdom"]}
    Customer.objects.create(external_id="D", country="Germany")  # any path: the highest customer id changes
    assert selectors.countries() == ["France", "Germany", "United Kingdom"]

    assert segmentation_selectors.choices() == ([], [])  # no segmentation yet
    now = datetime(2024, 6, 1, tzinfo=UTC)

    def segmentation(version: int, rows: list[tuple[str, str, int, str]]) -> None:
        ModelVersion.objects.filter(kind="segmentation").update(status="retired")
        mv = ModelVersion.objects.create(kind="segmentation", version=version, status="active", data_cutoff=now)
        for eid, segment, cluster, name in rows:
            RFMScore.objects.create(model_version=mv, customer=data[eid], recency_days=1, frequency=1, monetary=1,
                                    first_purchase=now, last_purchase=now, r_score=3, f_score=3, m_score=3,
                                    rfm_code="333", segment=segment, cluster=cluster, cluster_name=name)

    segmentation(1, [("A", "Champions", 0, "Big spenders"), ("B", "At Risk", 1, "Fading"),
                     ("C", "Champions", 0, "Big spenders")])
    assert segmentation_selectors.choices() == (["At Risk", "Champions"], [(0, "Big spenders"), (1, "Fading")])
    segmentation(2, [("A", "Loyal", 1, "Regulars"), ("B", "Hibernating", 0, "Sleepers")])
    assert segmentation_selectors.choices() == (["Hibernating", "Loyal"], [(0, "Sleepers"), (1, "Regulars")])
    assert PageSummary.objects.get(name="segmentation.choices").key["versions"]["segmentation"] == \
        ModelVersion.objects.get(kind="segmentation", status="active").pk
