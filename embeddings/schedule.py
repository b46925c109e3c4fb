"""Celery beat entry for a weekly Customer2Vec retrain (merged into settings.CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery.schedules import crontab

EMBEDDINGS_BEAT_SCHEDULE: dict[str, dict] = {
    "embeddings-weekly-retrain": {
        "task": "embeddings.scheduled_retrain",
        # Mondays 04:00 UTC: after the segmentation, CLTV and churn retrains (03:15–03:45) it colours and filters by.
        "schedule": crontab(minute=0, hour=4, day_of_week=1),
    },
}
