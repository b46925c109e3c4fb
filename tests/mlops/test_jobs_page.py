import pytest
from django.urls import reverse

from rfm_portal.mlops.models import Job

pytestmark = pytest.mark.django_db


def test_jobs_page_renders_current_state_and_loads_live_updates(analyst_client, admin):
    Job.objects.create(kind="train_churn", state=Job.State.RUNNING, progress=42, message="fitting", created_by=admin)
    Job.objects.create(kind="train_cltv", state=Job.State.FAILED, progress=10, error="ValueError: empty")
    response = analyst_client.get(reverse("mlops:jobs"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "train_churn" in body and 'style="width: 42%"' in body and "fitting" in body
    assert "ValueError: empty" in body
    assert "js/jobs.js" in body
    # Analysts watch; only admins get the buttons that start work.
    assert reverse("mlops:job-start", args=["recompute_customer_first_seen"]) not in body


def test_admin_starts_a_job_which_is_queued_after_commit(admin_client, admin, django_capture_on_commit_callbacks):
    url = reverse("mlops:job-start", args=["recompute_customer_first_seen"])
    assert url in admin_client.get(reverse("mlops:jobs")).content.decode()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client.post(url)
    assert response.status_code == 302
    job = Job.objects.get()
    assert (job.kind, job.state, job.created_by) == ("mlops.recompute_customer_first_seen", "pending", admin)
    assert job.task_id and len(callbacks) == 1


def test_analyst_cannot_start_jobs_and_unknown_jobs_404(analyst_client, admin_client):
    assert analyst_client.post(reverse("mlops:job-start", args=["recompute_customer_first_seen"])).status_code == 403
    assert admin_client.post(reverse("mlops:job-start", args=["format_disk"])).status_code == 404
    assert not Job.objects.exists()
