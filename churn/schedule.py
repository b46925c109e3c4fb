"""Celery beat entry for a weekly churn retrain (merged into settings.CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery.schedules import crontab

CHURN_BEAT_SCHEDULE: dict[str, dict] = {
    "churn-weekly-retrain": {
        "task": "churn.scheduled_retrain",
        # Mondays 03:45 UTC: after the weekend's imports and the segmentation retrain (03:15).
        "schedule": crontab(minute=45, hour=3, day_of_week=1),
    },
}
