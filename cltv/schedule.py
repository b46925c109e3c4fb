"""Celery beat entry for a weekly CLTV retrain (merged into settings.CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery.schedules import crontab

CLTV_BEAT_SCHEDULE: dict[str, dict] = {
    "cltv-weekly-retrain": {
        "task": "cltv.scheduled_retrain",
        # Mondays 03:30 UTC: between the segmentation (03:15) and churn (03:45) retrains.
        "schedule": crontab(minute=30, hour=3, day_of_week=1),
    },
}
