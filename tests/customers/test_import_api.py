"""POST /api/imports/: API keys and admins import; analysts may not."""

from __future__ import annotations

import io
import json
from pathlib import Path

import openpyxl
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from rfm_portal.customers.models import ImportJob, Transaction

RETAIL = Path(__file__).parent / "files" / "online_retail_sample.csv"
URL = "/api/imports/"


def retail_upload(name: str = "retail.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, RETAIL.read_bytes(), content_type="text/csv")


def test_api_key_imports_and_gets_the_job(api_client):
    response = api_client.post(URL, {"file": retail_upload(), "skip_invalid": "true"}, format="multipart")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "succeeded"
    assert (body["rows_total"], body["rows_inserted"], body["rows_duplicate"], body["rows_rejected"]) == (9, 8, 0, 1)
    assert body["errors"] == [{"line": 6, "reason": "no customer id"}]
    assert body["kind"] == "transactions"
    assert Transaction.objects.count() == 8
    again = api_client.post(URL, {"file": retail_upload(), "skip_invalid": "true"}, format="multipart").json()
    assert (again["rows_inserted"], again["rows_duplicate"]) == (0, 8)


def test_bad_file_is_400_with_the_lines(api_client):
    response = api_client.post(URL, {"file": retail_upload()}, format="multipart")
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "rejected"
    assert body["errors"] == [{"line": 6, "reason": "no customer id"}]
    assert Transaction.objects.count() == 0


def test_missing_column_is_400_naming_it(api_client):
    upload = SimpleUploadedFile("x.csv", b"InvoiceNo,Quantity\n1,2\n")
    body = api_client.post(URL, {"file": upload}, format="multipart").json()
    assert body["status"] == "rejected"
    assert "Missing required columns customer_id, invoiced_at, unit_price" in body["message"]


def test_admin_session_can_import_xlsx_with_a_json_mapping(admin):
    wb = openpyxl.Workbook()
    wb.active.append(["Bon", "Client", "Date", "Qty", "Price"])
    wb.active.append(["B1", 42, "2024-01-05 10:00", 3, 2.5])
    buffer = io.BytesIO()
    wb.save(buffer)
    client = APIClient()
    client.force_login(admin)
    mapping = json.dumps({"invoice": "Bon", "customer_id": "Client", "invoiced_at": "Date"})  # Qty, Price: known
    upload = SimpleUploadedFile("shop.xlsx", buffer.getvalue())
    response = client.post(URL, {"file": upload, "mapping": mapping}, format="multipart")
    assert response.status_code == 201, response.json()
    t = Transaction.objects.get()
    assert (t.invoice, t.customer.external_id, t.quantity, str(t.amount)) == ("B1", "42", 3, "7.5000")
    assert ImportJob.objects.get().created_by == admin


def test_campaign_kind(api_client):
    upload = SimpleUploadedFile(
        "c.csv", b"customer_id,campaign,treated,converted,revenue,sent_at\n1,x,1,0,0,2024-01-01\n"
    )
    body = api_client.post(URL, {"file": upload, "kind": "campaigns"}, format="multipart").json()
    assert (body["kind"], body["status"], body["rows_inserted"]) == ("campaigns", "succeeded", 1)


def test_analyst_is_forbidden(analyst):
    client = APIClient()
    client.force_login(analyst)
    response = client.post(URL, {"file": retail_upload(), "skip_invalid": "true"}, format="multipart")
    assert response.status_code == 403
    assert ImportJob.objects.count() == 0


def test_anonymous_is_refused(db):
    response = APIClient().post(URL, {"file": retail_upload()}, format="multipart")
    assert response.status_code in (401, 403)
    assert ImportJob.objects.count() == 0


def test_invalid_input_is_400(api_client):
    assert api_client.post(URL, {"skip_invalid": "true"}, format="multipart").status_code == 400
    response = api_client.post(URL, {"file": retail_upload(), "mapping": "{oops"}, format="multipart")
    assert response.status_code == 400
    assert "mapping" in response.json()
    assert ImportJob.objects.count() == 0


def test_endpoint_is_in_the_openapi_schema(admin_client):
    schema = admin_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/imports/"]["post"]
    assert "multipart/form-data" in operation["requestBody"]["content"]
    assert {"201", "400"} <= set(operation["responses"])
