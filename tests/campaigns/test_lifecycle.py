"""Lifecycle and role rules of campaigns, enforced in the services (pages and API share them)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from campaigns import services
from campaigns.models import Campaign, CampaignAuditLog
from campaigns.services import CampaignError, CampaignPermissionError


def _actions(campaign) -> list[str]:
    logs = CampaignAuditLog.objects.filter(campaign=campaign).order_by("at", "id")
    return list(logs.values_list("action", flat=True))


def test_draft_submit_approve_export_measure_close(planned, analyst, admin):
    c = services.campaign_submit(planned, user=analyst)
    assert c.status == Campaign.Status.SUBMITTED
    c = services.campaign_approve(c, user=admin, comment="Looks right")
    assert c.status == Campaign.Status.APPROVED and c.reviewed_by == admin and c.review_comment == "Looks right"
    rows = list(services.export_targets(c, user=admin, fmt="csv"))
    c.refresh_from_db()
    assert c.status == Campaign.Status.EXPORTED and c.exported_at is not None and len(rows) == 6
    with pytest.raises(CampaignError):
        services.campaign_update(c, user=admin, budget=5.0)  # an exported campaign is a record
    c = services.campaign_close(c, user=admin)
    assert c.status == Campaign.Status.CLOSED
    assert _actions(c) == ["created", "submit", "approve", "export", "close"]


def test_analyst_cannot_approve_reject_export_or_close(planned, analyst):
    c = services.campaign_submit(planned, user=analyst)
    for call in (lambda: services.campaign_approve(c, user=analyst),
                 lambda: services.campaign_reject(c, user=analyst, comment="no"),
                 lambda: list(services.export_targets(c, user=analyst, fmt="csv")),
                 lambda: services.campaign_close(c, user=analyst)):
        with pytest.raises(CampaignPermissionError):
            call()
    c.refresh_from_db()
    assert c.status == Campaign.Status.SUBMITTED


def test_analyst_is_refused_by_the_pages_too(planned, analyst, analyst_client):
    services.campaign_submit(planned, user=analyst)
    for name in ("approve", "reject", "export", "close"):
        response = analyst_client.post(reverse(f"campaigns:{name}", args=[planned.pk]), {"comment": "x"})
        assert response.status_code == 403, name
    planned.refresh_from_db()
    assert planned.status == Campaign.Status.SUBMITTED


def test_only_approved_campaigns_export(planned, admin):
    with pytest.raises(CampaignError, match="approved"):
        list(services.export_targets(planned, user=admin, fmt="csv"))
    assert not CampaignAuditLog.objects.filter(campaign=planned, action="export").exists()


def test_editing_an_approved_campaign_sends_it_back_to_draft(planned, analyst, admin):
    c = services.campaign_submit(planned, user=analyst)
    c = services.campaign_approve(c, user=admin)
    c = services.campaign_update(c, user=analyst, budget=250.0)
    assert c.status == Campaign.Status.DRAFT and c.reviewed_by is None
    assert not c.has_plan and not c.targets.exists()  # the budget decides the selection: plan again
    log = CampaignAuditLog.objects.filter(campaign=c, action="edited").get()
    assert log.changes["budget"] == [100.0, 250.0] and log.changes["status"] == ["approved", "draft"]
    assert log.user == analyst and "needs approval again" in log.comment
    with pytest.raises(CampaignError, match="Plan the campaign first"):
        services.campaign_submit(c, user=analyst)


def test_editing_only_the_schedule_keeps_the_plan_but_still_needs_approval(planned, analyst, admin):
    c = services.campaign_approve(services.campaign_submit(planned, user=analyst), user=admin)
    c = services.campaign_update(c, user=analyst, scheduled_for="2025-03-01")
    assert c.status == Campaign.Status.DRAFT and c.has_plan and c.targets.count() == 8


def test_reject_needs_a_comment_and_allows_rework(planned, analyst, admin):
    c = services.campaign_submit(planned, user=analyst)
    with pytest.raises(CampaignError, match="comment"):
        services.campaign_reject(c, user=admin, comment="  ")
    c = services.campaign_reject(c, user=admin, comment="Budget too high")
    assert c.status == Campaign.Status.REJECTED and c.review_comment == "Budget too high"
    c = services.campaign_update(c, user=analyst, offer="5% off")
    assert c.status == Campaign.Status.DRAFT


def test_wrong_state_transitions_are_refused(planned, analyst, admin):
    with pytest.raises(CampaignError):
        services.campaign_approve(planned, user=admin)  # not submitted
    with pytest.raises(CampaignError):
        services.campaign_close(planned, user=admin)
    with pytest.raises(CampaignError):
        services.campaign_measure(planned, user=admin)
    with pytest.raises(CampaignError):
        services.campaign_update(planned, user=analyst, status="approved")  # not an editable field


def test_create_refuses_bad_inputs(analyst):
    with pytest.raises(CampaignError):
        services.campaign_create(user=analyst, name="x", goal="retain", budget=-5)
    with pytest.raises(CampaignError):
        services.campaign_create(user=analyst, name="y", goal="retain", budget=5, channels=[])
    with pytest.raises(CampaignError, match="Unknown audience filter"):
        services.campaign_create(user=analyst, name="z", goal="retain", budget=5, filters={"bogus": 1})
    services.campaign_create(user=analyst, name="Dup", goal="retain", budget=5)
    with pytest.raises(CampaignError, match="exists"):
        services.campaign_create(user=analyst, name="dup", goal="grow", budget=5)


def test_a_deleted_audience_stops_planning_instead_of_widening_it(analyst):
    from rfm_portal.customers.models import Audience, Customer
    from rfm_portal.customers.services import audience_create, audience_delete

    customer = Customer.objects.create(external_id="A-1")
    audience = audience_create(name="Few", kind=Audience.Kind.FIXED, user=analyst, customer_ids=[customer.pk])
    c = services.campaign_create(user=analyst, name="With audience", goal="grow", budget=10.0, audience=audience)
    assert c.audience_name == "Few"
    audience_delete(audience, user=analyst)
    c.refresh_from_db()
    assert c.audience is None
    with pytest.raises(CampaignError, match="was deleted"):
        services.plan_campaign(c, user=analyst)
