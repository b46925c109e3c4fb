"""The imports page: upload form for admins only."""

from __future__ import annotations

from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from rfm_portal.customers.models import ImportJob, Transaction

RETAIL = Path(__file__).parent / "files" / "online_retail_sample.csv"
UPLOAD = reverse("customers:import-upload")


def retail_upload() -> SimpleUploadedFile:
    return SimpleUploadedFile("online_retail.csv", RETAIL.read_bytes(), content_type="text/csv")


def test_admin_sees_the_form_analyst_does_not(admin_client, analyst_client):
    page = admin_client.get(reverse("customers:imports")).content.decode()
    assert f'action="{UPLOAD}"' in page and 'name="skip_invalid"' in page
    response = analyst_client.get(reverse("customers:imports"))
    assert response.status_code == 200
    assert UPLOAD not in response.content.decode()


def test_admin_upload_with_skip_invalid_imports_and_shows_the_job(admin_client, admin):
    response = admin_client.post(UPLOAD, {"file": retail_upload(), "kind": "transactions", "skip_invalid": "on"})
    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("customers:import-detail", args=[job.pk])
    assert (job.status, job.rows_inserted, job.rows_rejected) == (ImportJob.Status.SUCCEEDED, 8, 1)
    assert job.created_by == admin
    assert job.file_name == "online_retail.csv"
    detail = admin_client.get(response["Location"]).content.decode()
    assert "8 new rows imported" in detail  # the flash message
    assert "no customer id" in detail


def test_admin_upload_without_skip_is_rejected_with_lines(admin_client):
    response = admin_client.post(UPLOAD, {"file": retail_upload(), "kind": "transactions"}, follow=True)
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.REJECTED
    assert Transaction.objects.count() == 0
    body = response.content.decode()
    assert "nothing was imported" in body
    assert '<td class="num">6</td><td>no customer id</td>' in body


def test_upload_with_mapping_and_bad_mapping(admin_client):
    csv = b"Bon,Kunde,Zeit,Menge,Preis\nB1,K1,2024-01-01 10:00,2,1.5\n"
    mapping = "invoice=Bon\ncustomer_id=Kunde\ninvoiced_at=Zeit\nquantity=Menge\nunit_price=Preis"
    response = admin_client.post(
        UPLOAD, {"file": SimpleUploadedFile("shop.csv", csv), "kind": "transactions", "mapping": mapping}
    )
    assert response.status_code == 302
    assert Transaction.objects.get().invoice == "B1"
    bad = admin_client.post(
        UPLOAD, {"file": SimpleUploadedFile("shop.csv", csv), "kind": "transactions", "mapping": "customer_id"}
    )
    assert bad.status_code == 400
    assert "not of the form target=SourceColumn" in bad.content.decode()
    assert ImportJob.objects.count() == 1


def test_analyst_upload_is_forbidden(analyst_client):
    response = analyst_client.post(UPLOAD, {"file": retail_upload(), "kind": "transactions", "skip_invalid": "on"})
    assert response.status_code == 403
    assert ImportJob.objects.count() == 0


def test_anonymous_upload_redirects_to_login(outsider_client):
    response = outsider_client.post(UPLOAD, {"file": retail_upload(), "kind": "transactions"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert ImportJob.objects.count() == 0
