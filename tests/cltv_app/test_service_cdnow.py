"""The published CDNOW fits, reproduced through the product: load_cdnow --sample → train_cltv_model."""

from __future__ import annotations

from datetime import date

import pytest
from django.core.management import call_command

from cltv.models import CLTVScore
from cltv.services import train_cltv_model
from rfm_portal.customers.models import Customer, ImportJob, Product, Transaction
from rfm_portal.mlops.models import ModelVersion

BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "v": 15.44}


@pytest.fixture(scope="module")
def cdnow_version(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        call_command("load_cdnow", sample=True, verbosity=0)
        mv = train_cltv_model(observation_end=date(1998, 7, 1), calibration_end=date(1997, 10, 1), unit="W")
        yield mv
        CLTVScore.objects.all().delete()
        ModelVersion.objects.all().delete()
        Transaction.objects.all().delete()
        Customer.objects.all().delete()
        ImportJob.objects.all().delete()
        Product.objects.all().delete()


@pytest.mark.django_db
def test_published_bgnbd_and_gamma_gamma_fits_through_the_product(cdnow_version: ModelVersion) -> None:
    m = cdnow_version.metrics
    bg = m["calibration_fits"]["bgnbd"]
    print("BG/NBD calibration fit:", bg["params"], "LL", bg["log_likelihood"])
    print(
        "Gamma-Gamma calibration fit:",
        m["calibration_gamma_gamma"]["params"],
        m["calibration_gamma_gamma"]["n_customers"],
    )
    assert bg["n_customers"] == 2357
    for name, value in BGNBD.items():
        assert round(bg["params"][name], 2) == round(value, 2), (name, bg["params"][name])
    assert bg["log_likelihood"] == pytest.approx(-9582.4, abs=0.05)
    gg = m["calibration_gamma_gamma"]
    assert gg["n_customers"] == 946
    for name, value in GAMMA_GAMMA.items():
        assert round(gg["params"][name], 2) == round(value, 2), (name, gg["params"][name])
    assert all(se is not None and se > 0 for se in bg["standard_errors"].values())


@pytest.mark.django_db
def test_the_cdnow_version_is_promoted_with_scores(cdnow_version: ModelVersion) -> None:
    mv = ModelVersion.objects.get(pk=cdnow_version.pk)
    assert mv.status == ModelVersion.Status.ACTIVE
    assert mv.params["calibration_end"] == "1997-10-01" and mv.params["observation_end"] == "1998-07-01"
    assert mv.metrics["chosen"] in mv.metrics["calibration_fits"]
    assert {r["model"] for r in mv.metrics["comparison"]} == {"bgnbd", "mbgnbd", "pareto_nbd"}
    assert mv.model_card.startswith("# CLTV model")
    scores = CLTVScore.objects.filter(model_version=mv)
    assert scores.count() == 2357
    assert not scores.filter(clv__lt=0).exists() and not scores.filter(clv_p10__lt=0).exists()
    assert not scores.filter(p_alive__gt=1).exists()
    # a customer first buying 1 Jan 1997 has T = 78 weeks at 30 June 1998 (inclusive last day)
    assert scores.order_by("-T").first().T == pytest.approx(545 / 7)
