"""Churn pages: empty state, overview content, at-risk list + CSV, retraining rights, customer-360 panel."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from churn.models import ChurnScore
from rfm_portal.mlops.models import Job


def test_before_any_model_the_page_says_so(db, analyst_client, admin_client):
    r = analyst_client.get(reverse("churn:overview"))
    html = r.content.decode()
    assert r.status_code == 200 and 'data-empty="no-model"' in html and "No churn model yet" in html
    assert "Ask an admin" in html and reverse("churn:train") not in html
    html = admin_client.get(reverse("churn:overview")).content.decode()
    assert reverse("churn:train") in html and "Train now" in html
    r = analyst_client.get(reverse("churn:at-risk-csv"))
    assert r.status_code == 409 and b"No churn model" in r.content
    assert analyst_client.get(reverse("churn:at-risk")).status_code == 200


def test_overview_shows_definition_comparison_and_explanations(trained, analyst_client):
    champion, challenger = trained
    html = analyst_client.get(reverse("churn:overview")).content.decode()
    assert "no purchase within 90 days after the cut-off" in html
    assert f'data-model-version="{champion.version}"' in html
    assert 'data-model="logistic"' in html and 'data-model="lightgbm"' in html
    assert champion.metrics["champion_reason"] in html.replace("&lt;", "<").replace("&gt;", ">")
    for fig in ("fig-roc", "fig-pr", "fig-cal", "fig-lift", "fig-risk", "fig-importance", "fig-beeswarm",
                "fig-decision"):
        assert f'data-figure="{fig}"' in html and f'id="{fig}"' in html, fig
    assert f"v{challenger.version}" in html
    assert reverse("churn:train") not in html  # analysts get no train button


def test_at_risk_list_filters_and_pages(trained, analyst_client):
    champion, _ = trained
    url = reverse("churn:at-risk")
    r = analyst_client.get(url)
    page = r.context["page"]
    assert page.paginator.count == ChurnScore.objects.filter(model_version=champion).count()
    probs = [c.churn_risk for c in page]  # no CLTV model here: no value at risk, so riskiest first
    assert probs == sorted(probs, reverse=True) and len(probs) == 50
    r = analyst_client.get(url, {"band": "high", "min_probability": "0.8"})
    assert all(c.risk_band == "high" and c.churn_risk >= 0.8 for c in r.context["page"].object_list)
    country = ChurnScore.objects.filter(model_version=champion).exclude(customer__country="") \
        .values_list("customer__country", flat=True).first()
    r = analyst_client.get(url, {"country": country.lower()})
    assert {c.country for c in r.context["page"].object_list} == {country}
    one = ChurnScore.objects.filter(model_version=champion).select_related("customer").first()
    r = analyst_client.get(url, {"q": one.customer.external_id})
    assert one.customer.external_id in [c.external_id for c in r.context["page"].object_list]
    r = analyst_client.get(url, {"band": "high", "page": "2"})
    assert r.status_code == 200 and "band=high&amp;page=" in r.content.decode()
    assert analyst_client.get(url, {"min_probability": "2"}).status_code == 200  # invalid filter → no crash


def test_csv_export_streams_the_filtered_list(trained, analyst_client):
    champion, _ = trained
    r = analyst_client.get(reverse("churn:at-risk-csv"), {"band": "high"})
    assert r.status_code == 200 and r["Content-Type"] == "text/csv"
    assert r.streaming and f"churn_at_risk_v{champion.version}.csv" in r["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(r.streaming_content).decode())))
    expected = ChurnScore.objects.filter(model_version=champion, risk_band="high")
    assert len(rows) == expected.count()
    top = expected.order_by("-probability").select_related("customer").first()
    assert rows[0]["customer_id"] == top.customer.external_id
    assert float(rows[0]["churn_probability"]) == pytest.approx(top.probability, abs=1e-4)
    assert rows[0]["top_driver_1"] and rows[0]["model_version"] == str(champion.version)


def test_analyst_cannot_retrain(trained, analyst_client):
    r = analyst_client.post(reverse("churn:train"), {"horizon_days": "90"})
    assert r.status_code == 403
    assert not Job.objects.filter(kind="churn.train").exists()


def test_admin_retrain_queues_a_job_linked_from_the_page(trained, admin_client, django_capture_on_commit_callbacks,
                                                          settings, monkeypatch):
    from churn import tasks

    queued = []
    monkeypatch.setattr(tasks.train_churn_task, "apply_async", lambda args, task_id: queued.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        r = admin_client.post(reverse("churn:train"), {"horizon_days": "60", "cutoff": "2024-12-01"})
    assert r.status_code == 302 and r["Location"] == reverse("mlops:jobs")
    job = Job.objects.get(kind="churn.train")
    assert job.params == {"cutoff": "2024-12-01", "horizon_days": 60} and queued == [[job.pk]]
    html = admin_client.get(reverse("churn:overview")).content.decode()
    assert f"#{job.pk}" in html and reverse("mlops:jobs") in html
    bad = admin_client.post(reverse("churn:train"), {"horizon_days": "1"})
    assert bad.status_code == 302 and Job.objects.filter(kind="churn.train").count() == 1


def test_customer_page_shows_risk_waterfall_and_counterfactual(trained, analyst_client):
    champion, _ = trained
    s = ChurnScore.objects.filter(model_version=champion, risk_band="high").select_related("customer") \
        .order_by("-probability").first()
    html = analyst_client.get(reverse("customers:detail", args=[s.customer.external_id])).content.decode()
    assert 'data-panel="churn"' in html and f"{s.probability:.1%}" in html
    assert 'data-figure="fig-churn-waterfall"' in html and 'data-figure="fig-churn-decision"' in html
    assert "data-counterfactual" in html and "data-headline" in html
    assert "1 more order worth about" in html and "in the next 30 days would bring churn risk from" in html
    assert ">Recency / usual gap =" not in html  # drivers in words, numbers only in the tooltip


def test_customer_page_without_a_model_has_no_churn_panel(generated, analyst_client):
    from rfm_portal.customers.models import Customer

    html = analyst_client.get(reverse("customers:detail", args=[Customer.objects.first().external_id])).content
    assert b'data-panel="churn"' not in html
