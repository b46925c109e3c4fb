"""rfm_portal.core.api.exception_handler: whatever goes wrong inside an API view, the answer is JSON."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from rfm_portal.mlops import selectors


def test_database_unavailable_is_503_with_retry_after(api_client, monkeypatch):
    def refuse():
        raise OperationalError("sorry, too many clients already")

    monkeypatch.setattr(selectors, "model_version_list", refuse)
    response = api_client.get("/api/models/")
    assert response.status_code == 503
    assert response["Content-Type"].startswith("application/json") and response["Retry-After"] == "2"
    assert "retry" in response.json()["detail"]


def test_unexpected_error_is_json_500_and_logged(api_client, monkeypatch, caplog):
    def crash():
        raise RuntimeError("a bug")

    monkeypatch.setattr(selectors, "model_version_list", crash)
    response = api_client.get("/api/models/")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal error; it has been logged."}
    assert any("unhandled error in ModelVersionListApi" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("url", "status"), [("/api/models/", 401), ("/predict_cltv", 401)])
def test_no_credentials_is_json_401(client, db, url, status):
    response = client.get(url) if url.startswith("/api/") else client.post(url, {}, content_type="application/json")
    assert response.status_code == status and response["Content-Type"].startswith("application/json")
    assert response["WWW-Authenticate"] == "Api-Key"
