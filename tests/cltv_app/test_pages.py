"""The CLTV pages: overview (with and without a model), settings, CSV export, retraining, customer panel."""

from __future__ import annotations

import csv
import io

import pytest
from django.test import Client
from django.urls import reverse

from cltv.models import CLTVScore
from rfm_portal.mlops.models import Job, ModelVersion

from .conftest import Trained

pytestmark = pytest.mark.django_db


def test_overview_renders_the_model_and_the_customers(trained: Trained, analyst_client: Client) -> None:
    response = analyst_client.get(reverse("cltv:overview"))
    assert response.status_code == 200
    html = response.content.decode()
    for figure in ("comparison", "calibration", "period", "expected", "palive", "distribution", "cohorts"):
        assert f'data-figure="fig-{figure}"' in html and f'id="fig-{figure}"' in html, figure
    assert 'id="param-table"' in html and 'id="top-customers"' in html and 'id="cohorts"' in html
    assert trained.mv.metrics["chosen_label"] in html
    assert "independence" in html
    assert "Retrain" not in html  # analysts do not get the button
    top = CLTVScore.objects.filter(model_version=trained.mv).select_related("customer").order_by("-clv").first()
    assert reverse("customers:detail", args=[top.customer.external_id]) in html


def test_settings_recompute_the_figures(trained: Trained, analyst_client: Client) -> None:
    base = analyst_client.get(reverse("cltv:overview")).context["page"]
    half = analyst_client.get(
        reverse("cltv:overview"), {"horizon_days": 365, "annual_discount_rate": 0.1, "margin": 0.5}
    )
    page = half.context["page"]
    assert page.totals["total_clv"] == pytest.approx(0.5 * base.totals["total_clv"], rel=1e-6)
    assert base.trained_settings and not page.trained_settings
    assert "are for the trained settings" in half.content.decode()
    bad = analyst_client.get(reverse("cltv:overview"), {"horizon_days": -5, "annual_discount_rate": 0.1, "margin": 1})
    assert bad.status_code == 200 and bad.context["form"].errors
    assert bad.context["page"].totals["total_clv"] == pytest.approx(base.totals["total_clv"])


def _csv(response) -> list[dict[str, str]]:
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_csv_export(trained: Trained, analyst_client: Client) -> None:
    # Columns now name the horizon and the currency; P10/P50/P90 are there at the trained settings.
    rows = _csv(analyst_client.get(reverse("cltv:scores-csv")))
    assert len(rows) == CLTVScore.objects.filter(model_version=trained.mv).count()
    assert {"customer_id", "p_alive", "clv_365d_gbp", "clv_p10_gbp", "clv_p90_gbp", "model_version"} <= set(rows[0])
    assert float(rows[0]["clv_365d_gbp"]) >= float(rows[-1]["clv_365d_gbp"]) >= 0
    # sensible precision: cents for money, 4 decimals for probabilities
    assert all(len(r["clv_365d_gbp"].partition(".")[2]) <= 2 and len(r["p_alive"].partition(".")[2]) <= 4 for r in rows)


def test_csv_export_follows_the_settings_on_screen(trained: Trained, analyst_client: Client) -> None:
    base = {r["customer_id"]: r for r in _csv(analyst_client.get(reverse("cltv:scores-csv")))}
    screen = {"horizon_days": 90, "annual_discount_rate": 0.1, "margin": 0.5}
    page = analyst_client.get(reverse("cltv:overview"), screen)
    assert "cltv/scores.csv?horizon_days=90" in page.content.decode()  # the button carries the settings
    rows = _csv(analyst_client.get(reverse("cltv:scores-csv"), screen))
    assert {"clv_90d_gbp", "expected_purchases_90d"} <= set(rows[0]) and "clv_p50_gbp" not in rows[0]
    assert {r["margin"] for r in rows} == {"0.5"} and {r["horizon_days"] for r in rows} == {"90"}
    shown = {r["external_id"]: r["clv_now"] for r in page.context["page"].top_customers}
    for row in rows[:10]:
        assert float(row["clv_90d_gbp"]) == pytest.approx(shown[row["customer_id"]], abs=0.006)
        assert float(row["clv_90d_gbp"]) <= float(base[row["customer_id"]]["clv_365d_gbp"]) + 0.01
    assert analyst_client.get(reverse("cltv:scores-csv"), {"horizon_days": -1}).status_code == 400


def test_customer_panel(trained: Trained, analyst_client: Client) -> None:
    score = CLTVScore.objects.filter(model_version=trained.mv).select_related("customer").first()
    html = analyst_client.get(reverse("customers:detail", args=[score.customer.external_id])).content.decode()
    assert 'data-panel="cltv"' in html and f"CLTV v{trained.mv.version}" in html
    ModelVersion.objects.filter(kind="cltv").update(status=ModelVersion.Status.RETIRED)
    html = analyst_client.get(reverse("customers:detail", args=[score.customer.external_id])).content.decode()
    assert 'data-panel="cltv"' not in html


def test_retrain_is_for_admins_only(trained: Trained, analyst_client: Client, admin_client: Client) -> None:
    assert analyst_client.post(reverse("cltv:train")).status_code == 403
    assert not Job.objects.filter(kind="cltv.train").exists()
    assert admin_client.get(reverse("cltv:train")).status_code == 405
    response = admin_client.post(reverse("cltv:train"))
    assert response.status_code == 302 and response["Location"] == reverse("mlops:jobs")
    assert Job.objects.filter(kind="cltv.train").count() == 1
    page = admin_client.get(reverse("cltv:overview")).content.decode()
    assert "Retrain" in page and reverse("mlops:jobs") in page


def test_before_any_model(trained: Trained, analyst_client: Client, admin_client: Client) -> None:
    ModelVersion.objects.filter(kind="cltv").delete()  # rolled back after the test
    html = analyst_client.get(reverse("cltv:overview")).content.decode()
    assert "No CLTV model yet" in html and "Train the CLTV model" not in html and "data-figure" not in html
    assert "Train the CLTV model" in admin_client.get(reverse("cltv:overview")).content.decode()
    assert analyst_client.get(reverse("cltv:scores-csv")).status_code == 404


def test_model_card_is_rendered_and_amounts_carry_the_currency(trained: Trained, analyst_client: Client) -> None:
    html = analyst_client.get(reverse("cltv:overview")).content.decode()
    assert '<section class="card markdown" id="model-card">' in html and "<h1>CLTV model — " in html
    assert "# CLTV model" not in html  # no raw markdown
    assert 'data-kpi="total">£' in html and "CLTV (£)" in html
    assert reverse("mlops:model-detail", args=[trained.mv.pk]) in html
