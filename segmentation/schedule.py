"""Celery beat entry for a weekly segmentation retrain (merged into settings.CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery.schedules import crontab

SEGMENTATION_BEAT_SCHEDULE: dict[str, dict] = {
    "segmentation-weekly-retrain": {
        "task": "segmentation.scheduled_retrain",
        # Mondays 03:15 UTC: after the weekend's imports, before the working week.
        "schedule": crontab(minute=15, hour=3, day_of_week=1),
    },
}
