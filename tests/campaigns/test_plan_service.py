"""Planning on imported generated data with trained segmentation, churn and uplift models (through their services):
the Celery job with progress, budget, sleeping dogs, holdout, messages, export, fatigue and measured results."""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
from django.urls import reverse

from campaigns import services, tasks
from campaigns.models import Campaign, CampaignAuditLog, CampaignTarget
from rfm_portal.customers.models import Audience, Customer
from rfm_portal.customers.services import audience_create, import_campaign_history
from rfm_portal.mlops.models import Job
from rfm_portal.mlops.progress import start_job
from uplift.models import UpliftScore

CHANNELS = [{"name": "email", "cost": 0.2, "effect_factor": 1.0}, {"name": "sms", "cost": 0.6, "effect_factor": 1.5}]


def _plan(campaign, user) -> Campaign:
    job = start_job(tasks.plan_campaign_task.name, {"campaign_id": campaign.pk}, user)
    tasks.plan_campaign_task.apply(args=[job.pk])
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.progress == 100 and job.result["campaign_id"] == campaign.pk
    return Campaign.objects.get(pk=campaign.pk)


def test_plan_approve_export_measure(scored_db, analyst, admin, admin_client, tmp_path):
    c = services.campaign_create(user=analyst, name="Winter retain", goal="retain", budget=40.0, holdout_share=0.2,
                                 channels=CHANNELS, incentive_cost=0.5, margin=0.4, offer="10% off <b>now</b>")
    c = _plan(c, analyst)
    t = c.plan["totals"]
    targets = list(CampaignTarget.objects.filter(campaign=c).values("customer_id", "arm", "channel", "spend",
                                                                    "message", "expected_profit"))
    frame = pd.DataFrame(targets)
    # budget never exceeded; only positive expected profit; one row (one channel) per customer
    assert frame["spend"].sum() <= 40.0 + 1e-6 and abs(frame["spend"].sum() - t["spend"]) < 1e-6
    assert (frame["expected_profit"] > 0).all() and frame["customer_id"].is_unique
    assert set(frame["channel"]) <= {"email", "sms"}
    # never a sleeping dog, and there were some in the audience
    groups = dict(UpliftScore.objects.filter(customer_id__in=frame["customer_id"]).values_list("customer_id", "group"))
    assert "sleeping_dog" not in set(groups.values()) and t["sleeping_dogs"] > 0
    # holdout: the stated share of the selected customers, no messages
    hold = frame[frame["arm"] == "holdout"]
    assert len(hold) == round(0.2 * len(frame)) == t["holdout"] and (hold["message"] == "").all()
    contact = frame[frame["arm"] == "contact"]
    assert len(contact) == t["contacts"] > 0
    assert contact["message"].str.len().gt(0).all() and not contact["message"].str.contains("{{").any()
    assert contact["message"].str.contains("10% off &lt;b&gt;now&lt;/b&gt;").all()  # the offer, escaped
    # the page's inputs: curve, naive rules (with churn risk), segment ranking, power
    assert set(c.plan["naive"]) == {"everyone", "likely_buyers", "churn_risk"}
    assert t["profit"] >= max(r["profit"] for r in c.plan["naive"].values())
    assert c.plan["segments"] and c.plan["mde"] > 0 and t["profit"] <= t["lp_bound"] + 1e-9
    assert c.plan["curve"]["spend"][0] == 0 and len(c.plan["curve"]["spend"]) > 2

    response = admin_client.get(reverse("campaigns:detail", args=[c.pk]))
    html = response.content.decode()
    assert response.status_code == 200 and 'data-figure="fig-curve"' in html and "Highest churn risk first" in html

    c = services.campaign_submit(c, user=analyst)
    c = services.campaign_approve(c, user=admin, comment="ok")
    response = admin_client.post(reverse("campaigns:export", args=[c.pk]), {"format": "csv", "list": "contact"})
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert list(rows[0]) == ["customer_id", "channel", "message", "predicted_effect", "expected_profit", "segment"]
    exported = {r["customer_id"] for r in rows}
    response = admin_client.post(reverse("campaigns:export", args=[c.pk]), {"format": "csv", "list": "holdout"})
    held = {r["customer_id"] for r in csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))}
    assert len(exported) == t["contacts"] and len(held) == t["holdout"] and not exported & held
    assert CampaignAuditLog.objects.filter(campaign=c, action="export").count() == 2
    c.refresh_from_db()
    assert c.status == Campaign.Status.EXPORTED

    # contact fatigue: a second campaign now leaves the first one's contacted customers out
    second = _plan(services.campaign_create(user=analyst, name="Winter grow", goal="grow", budget=40.0,
                                            channels=CHANNELS, incentive_cost=0.5), analyst)
    second_ids = set(CampaignTarget.objects.filter(campaign=second).values_list("customer__external_id", flat=True))
    assert second.plan["totals"]["fatigued"] >= len(exported) and not second_ids & exported

    # outcomes come back through the ordinary campaign-history import, under the campaign's name
    rng = np.random.default_rng(0)
    lines = ["customer_id,campaign,treated,converted,revenue,sent_at"]
    for eid, treated in [(e, 1) for e in sorted(exported)] + [(e, 0) for e in sorted(held)]:
        converted = int(rng.random() < (0.5 if treated else 0.2))
        lines.append(f"{eid},Winter retain,{treated},{converted},{40.0 * converted:.2f},2025-01-10 09:00:00")
    path = tmp_path / "outcomes.csv"
    path.write_text("\n".join(lines) + "\n")
    assert import_campaign_history(path, file_name="outcomes.csv").status == "succeeded"
    c = services.campaign_measure(c, user=analyst)
    r = c.results
    assert c.status == Campaign.Status.MEASURED and r["n_contact"] == len(exported) and r["n_holdout"] == len(held)
    assert r["uplift_low"] <= r["uplift"] <= r["uplift_high"] and r["predicted_uplift"] is not None
    html = admin_client.get(reverse("campaigns:detail", args=[c.pk])).content.decode()
    assert "What the campaign really did" in html and 'data-figure="fig-results"' in html


def test_audience_filters_caps_and_preview(scored_db, analyst, analyst_client):
    customers = list(Customer.objects.order_by("external_id")[:300])
    audience = audience_create(name="First 300", kind=Audience.Kind.FIXED, user=analyst,
                               customer_ids=[c.pk for c in customers])
    c = services.campaign_create(user=analyst, name="Targeted", goal="win_back", budget=1000.0, holdout_share=0.1,
                                 channels=CHANNELS, audience=audience,
                                 filters={"uplift_groups": ["persuadable", "lost_cause"], "max_churn_risk": 0.99},
                                 segment_caps={"Champions": 0})
    c = services.plan_campaign(c, user=analyst)
    in_audience = {x.pk for x in customers}
    chosen = CampaignTarget.objects.filter(campaign=c)
    assert chosen.exists() and set(chosen.values_list("customer_id", flat=True)) <= in_audience
    assert not chosen.filter(segment="Champions").exists()
    groups = set(UpliftScore.objects.filter(customer_id__in=chosen.values("customer_id")).values_list("group",
                                                                                                      flat=True))
    assert groups <= {"persuadable", "lost_cause"}
    assert c.plan["totals"]["audience"] <= 300
    who = chosen.filter(arm="contact").select_related("customer").first().customer.external_id
    response = analyst_client.get(reverse("campaigns:detail", args=[c.pk]), {"customer": who})
    assert response.status_code == 200 and response.context["preview"]["message"]
    assert response.context["preview"]["values"]["customer_id"] == who
