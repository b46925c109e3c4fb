"""Swagger UI and ReDoc render from the project's own static files: no CDN, so docs work offline."""

from __future__ import annotations

import re

import pytest

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
SCRIPT_URL = re.compile(r"""["']((?:https?:)?//[^"']+)["']""")


@pytest.mark.parametrize("url", ["/api/docs/", "/api/redoc/"])
def test_docs_page_loads_every_asset_locally(analyst_client, url):
    response = analyst_client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert not SCRIPT_URL.findall(html), f"{url} references an outside host"
    # /static/, or ReDoc's bundle from /docs-assets/ (the sidecar's file minus its CDN logo)
    assets = [a for a in ASSET.findall(html) if a.startswith("/") and not a.startswith("//")]
    assert assets, f"{url} should load its UI from the portal"
    for asset in assets:
        served = analyst_client.get(asset)
        assert served.status_code == 200, asset
        body = b"".join(served.streaming_content) if served.streaming else served.content
        assert len(body) > 100, asset
        assert b"cdn.redoc.ly" not in body and b"fonts.googleapis" not in body, asset


def test_docs_need_a_login(outsider_client):
    for url in ("/api/docs/", "/api/redoc/", "/api/schema/"):
        assert outsider_client.get(url).status_code in (302, 401, 403), url
