"""Campaign pages: list, new/edit forms, exports (CSV injection, JSON), template library, the role checks."""

from __future__ import annotations

import csv
import io
import json

from django.urls import reverse

from campaigns import services
from campaigns.models import Campaign, CampaignAuditLog, MessageTemplate
from tests.campaigns.conftest import make_planned_campaign


def _form(**over):
    data = {"name": "Spring win back", "goal": "win_back", "incentive_cost": "1", "margin": "0.4", "budget": "500",
            "holdout_share": "0.1", "fatigue_days": "14", "use_email": "on", "cost_email": "0.05",
            "factor_email": "1", "segment_caps": "Champions=10, Loyal=5", "countries": "France, Germany"}
    data.update(over)
    return data


def test_list_page(analyst_client, planned):
    response = analyst_client.get(reverse("campaigns:list"))
    html = response.content.decode()
    assert response.status_code == 200 and planned.name in html and 'id="ranking"' in html
    assert 'data-empty="no-uplift"' in html  # no uplift model in this database


def test_navigation_points_at_the_campaigns_page(analyst_client):
    items = analyst_client.get(reverse("dashboard:overview")).context["nav_items"]
    assert any(i["title"] == "Campaigns" and i["url"] == reverse("campaigns:list") for i in items)


def test_new_campaign_form_creates_a_draft(analyst_client, analyst):
    response = analyst_client.post(reverse("campaigns:new"), _form())
    c = Campaign.objects.get(name="Spring win back")
    assert response.status_code == 302 and c.status == "draft" and c.created_by == analyst
    assert c.channels == [{"name": "email", "cost": 0.05, "effect_factor": 1.0}]
    assert c.segment_caps == {"Champions": 10, "Loyal": 5} and c.filters == {"countries": ["France", "Germany"]}
    html = analyst_client.get(reverse("campaigns:detail", args=[c.pk])).content.decode()
    assert 'data-empty="no-plan"' in html and "created" in html


def test_form_errors(analyst_client):
    response = analyst_client.post(reverse("campaigns:new"), _form(use_email="", segment_caps="Champions=lots"))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "segment_caps" in errors and "__all__" in errors
    assert not Campaign.objects.exists()


def test_edit_page_resets_an_approved_campaign(analyst, admin, analyst_client):
    c = make_planned_campaign(analyst)
    c = services.campaign_approve(services.campaign_submit(c, user=analyst), user=admin)
    page = analyst_client.get(reverse("campaigns:edit", args=[c.pk]))
    assert "sends it back to draft" in page.content.decode()
    data = _form(name=c.name, goal="retain", budget="100", holdout_share="0.25", segment_caps="", countries="",
                 cost_email="0.5", fatigue_days=str(c.fatigue_days), incentive_cost="0", offer="New offer")
    response = analyst_client.post(reverse("campaigns:edit", args=[c.pk]), data)
    assert response.status_code == 302
    c.refresh_from_db()
    assert c.status == "draft" and c.offer == "New offer"
    # saving without a change is not an edit: nothing is reset or logged
    c2 = make_planned_campaign(analyst, name="Other")
    c2 = services.campaign_approve(services.campaign_submit(c2, user=analyst), user=admin)
    analyst_client.post(reverse("campaigns:edit", args=[c2.pk]), {**data, "name": "Other", "offer": ""})
    c2.refresh_from_db()
    assert c2.status == "approved"


def test_export_csv_neutralises_formulas_and_json_matches(analyst, admin, admin_client):
    c = make_planned_campaign(analyst, message="=HYPERLINK(\"http://evil\") {id}")
    c = services.campaign_approve(services.campaign_submit(c, user=analyst), user=admin)
    response = admin_client.post(reverse("campaigns:export", args=[c.pk]), {"format": "csv", "list": "contact"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 6 and all(r["message"].startswith("'=") for r in rows)
    response = admin_client.post(reverse("campaigns:export", args=[c.pk]), {"format": "json", "list": "contact"})
    payload = json.loads(b"".join(response.streaming_content))
    assert payload["campaign"] == c.name and len(payload["targets"]) == 6
    assert payload["targets"][0]["message"].startswith("=")  # JSON is data, not a spreadsheet
    logs = CampaignAuditLog.objects.filter(campaign=c, action="export")
    assert sorted(log.changes["format"] for log in logs) == ["csv", "json"] and all(log.user == admin for log in logs)


def test_export_of_a_draft_is_refused_with_a_message(planned, admin_client):
    response = admin_client.post(reverse("campaigns:export", args=[planned.pk]), {"format": "csv"})
    assert response.status_code == 302
    assert not CampaignAuditLog.objects.filter(campaign=planned, action="export").exists()


def test_templates_admins_manage_analysts_read(analyst_client, admin_client):
    assert analyst_client.get(reverse("campaigns:templates")).status_code == 200
    assert MessageTemplate.objects.filter(goal="retain", segment="").exists()  # the seeded library
    data = {"name": "New one", "goal": "grow", "segment": "", "subject": "Hi", "body": "{{ offer }} for you"}
    assert analyst_client.post(reverse("campaigns:template-new"), data).status_code == 403
    assert admin_client.post(reverse("campaigns:template-new"), data).status_code == 302
    t = MessageTemplate.objects.get(name="New one")
    bad = admin_client.post(reverse("campaigns:template-edit", args=[t.pk]), {**data, "body": "{{ password }}"})
    assert bad.status_code == 200 and "Unknown placeholder" in str(bad.context["form"].errors["body"])
    assert admin_client.post(reverse("campaigns:template-delete", args=[t.pk])).status_code == 302
    assert not MessageTemplate.objects.filter(name="New one").exists()


def test_preview_escapes_html(planned, admin, analyst_client):
    from rfm_portal.customers.models import Customer

    customer = Customer.objects.create(external_id="<img src=x onerror=alert(1)>", country="<script>")
    t = services.template_save(user=admin, name="Esc", goal="retain", segment="", subject="",
                               body="Hi {{ customer_id }} from {{ country }}")
    services.campaign_update(planned, user=admin, template=t)
    response = analyst_client.get(reverse("campaigns:detail", args=[planned.pk]), {"customer": customer.external_id})
    html = response.content.decode()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html and "<script>" not in html.split(
        'data-preview>')[1].split("</div>")[0]


def test_targets_page(planned, analyst_client):
    response = analyst_client.get(reverse("campaigns:targets", args=[planned.pk]), {"list": "holdout"})
    assert response.status_code == 200 and len(response.context["page"].object_list) == 2


def test_customer_page_lists_the_customers_campaigns(planned, analyst_client):
    target = planned.targets.select_related("customer").first()
    response = analyst_client.get(reverse("customers:detail", args=[target.customer.external_id]))
    html = response.content.decode()
    assert response.status_code == 200 and 'data-panel="campaigns"' in html and planned.name in html
