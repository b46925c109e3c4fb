"""manage.py train_segmentation runs the service synchronously and prints its progress."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from rfm_portal.mlops.models import ModelVersion


def test_command_trains_and_prints_progress(trio):
    out = io.StringIO()
    call_command("train_segmentation", "--k", "2", stdout=out)
    text = out.getvalue()
    assert "Computing recency, frequency and monetary value in the database" in text
    assert "[100%" in text and "Segmentation v1 is active: 3 customers, k = 2." in text
    assert ModelVersion.objects.get(kind="segmentation").status == ModelVersion.Status.ACTIVE


def test_command_reports_degenerate_data_as_a_command_error(db):
    with pytest.raises(CommandError, match="no transactions yet"):
        call_command("train_segmentation", stdout=io.StringIO())
