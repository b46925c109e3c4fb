"""Actionable churn: ranked by value at risk, the already-gone on a win-back list, bands relative to the base rate,
drivers in plain words, CSV of the list on screen."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from churn.drivers import driver_text, duration, plain_drivers
from churn.models import ChurnScore
from churn.pipeline import RiskBands
from cltv.models import CLTVScore
from rfm_portal.customers.models import Customer
from rfm_portal.mlops.models import ModelVersion

NOW = datetime(2024, 6, 1, tzinfo=UTC)
FEATURES = {"recency_days": 150.0, "ipt_mean_days": 21.0, "frequency": 6, "purchases_90d": 0}
DRIVERS = [{"feature": "recency_days", "label": "Days since last purchase", "value": 150.0, "contribution": 1.2},
           {"feature": "gap_ratio", "label": "Recency / usual gap", "value": 7.1, "contribution": 0.6},
           {"feature": "purchases_90d", "label": "Orders in last 90 days", "value": 0.0, "contribution": 0.4}]
# id: (risk, clv p50, p_alive)
CAST = {"big": (0.5, 1000.0, 0.9), "sure": (0.95, 100.0, 0.7), "gone": (0.999, 5000.0, 0.05),
        "noclv": (0.97, None, None)}


@pytest.fixture
def cast(db):
    churn = ModelVersion.objects.create(kind="churn", version=1, status="active", data_cutoff=NOW,
                                        params={"horizon_days": 90})
    cltv = ModelVersion.objects.create(kind="cltv", version=1, status="active", data_cutoff=NOW)
    for eid, (risk, clv, p_alive) in CAST.items():
        c = Customer.objects.create(external_id=eid, country="France")
        ChurnScore.objects.create(customer=c, model_version=churn, probability=risk, risk_band="high",
                                  top_contributions=DRIVERS, features=FEATURES, scored_at=NOW)
        if clv is not None:
            CLTVScore.objects.create(customer=c, model_version=cltv, first_purchase=NOW.date(), frequency=1,
                                     recency=1, T=2, monetary=1, p_alive=p_alive, expected_purchases_30d=0,
                                     expected_purchases_90d=0, expected_purchases_365d=0, expected_aov=1, clv=clv,
                                     clv_p10=clv / 2, clv_p50=clv, clv_p90=clv * 2)
    return churn


def listed(response) -> list[str]:
    return [c.external_id for c in response.context["page"].object_list]


def test_at_risk_ranks_by_value_and_moves_the_gone_to_win_back(cast, analyst_client, monkeypatch):
    from types import SimpleNamespace

    from churn import views

    monkeypatch.setattr(views, "_active_bundle", lambda: SimpleNamespace(bands=RiskBands.relative_to(0.75)))
    r = analyst_client.get(reverse("churn:at-risk"))
    assert listed(r) == ["big", "sure", "noclv"]  # 500 > 95 > unknown value (then by risk)
    assert [c.value_at_risk for c in r.context["page"].object_list][:2] == [500.0, 95.0]
    html = r.content.decode()
    assert "value at risk" in html and "twice the usual odds of churning (risk ≥ 86 %)" in html
    assert "no order for 5 months, usually every 3 weeks" in html
    assert "Days since last purchase = 150; contribution +1.20 log-odds" in html
    assert listed(analyst_client.get(reverse("churn:at-risk"), {"order": "-churn_risk"})) == ["noclv", "sure", "big"]
    r = analyst_client.get(reverse("churn:win-back"))
    assert listed(r) == ["gone"] and "already gone" in r.content.decode()


def test_win_back_threshold_is_a_setting(cast, analyst_client, settings):
    settings.CHURN_WINBACK_P_ALIVE = 0.8
    assert listed(analyst_client.get(reverse("churn:win-back"))) == ["gone", "sure"]  # by past revenue, then risk


def test_csv_follows_the_view_filters_and_order(cast, analyst_client):
    r = analyst_client.get(reverse("churn:at-risk-csv"), {"order": "-value_at_risk"})
    rows = list(csv.DictReader(io.StringIO(b"".join(r.streaming_content).decode())))
    assert [row["customer_id"] for row in rows] == ["big", "sure", "noclv"]
    assert (rows[0]["clv_p50"], rows[0]["value_at_risk"], rows[0]["p_alive"]) == ("1000.00", "500.00", "0.9000")
    assert rows[0]["top_driver_1"] == "no order for 5 months, usually every 3 weeks"
    assert rows[0]["top_driver_2"] == "no order in the last 90 days"  # gap ratio said the same as recency: merged
    r = analyst_client.get(reverse("churn:at-risk-csv"), {"view": "win-back"})
    assert "churn_win_back_v1.csv" in r["Content-Disposition"]
    assert [row["customer_id"] for row in csv.DictReader(io.StringIO(b"".join(r.streaming_content).decode()))] \
        == ["gone"]


def test_bands_relative_to_the_base_rate():
    high_base = RiskBands.relative_to(0.75)  # odds 3 → 1.5 and 6
    assert (high_base.low, high_base.high) == (0.6, pytest.approx(6 / 7, abs=1e-4))
    low_base = RiskBands.relative_to(0.10)
    assert low_base.low == pytest.approx(0.0526, abs=1e-4) and low_base.high == pytest.approx(0.1818, abs=1e-4)
    assert list(high_base.assign([0.5, 0.75, 0.9])) == ["low", "medium", "high"]


@pytest.mark.parametrize(("days", "text"), [(3, "3 days"), (21, "3 weeks"), (150, "5 months"), (730, "2 years"),
                                            (1, "1 day")])
def test_durations_read_naturally(days, text):
    assert duration(days) == text


def test_driver_sentences():
    assert driver_text("recency_days", 200, {"recency_days": 200, "frequency": 1}) == "one order only, 7 months ago"
    assert driver_text("purchases_trend", -2, {}) == "2 orders fewer than in the 90 days before"
    assert driver_text("spend_90d", 120.4, {}) == "spent 120 in the last 90 days"
    drivers = plain_drivers(DRIVERS, FEATURES)
    assert [d["raises"] for d in drivers] == [True, True] and len(drivers) == 2
