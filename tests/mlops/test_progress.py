import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from rfm_portal.mlops.consumers import JOBS_GROUP
from rfm_portal.mlops.models import Job
from rfm_portal.mlops.progress import JobReporter, job_payload, start_job, submit_job
from tests.mlops.job_tasks import CALLS, count_to

pytestmark = pytest.mark.django_db
State = Job.State


@pytest.fixture
def feed(settings):
    """Listen on the `jobs` group through an in-memory layer; returns a drain function."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(JOBS_GROUP, channel)

    def drain() -> list[dict]:
        async def collect() -> list[dict]:
            messages = []
            while True:
                queue = layer.channels.get(channel)
                if not queue or queue.empty():
                    return messages
                messages.append(await layer.receive(channel))

        return async_to_sync(collect)()

    return drain


def test_start_job_creates_a_pending_row_and_announces_it(feed, analyst):
    job = start_job("tests.mlops.count_to", {"n": 2}, analyst)
    assert job.state == State.PENDING and job.created_by == analyst and job.params == {"n": 2}
    [message] = feed()
    assert message["type"] == "job.progress"
    assert message["job"]["id"] == job.pk and message["job"]["state"] == "pending"


def test_reporter_writes_the_row_and_pushes_the_same(feed):
    job = start_job("tests.mlops.count_to")
    feed()
    reporter = JobReporter(job)
    reporter.report(140, "too far")
    reporter.step(1, 4, "a quarter")
    job.refresh_from_db()
    assert (job.progress, job.message) == (25, "a quarter")
    pushed = [m["job"] for m in feed()]
    assert [(p["progress"], p["message"]) for p in pushed] == [(100, "too far"), (25, "a quarter")]
    assert pushed[-1] == job_payload(job)


def test_successful_task_marks_job_succeeded_with_result(feed):
    job = start_job("tests.mlops.count_to", {"n": 4})
    result = count_to.apply(args=[job.pk])
    assert result.successful()
    job.refresh_from_db()
    assert job.state == State.SUCCEEDED and job.progress == 100
    assert job.result == {"counted": 4}
    assert job.started_at and job.finished_at and job.task_id
    states = [(m["job"]["state"], m["job"]["progress"]) for m in feed()]
    assert states[1:] == [("running", 0), ("running", 25), ("running", 50), ("running", 75), ("running", 100),
                          ("succeeded", 100)]  # fmt: skip


def test_failing_task_marks_job_failed_with_the_error_and_pushes_it(feed):
    job = start_job("tests.mlops.count_to", {"n": 4, "fail_at": 3})
    result = count_to.apply(args=[job.pk])
    assert result.failed()
    assert isinstance(result.result, ValueError)
    job.refresh_from_db()
    assert job.state == State.FAILED
    assert job.error == "ValueError: step 3 went wrong"
    assert job.progress == 50 and job.finished_at
    last = feed()[-1]["job"]
    assert last["state"] == "failed" and last["error"] == "ValueError: step 3 went wrong"


def test_redelivered_task_for_a_succeeded_job_does_nothing():
    job = start_job("tests.mlops.count_to", {"n": 2})
    count_to.apply(args=[job.pk])
    CALLS.clear()
    finished = Job.objects.get(pk=job.pk).finished_at
    count_to.apply(args=[job.pk])
    assert CALLS == []
    assert Job.objects.get(pk=job.pk).finished_at == finished


def test_task_options_are_safe_for_long_jobs():
    assert count_to.acks_late is True
    assert count_to.reject_on_worker_lost is True
    assert 0 < count_to.soft_time_limit < count_to.time_limit


def test_submit_job_queues_the_task_after_commit(django_capture_on_commit_callbacks, admin):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = submit_job(count_to, {"n": 3}, admin)
    assert len(callbacks) == 1
    job.refresh_from_db()
    assert job.kind == "tests.mlops.count_to" and job.task_id and job.state == State.PENDING
