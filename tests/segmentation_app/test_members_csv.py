"""CSV export of segment / cluster members (streamed)."""

from __future__ import annotations

import csv
import io

from django.urls import reverse

from segmentation import services
from segmentation.models import RFMScore


def rows(response) -> list[dict[str, str]]:
    assert response.streaming
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_csv_of_one_segment(trio, analyst_client):
    mv = services.train_segmentation()
    response = analyst_client.get(reverse("segmentation:members-csv"), {"segment": "Lost"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == f'attachment; filename="segment-lost-v{mv.version}.csv"'
    got = rows(response)
    assert len(got) == 1
    b = got[0]
    # the amount column is named with the currency (settings.CURRENCY, GBP by default)
    assert (b["customer_id"], b["country"], b["recency_days"], b["frequency"], b["net_revenue_gbp"]) == (
        "B", "France", "141", "1", "40.00",
    )  # fmt: skip
    assert (b["r_score"], b["f_score"], b["m_score"], b["rfm_code"], b["segment"]) == ("1", "1", "3", "113", "Lost")
    assert b["last_purchase"].startswith("2023-11-01T12:00:00") and b["model_version"] == str(mv.version)


def test_csv_of_a_cluster_and_of_everyone(trio, analyst_client):
    services.train_segmentation()
    top = RFMScore.objects.get(customer=trio["A"])
    got = rows(analyst_client.get(reverse("segmentation:members-csv"), {"cluster": top.cluster}))
    assert "A" in {r["customer_id"] for r in got}
    assert {r["cluster_name"] for r in got} == {top.cluster_name}
    everyone = rows(analyst_client.get(reverse("segmentation:members-csv")))
    assert [r["customer_id"] for r in everyone] == ["A", "B", "C"]  # highest net revenue first


def test_csv_without_a_model_is_404(trio, analyst_client):
    assert analyst_client.get(reverse("segmentation:members-csv")).status_code == 404
