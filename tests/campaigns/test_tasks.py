"""The planning job: a failure (no uplift model) marks the job failed with a clear message and stores nothing."""

from __future__ import annotations

from campaigns import services, tasks
from campaigns.models import CampaignTarget
from rfm_portal.mlops.models import Job
from rfm_portal.mlops.progress import start_job


def test_plan_job_without_an_uplift_model_fails_clearly(analyst):
    c = services.campaign_create(user=analyst, name="No model", goal="grow", budget=10.0)
    job = start_job(tasks.plan_campaign_task.name, {"campaign_id": c.pk}, analyst)
    tasks.plan_campaign_task.apply(args=[job.pk])
    job.refresh_from_db()
    c.refresh_from_db()
    assert job.state == Job.State.FAILED and "no active uplift model" in job.error
    assert not c.has_plan and not CampaignTarget.objects.filter(campaign=c).exists()


def test_plan_page_queues_a_job(analyst, analyst_client, django_capture_on_commit_callbacks):
    from django.urls import reverse

    c = services.campaign_create(user=analyst, name="Queued", goal="grow", budget=10.0)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = analyst_client.post(reverse("campaigns:plan", args=[c.pk]))
    assert response.status_code == 302 and len(callbacks) == 1
    job = Job.objects.get(kind=tasks.plan_campaign_task.name)
    c.refresh_from_db()
    assert job.params == {"campaign_id": c.pk} and c.plan_job == job and job.created_by == analyst
