"""Celery beat entry for a weekly uplift retrain (merged into settings.CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery.schedules import crontab

UPLIFT_BEAT_SCHEDULE: dict[str, dict] = {
    "uplift-weekly-retrain": {
        "task": "uplift.scheduled_retrain",
        # Mondays 04:15 UTC: after the churn retrain (03:45), whose risk is one of the naive rules compared.
        "schedule": crontab(minute=15, hour=4, day_of_week=1),
    },
}
