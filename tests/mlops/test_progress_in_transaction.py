"""Progress reported inside a task's own transaction is visible at once and never blocks the heartbeat."""

import pytest

from rfm_portal.mlops.models import Job
from rfm_portal.mlops.progress import start_job
from tests.mlops.job_tasks import report_in_transaction

pytestmark = pytest.mark.django_db(transaction=True)


def test_progress_inside_the_task_transaction_is_committed_on_its_own():
    job = start_job(report_in_transaction.name)
    assert report_in_transaction.apply(args=[job.pk]).successful()
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED
    assert job.result == {"seen": 40, "beats": 1}
