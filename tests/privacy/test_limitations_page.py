"""The limitations and ethical-use page: every portal user can read it, and every model page links to it."""

from __future__ import annotations

import pytest
from django.urls import reverse

SECTIONS = ("can", "cannot", "sensitive", "fatigue", "sleeping-dogs", "approval", "rights")


def test_page_covers_each_topic(analyst_client, settings):
    settings.CAMPAIGN_FATIGUE_DAYS = 21
    page = analyst_client.get(reverse("privacy:limitations")).content.decode()
    for section in SECTIONS:
        assert f'data-section="{section}"' in page, section
    assert "21 days" in page  # the contact-fatigue window is the configured one
    assert "MODELS_USE_COUNTRY" in page and "0.8284" in page  # the setting and the measured effect
    assert '<strong data-country-setting>off</strong>' in page


def test_login_required(outsider_client):
    response = outsider_client.get(reverse("privacy:limitations"))
    assert response.status_code == 302 and reverse("login") in response["Location"]


@pytest.mark.parametrize("url_name", ["segmentation:overview", "cltv:overview", "churn:overview", "uplift:overview",
                                      "embeddings:overview", "campaigns:list", "mlops:models"])
def test_every_model_page_links_here(analyst_client, url_name):
    page = analyst_client.get(reverse(url_name)).content.decode()
    assert reverse("privacy:limitations") in page and "data-limitations-link" in page
