"""The customer-360 page shows the customer's segment panel from the active version."""

from __future__ import annotations

from django.urls import reverse

from rfm_portal.customers.models import Customer
from segmentation import services


def test_panel_shows_values_scores_segment_and_cluster(trio, analyst_client):
    mv = services.train_segmentation()
    html = analyst_client.get(reverse("customers:detail", args=["B"])).content.decode()
    assert 'data-panel="segmentation"' in html and f"segmentation v{mv.version}" in html
    assert '<strong data-field="segment">Lost</strong>' in html and "Lowest recency, frequency and spend" in html
    assert '<code data-field="rfm-code">113</code>' in html and "141 days" in html and "(R = 1)" in html


def test_no_panel_without_a_model_or_for_an_unscored_customer(trio, analyst_client):
    html = analyst_client.get(reverse("customers:detail", args=["A"])).content.decode()
    assert 'data-panel="segmentation"' not in html
    services.train_segmentation()
    Customer.objects.create(external_id="D")
    html = analyst_client.get(reverse("customers:detail", args=["D"])).content.decode()
    assert 'data-panel="segmentation"' not in html
