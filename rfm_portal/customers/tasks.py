"""Large uploads imported as Jobs (live progress on the Jobs page)."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from rfm_portal.mlops.progress import JobReporter, job_failed, job_task

from . import services
from .models import ImportJob


class ImportNotDone(Exception):
    """The import was rejected (invalid rows) or failed; nothing was imported."""


@job_task(name="customers.import_file")
def import_file_task(
    reporter: JobReporter, import_job_id: int, path: str, mapping: dict, dayfirst: bool = False, actor: str = ""
) -> dict[str, Any]:
    job = services.run_queued_import(
        import_job_id, path, mapping=mapping, dayfirst=dayfirst, actor=actor, progress=reporter.report
    )
    if job.status != ImportJob.Status.SUCCEEDED:  # rejected or failed: the job fails with the import's reason
        raise ImportNotDone(job.message)
    return {
        "import_job_id": job.pk,
        "status": job.status,
        "rows_total": job.rows_total,
        "rows_inserted": job.rows_inserted,
        "rows_duplicate": job.rows_duplicate,
        "rows_rejected": job.rows_rejected,
        "message": job.message,
    }


@receiver(job_failed, dispatch_uid="customers.fail_imports_of_failed_job")
def _fail_imports_of_failed_job(sender, job, error: str, **kwargs) -> None:
    services.fail_imports_of_job(job.pk, error)
