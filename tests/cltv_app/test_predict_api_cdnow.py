"""CDNOW's published BG/NBD figure, reached through POST /predict_cltv.

Fader, Hardie & Lee (2005), "Counting your customers the easy way": with the BG/NBD fit on the
39-week calibration period of the CDNOW sample (r 0.243, α 4.414, a 0.793, b 2.426), a customer
with x = 2, tₓ = 30.43, T = 38.86 weeks is expected to make 1.226 purchases in the next 39 weeks.
The product trains exactly that model (load_cdnow --sample → train_cltv_model, BG/NBD unpenalised,
data up to the end of the calibration period) and the API answers the figure for any horizon.
"""

from __future__ import annotations

from datetime import date

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from cltv.models import CLTVScore
from cltv.services import train_cltv_model
from rfm_portal.customers.models import Customer, ImportJob, Product, Transaction
from rfm_portal.mlops import services as registry
from rfm_portal.mlops.models import ModelVersion

PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
CUSTOMER = {"frequency": 2, "recency": 30.43, "T": 38.86, "monetary_value": 20.0}


@pytest.fixture(scope="module")
def cdnow_calibration_model(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        call_command("load_cdnow", sample=True, verbosity=0)
        mv = train_cltv_model(
            observation_end=date(1997, 10, 1), unit="W", models=("bgnbd",), penalizers=(0.0,), n_draws=20
        )
        yield mv
        registry.clear_model_cache()
        CLTVScore.objects.all().delete()
        ModelVersion.objects.all().delete()
        Transaction.objects.all().delete()
        Customer.objects.all().delete()
        ImportJob.objects.all().delete()
        Product.objects.all().delete()


@pytest.mark.django_db
def test_published_expected_purchases_in_39_weeks_through_the_api(cdnow_calibration_model, api_client: APIClient):
    fitted = cdnow_calibration_model.metrics["transaction_fit"]["params"]
    assert {k: round(v, 3) for k, v in fitted.items() if k in PUBLISHED_BGNBD} == pytest.approx(
        PUBLISHED_BGNBD, abs=0.0015
    )
    body = {"customers": [CUSTOMER], "unit": "weeks", "purchase_horizon": 39}
    response = api_client.post("/predict_cltv", body, format="json")
    assert response.status_code == 200, response.json()
    answer = response.json()
    assert answer["model"] == "bgnbd" and answer["purchase_horizon_days"] == 273
    assert round(answer["results"][0]["expected_purchases"], 3) == 1.226
    # the same horizon in days, and the same customer described in days
    in_days = {**CUSTOMER, "recency": 30.43 * 7, "T": 38.86 * 7}
    response = api_client.post(
        "/predict_cltv",
        {"customers": [in_days], "unit": "days", "purchase_horizon": 273},
        format="json",
    )
    assert response.json()["results"][0]["expected_purchases"] == pytest.approx(1.226, abs=5e-4)
