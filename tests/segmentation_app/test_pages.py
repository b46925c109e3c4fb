"""Segmentation pages: plain 'no model yet' before training, the right figures after, admin-only retrain."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from rfm_portal.mlops.models import Job
from segmentation import services
from tests.factories import make_transaction

PAGES = ["overview", "clusters", "k-search", "members", "migration"]


def figure(response, element_id: str) -> dict:
    match = re.search(
        rf'<script id="{element_id}" type="application/json">(.*?)</script>', response.content.decode(), re.S
    )
    assert match, f"no figure {element_id}"
    return json.loads(match.group(1))


@pytest.mark.parametrize("page", PAGES)
def test_before_training_every_page_says_so_and_shows_no_numbers(trio, analyst_client, page):
    response = analyst_client.get(reverse(f"segmentation:{page}"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "No segmentation model yet" in html and "Ask an admin to train one" in html
    assert 'data-figure="' not in html and "Retrain" not in html


def test_admins_get_the_train_button_when_there_is_no_model(trio, admin_client):
    html = admin_client.get(reverse("segmentation:overview")).content.decode()
    assert "No segmentation model yet" in html
    assert f'action="{reverse("segmentation:train")}"' in html and "Train now" in html


def test_overview_shows_segments_pareto_and_rf_grid_for_the_trio(trio, analyst_client):
    services.train_segmentation()
    response = analyst_client.get(reverse("segmentation:overview"))
    html = response.content.decode()
    assert response.status_code == 200 and "No segmentation model yet" not in html

    bars = figure(response, "fig-segments")
    customers, revenue = bars["data"]
    shares = dict(zip(customers["y"], customers["x"], strict=True))
    assert shares["Champions"] == pytest.approx(100 / 3) and shares["Lost"] == pytest.approx(100 / 3)
    assert dict(zip(revenue["y"], revenue["x"], strict=True))["Champions"] == pytest.approx(100 * 160 / 220)

    pareto = figure(response, "fig-pareto")
    curve = pareto["data"][1]
    assert curve["x"][0] == 0 and curve["y"][-1] == pytest.approx(100)

    grid = figure(response, "fig-rf")["data"][0]
    total = sum(sum(row) for row in grid["z"])
    assert total == 3 and grid["y"][0] == "R5"
    assert figure(response, "fig-rf")["layout"]["yaxis"]["autorange"] == "reversed"  # R5 drawn at the top

    assert 'data-segment="Champions"' in html and "Reward them" in html
    assert re.search(r'data-segment="Lost">.*?data-field="customers">1<', html, re.S)


def test_clusters_and_k_search_pages(trio, analyst_client):
    mv = services.train_segmentation()
    response = analyst_client.get(reverse("segmentation:clusters"))
    radar = figure(response, "fig-radar")
    assert len(radar["data"]) == mv.metrics["k"] == 2
    assert all(trace["type"] == "scatterpolar" for trace in radar["data"])
    assert mv.metrics["cluster_names"][0] in response.content.decode()

    response = analyst_client.get(reverse("segmentation:k-search"))
    k_fig = figure(response, "fig-k")
    assert k_fig["data"][0]["x"] == [int(k) for k in mv.metrics["silhouette_by_k"]] == [2]
    assert f'data-chosen-k="{mv.metrics["k"]}"' in response.content.decode()


def test_migration_page_first_run_then_after_a_retrain(trio, analyst_client):
    services.train_segmentation()
    html = analyst_client.get(reverse("segmentation:migration")).content.decode()
    assert 'data-empty="no-migration"' in html

    make_transaction(trio["B"], "2002", "2024-03-25T10:00", 30, "10.00")
    services.train_segmentation()
    response = analyst_client.get(reverse("segmentation:migration"))
    sankey = figure(response, "fig-sankey")["data"][0]
    assert sum(sankey["link"]["value"]) == 3
    assert 'data-migration-from="1"' in response.content.decode()
    heat = figure(response, "fig-migration")["data"][0]
    assert sum(sum(row) for row in heat["z"]) == 3


def test_members_page_filters_and_searches(trio, analyst_client):
    services.train_segmentation()
    url = reverse("segmentation:members")
    html = analyst_client.get(url, {"segment": "Champions"}).content.decode()
    assert "1 customer in" in html and ">A</a>" in html and ">B</a>" not in html
    html = analyst_client.get(url, {"q": "c"}).content.decode()
    assert ">C</a>" in html and ">A</a>" not in html
    assert analyst_client.get(url, {"segment": "Nope"}).status_code == 404
    assert analyst_client.get(url, {"cluster": "9"}).status_code == 404


def test_analysts_cannot_retrain(trio, analyst_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = analyst_client.post(reverse("segmentation:train"), {"k": "3"})
    assert response.status_code == 403 and not callbacks and not Job.objects.exists()


def test_admin_retrain_submits_a_job_and_links_to_the_jobs_page(
    trio, admin, admin_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client.post(reverse("segmentation:train"), {"k": "3", "cutoff": "2024-03-01"})
    assert response.status_code == 302 and response["Location"] == reverse("mlops:jobs")
    job = Job.objects.get()
    assert job.kind == "segmentation.train" and job.params == {"k": 3, "cutoff": "2024-03-01"}
    assert job.created_by == admin and len(callbacks) == 1  # queued on commit

    html = admin_client.get(reverse("segmentation:overview")).content.decode()
    assert f"#{job.pk}" in html and reverse("mlops:jobs") in html


def test_invalid_override_is_refused_with_a_message(trio, admin_client):
    response = admin_client.post(reverse("segmentation:train"), {"k": "1"}, follow=True)
    assert not Job.objects.exists()
    assert "Retrain not started" in response.content.decode()


def test_a_failed_retrain_is_shown_beside_the_active_version(trio, analyst_client, monkeypatch):
    services.train_segmentation()
    monkeypatch.setattr(services, "promote", lambda mv: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        services.train_segmentation()
    html = analyst_client.get(reverse("segmentation:overview")).content.decode()
    assert 'data-latest-version="2"' in html and "boom" in html and 'data-model-version="1"' in html


def test_members_page_pages_through_a_segment(generated, analyst_client):
    mv = services.train_segmentation()
    url = reverse("segmentation:members")
    first = analyst_client.get(url).content.decode()
    total = mv.metrics["customers"]
    assert f"{total} customers" in first and "Page 1 of" in first
    assert first.count('<tr><td><a href="/customers/') == 50
    last_page = -(-total // 50)
    last = analyst_client.get(url, {"page": last_page}).content.decode()
    assert last.count('<tr><td><a href="/customers/') == total - 50 * (last_page - 1)
