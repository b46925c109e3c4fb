"""Celery application: configured from Django settings (CELERY_* names)."""

import logging
import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rfm_portal.settings")

app = Celery("rfm_portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_ready.connect
def reap_jobs_of_dead_workers(**_kwargs) -> None:
    """At worker start: fail the jobs a worker that died before this one left running.

    Only jobs whose heartbeat is already stale are touched, so other live workers' jobs are safe.
    """
    from django.db import connections

    from rfm_portal.mlops.progress import reap_stale_jobs

    try:
        reap_stale_jobs()
    except Exception:  # the worker must start even if the database is briefly away
        logging.getLogger(__name__).warning("could not reap stale jobs at worker start", exc_info=True)
    finally:
        connections.close_all()  # never hand a parent's connection to forked children
