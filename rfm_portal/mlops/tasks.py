"""Maintenance tasks run as Jobs. Capability apps keep their training tasks in their own tasks.py."""

from __future__ import annotations

from celery import shared_task
from django.db.models import Min

from rfm_portal.customers.models import Customer

from .progress import JobReporter, job_task, reap_stale_jobs
from .scoring import process_chunk, score_version


@job_task(name="mlops.recompute_customer_first_seen")
def recompute_customer_first_seen(reporter: JobReporter, batch_size: int = 500) -> dict[str, int]:
    """Set every customer's first_seen to the time of their first transaction.

    Imports keep first_seen up to date as they go; this repairs it after deletes or
    hand edits. Customers without transactions get None. Batches keep memory flat
    and give the progress bar something to show.
    """
    ids = list(Customer.objects.order_by("pk").values_list("pk", flat=True))
    total = len(ids)
    updated = 0
    reporter.report(0, f"Checking {total} customers")
    for start in range(0, total, batch_size):
        chunk = ids[start : start + batch_size]
        customers = list(
            Customer.objects.filter(pk__in=chunk).annotate(first=Min("transactions__invoiced_at")).order_by("pk")
        )
        changed = [c for c in customers if c.first_seen != c.first]
        for customer in changed:
            customer.first_seen = customer.first
        Customer.objects.bulk_update(changed, ["first_seen"])
        updated += len(changed)
        done = min(start + batch_size, total)
        reporter.step(done, total, f"{done} of {total} customers checked, {updated} corrected")
    return {"customers": total, "updated": updated}


@job_task(name="mlops.score_version")
def score_version_task(reporter: JobReporter, model_version_id: int, chunk_size: int | None = None) -> dict:
    """Score every customer under one model version, in chunks shared by every Celery worker."""
    return score_version(model_version_id, chunk_size=chunk_size, reporter=reporter)


@shared_task(name="mlops.score_chunk", acks_late=True, reject_on_worker_lost=False, ignore_result=True)
def score_chunk_task(chunk_id: int) -> str:
    """One chunk of a scoring run (see rfm_portal.mlops.scoring); a chunk already done or held is skipped.

    A worker lost mid-chunk is not redelivered: its transaction rolled back, and the run's own
    process takes the chunk up again.
    """
    return process_chunk(chunk_id)


# Tasks an admin may start from the Jobs page, by the name shown there.
RUNNABLE = {
    "recompute_customer_first_seen": (recompute_customer_first_seen, "Recompute customers' first-seen dates"),
}


@shared_task(name="mlops.reap_stale_jobs", ignore_result=True)
def reap_stale_jobs_task() -> dict[str, int]:
    """Beat entry (every JOB_REAPER_INTERVAL_SECONDS): fail jobs whose worker died or that no worker took."""
    return reap_stale_jobs()
