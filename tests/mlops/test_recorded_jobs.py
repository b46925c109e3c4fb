"""Set-up work run in-process is recorded as a Job: the Jobs page lists it by name with a link to its model."""

import pytest
from django.urls import reverse

from rfm_portal.mlops import services
from rfm_portal.mlops.models import Job
from rfm_portal.mlops.recorded import run_recorded

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _artifact_root(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path


def _train(reporter):
    reporter.report(50, "half way")
    mv = services.start_model_version("cltv", {}, None, None)
    path, _ = services.write_artifact("cltv", mv.version, {"x": 1})
    return services.complete_model_version(mv, {"holdout_rmse": 1.0}, path, "card")


def test_recorded_job_links_its_model_version_and_the_jobs_page_names_it(analyst_client):
    mv = run_recorded("cltv.setup", _train)
    job = Job.objects.get(kind="cltv.setup")
    assert (job.state, job.progress, job.model_version_id) == ("succeeded", 100, mv.pk)
    assert job.result == {"model_version_id": mv.pk, "kind": "cltv", "version": 1}
    body = analyst_client.get(reverse("mlops:jobs")).content.decode()
    assert "Set-up: train the lifetime-value model" in body
    assert reverse("mlops:model-detail", args=[mv.pk]) in body


def test_a_failing_recorded_job_is_marked_failed_and_reraises():
    def boom(reporter):
        raise ValueError("no transactions")

    with pytest.raises(ValueError):
        run_recorded("segmentation.setup", boom)
    job = Job.objects.get(kind="segmentation.setup")
    assert job.state == "failed" and "no transactions" in job.error


def test_unknown_job_kinds_get_a_readable_name(analyst_client):
    Job.objects.create(kind="uplift.train_forest", state="succeeded", progress=100)
    assert "Uplift train forest" in analyst_client.get(reverse("mlops:jobs")).content.decode()


def test_work_without_a_reporter_parameter_still_runs_recorded():
    from rfm_portal.mlops.recorded import call_with_reporter

    assert run_recorded("uplift.setup", lambda reporter: call_with_reporter(lambda: 7, reporter)) == 7
    assert run_recorded("cltv.setup", lambda reporter: call_with_reporter(_train, reporter)).kind == "cltv"
    assert list(Job.objects.order_by("pk").values_list("state", flat=True)) == ["succeeded", "succeeded"]
