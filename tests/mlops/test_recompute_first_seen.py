from datetime import UTC, datetime

import pytest

from rfm_portal.customers.models import Customer
from rfm_portal.mlops.models import Job
from rfm_portal.mlops.progress import start_job
from rfm_portal.mlops.tasks import recompute_customer_first_seen
from tests.factories import make_transaction

pytestmark = pytest.mark.django_db


def test_sets_first_seen_to_the_first_transaction_in_batches():
    a = Customer.objects.create(external_id="A", first_seen=datetime(2030, 1, 1, tzinfo=UTC))
    b = Customer.objects.create(external_id="B")
    c = Customer.objects.create(external_id="C", first_seen=datetime(2020, 1, 1, tzinfo=UTC))
    make_transaction(a, "1", "2024-02-01T10:00:00", 1, "5")
    make_transaction(a, "2", "2024-01-05T09:00:00", 1, "5")
    make_transaction(b, "3", "2024-03-01T12:00:00", 2, "3")
    job = start_job(recompute_customer_first_seen.name, {"batch_size": 2})

    assert recompute_customer_first_seen.apply(args=[job.pk]).successful()

    a.refresh_from_db(), b.refresh_from_db(), c.refresh_from_db()
    assert a.first_seen == datetime(2024, 1, 5, 9, tzinfo=UTC)
    assert b.first_seen == datetime(2024, 3, 1, 12, tzinfo=UTC)
    assert c.first_seen is None  # no transactions at all
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED
    assert job.result == {"customers": 3, "updated": 3}

    rerun = start_job(recompute_customer_first_seen.name)
    recompute_customer_first_seen.apply(args=[rerun.pk])
    rerun.refresh_from_db()
    assert rerun.result == {"customers": 3, "updated": 0}
