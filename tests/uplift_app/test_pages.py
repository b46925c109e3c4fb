"""Uplift pages: empty state, overview content, members + CSV, retraining rights, customer-360 panel."""

from __future__ import annotations

import csv
import io

from django.urls import reverse

from rfm_portal.customers.models import Customer
from rfm_portal.mlops.models import Job
from uplift import tasks
from uplift.models import UpliftScore


def test_empty_state_says_what_to_do(db, analyst_client, admin_client):
    html = analyst_client.get(reverse("uplift:overview")).content.decode()
    assert 'data-empty="no-model"' in html and "Ask an admin" in html and reverse("uplift:train") not in html
    assert reverse("uplift:train") in admin_client.get(reverse("uplift:overview")).content.decode()
    assert analyst_client.get(reverse("uplift:members")).status_code == 200
    assert analyst_client.get(reverse("uplift:members-csv")).status_code == 409


def test_overview_shows_checks_curves_groups_and_profit(trained, analyst_client):
    champion, challenger = trained
    r = analyst_client.get(reverse("uplift:overview"))
    assert r.status_code == 200
    html = r.content.decode()
    for needle in ('id="checks"', 'data-figure="fig-qini"', 'data-figure="fig-uplift"', 'data-figure="fig-deciles"',
                   'data-figure="fig-profit"', 'data-figure="fig-balance"', "data-normalisation",
                   "Naive: most likely buyers", "Naive: highest churn risk", "Random targeting",
                   'data-group="persuadable"', 'data-group="sleeping_dog"', "data-best-cutoff",
                   f"v{challenger.version}", champion.metrics["campaign"]["campaign"]):
        assert needle in html, needle
    assert "areas between each curve and the straight random-targeting line" in html
    assert reverse("uplift:train") not in html  # analysts get no train button
    # changing the profit inputs on the page recomputes the recommendation
    cheap = analyst_client.get(reverse("uplift:overview"), {"contact_cost": 0, "incentive_cost": 0, "margin": 1})
    dear = analyst_client.get(reverse("uplift:overview"), {"contact_cost": 1000, "incentive_cost": 0, "margin": 0.1})
    assert cheap.context["recommended"]["n"] > dear.context["recommended"]["n"] == 0
    bad = analyst_client.get(reverse("uplift:overview"), {"contact_cost": "nan", "incentive_cost": 0, "margin": 2})
    assert bad.status_code == 200 and "error" in bad.content.decode()


def test_members_filter_rank_and_export(trained, analyst_client):
    champion, _ = trained
    r = analyst_client.get(reverse("uplift:members"), {"group": "lost_cause"})
    rows = list(r.context["page"])
    assert rows and all(s.group == "lost_cause" for s in rows)
    assert [s.expected_profit for s in rows] == sorted((s.expected_profit for s in rows), reverse=True)
    out = b"".join(analyst_client.get(reverse("uplift:members-csv"), {"group": "lost_cause"}).streaming_content)
    lines = list(csv.reader(io.StringIO(out.decode())))
    assert lines[0][:4] == ["customer_id", "country", "group", "uplift"]
    expected = UpliftScore.objects.filter(model_version=champion, group="lost_cause").count()
    assert len(lines) - 1 == expected and {row[2] for row in lines[1:]} == {"lost_cause"}


def test_analyst_cannot_retrain(trained, analyst_client):
    r = analyst_client.post(reverse("uplift:train"), {})
    assert r.status_code == 403
    assert not Job.objects.filter(kind="uplift.train").exists()


def test_admin_retrain_queues_a_job_shown_with_progress(generated, admin_client, django_capture_on_commit_callbacks,
                                                        monkeypatch):
    queued = []
    monkeypatch.setattr(tasks.train_uplift_task, "apply_async", lambda args, task_id: queued.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        r = admin_client.post(reverse("uplift:train"), {"campaign": ""})
    assert r.status_code == 302
    job = Job.objects.get(kind="uplift.train")
    assert queued == [[job.pk]] and job.params == {"campaign": None}
    html = admin_client.get(reverse("uplift:overview")).content.decode()
    assert 'id="uplift-jobs"' in html and f'data-job-id="{job.pk}"' in html and "uplift_progress.js" in html


def test_customer_page_shows_the_uplift_panel(trained, analyst_client):
    champion, _ = trained
    s = UpliftScore.objects.filter(model_version=champion).select_related("customer").order_by("-uplift").first()
    html = analyst_client.get(reverse("customers:detail", args=[s.customer.external_id])).content.decode()
    assert 'data-panel="uplift"' in html and 'data-field="recommendation"' in html
    assert s.get_group_display().split()[0] in html and 'data-field="reason"' in html


def test_customer_page_without_a_model_has_no_uplift_panel(generated, analyst_client):
    html = analyst_client.get(reverse("customers:detail", args=[Customer.objects.first().external_id])).content
    assert b'data-panel="uplift"' not in html
