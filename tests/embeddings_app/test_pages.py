"""Lookalikes pages: explorer (map, search, product neighbours, quality), builder (results, CSV, save as
audience, uploaded ids), retraining (admins only) and the customer-360 panel."""

from __future__ import annotations

import csv
import io

from django.core.files.uploadedfile import SimpleUploadedFile

from rfm_portal.customers.models import Audience, Customer
from rfm_portal.mlops.models import Job, ModelVersion
from segmentation.models import RFMScore


def _segments(template_bundle, n: int = 60) -> str:
    """Give the first n customers an RFM segment of an active segmentation (what the builder seeds from)."""
    mv = ModelVersion.objects.create(kind="segmentation", version=1, status=ModelVersion.Status.ACTIVE)
    customers = Customer.objects.filter(external_id__in=[str(e) for e in template_bundle.external_ids[:n]])
    RFMScore.objects.bulk_create([
        RFMScore(model_version=mv, customer=c, recency_days=1, frequency=1, monetary=1,
                 first_purchase="2023-01-01T00:00Z", last_purchase="2023-01-01T00:00Z",
                 r_score=5, f_score=5, m_score=5, rfm_code="555",
                 segment="Champions", cluster=0, cluster_name="Top") for c in customers])
    return "Champions"


def test_explorer_without_a_model_says_so(analyst_client, db):
    response = analyst_client.get("/lookalikes/")
    assert response.status_code == 200 and b'data-empty="no-model"' in response.content
    assert b"Retrain" not in response.content and b"Train now" not in response.content


def test_navigation_points_at_the_page(analyst_client, db):
    body = analyst_client.get("/").content.decode()
    assert 'href="/lookalikes/"' in body and 'href="/audiences/"' in body


def test_explorer_shows_map_quality_and_product_neighbours(analyst_client, model, template_bundle):
    response = analyst_client.get("/lookalikes/?colour=category")
    body = response.content.decode()
    assert response.status_code == 200 and f'data-model-version="{model.version}"' in body
    assert 'id="fig-map"' in body and 'data-quality="agreement"' in body and 'data-quality="recall"' in body
    assert 'id="similar-products"' in body and body.count("<tr>") > 5
    for colour in ("segment", "cluster", "clv", "bogus"):
        assert analyst_client.get(f"/lookalikes/?colour={colour}").status_code == 200


def test_explorer_search_lists_neighbours_with_mix_and_links(analyst_client, model, template_bundle):
    seed = str(template_bundle.external_ids[0])
    body = analyst_client.get(f"/lookalikes/?customer={seed}").content.decode()
    assert body.count("data-neighbour=") == 10 and 'id="fig-mix"' in body
    assert f'href="/customers/{seed}/"' in body
    missing = analyst_client.get("/lookalikes/?customer=NOBODY").content.decode()
    assert "data-search-error" in missing and "No customer NOBODY" in missing


def test_builder_from_a_segment_with_csv_and_save(analyst_client, analyst, model, template_bundle):
    segment = _segments(template_bundle)
    form = {"seed_type": "segment", "segment": segment, "size": "40", "exclude_seed": "on", "country": ""}
    body = analyst_client.post("/lookalikes/builder/", form).content.decode()
    assert body.count("data-result=") == 40 and "lookalike" in body
    seed_ids = {str(e) for e in template_bundle.external_ids[:60]}
    response = analyst_client.post("/lookalikes/builder.csv", form)
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 40 and not seed_ids & {r["customer_id"] for r in rows}
    sims = [float(r["similarity"]) for r in rows]
    assert sims == sorted(sims, reverse=True) and rows[0]["source"] == "lookalike of segment Champions"
    response = analyst_client.post("/lookalikes/builder/save/", {**form, "name": "Champion lookalikes"})
    assert response.status_code == 302 and response["Location"] == "/audiences/"
    audience = Audience.objects.get(name="Champion lookalikes")
    assert audience.kind == "fixed" and audience.size == 40 and audience.created_by == analyst
    assert audience.source.startswith("lookalike of segment Champions")
    members = list(audience.members.order_by("rank").values_list("customer__external_id", "score"))
    assert [m[0] for m in members] == [r["customer_id"] for r in rows]
    # the same name again is refused, and nothing is half-saved
    analyst_client.post("/lookalikes/builder/save/", {**form, "name": "champion LOOKALIKES"})
    assert Audience.objects.count() == 1


def test_builder_from_uploaded_ids_lists_unknown_ones(analyst_client, model, template_bundle):
    ids = [str(e) for e in template_bundle.external_ids[:5]]
    upload = SimpleUploadedFile("ids.csv", ("customer_id\n" + "\n".join(ids) + "\nGHOST\n").encode())
    response = analyst_client.post("/lookalikes/builder/", {"seed_type": "ids", "ids_file": upload, "size": "10"})
    body = response.content.decode()
    assert response.status_code == 200 and body.count("data-result=") == 10 and "GHOST" in body
    assert all(i in body for i in ids)  # the uploaded ids are carried on as pasted ids for CSV/save


def test_builder_form_errors(analyst_client, model):
    response = analyst_client.post("/lookalikes/builder/", {"seed_type": "ids", "ids": "", "size": "99999"})
    body = response.content.decode()
    assert response.status_code == 200 and "data-result=" not in body and 'class="error"' in body
    bad = analyst_client.post("/lookalikes/builder.csv", {"seed_type": "top_clv", "size": "10", "min_p_alive": "nan"})
    assert bad.status_code == 400


def test_builder_without_a_model_is_409(analyst_client, db):
    response = analyst_client.post("/lookalikes/builder/", {"seed_type": "ids", "ids": "1", "size": "5"})
    assert response.status_code == 409
    assert analyst_client.post("/lookalikes/builder.csv", {"seed_type": "ids", "ids": "1"}).status_code == 409


def test_only_admins_start_training(analyst_client, admin_client, db, django_capture_on_commit_callbacks):
    assert analyst_client.post("/lookalikes/train/", {"epochs": "3"}).status_code == 403
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post("/lookalikes/train/", {"epochs": "3"})
    assert response.status_code == 302 and response["Location"] == "/jobs/"
    job = Job.objects.get(kind="embeddings.train")
    assert job.params == {"epochs": 3}


def test_customer_panel_shows_lookalikes_and_taste(analyst_client, model, template_bundle):
    seed = str(template_bundle.external_ids[2])
    body = analyst_client.get(f"/customers/{seed}/").content.decode()
    assert 'data-panel="lookalikes"' in body and body.count("data-lookalike=") == 5 and "fig-lk-taste" in body
