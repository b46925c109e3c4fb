"""403/404/500 are the portal's own pages with a way back, not Django's bare text."""

import pytest
from django.template.loader import render_to_string
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_analyst_opening_an_admin_page_gets_a_friendly_403(analyst_client):
    response = analyst_client.get(reverse("accounts:users"))
    assert response.status_code == 403
    body = response.content.decode()
    assert "This page is for admins" in body and reverse("dashboard:overview") in body
    assert 'class="sidebar"' in body  # the navigation stays, so the analyst can carry on


def test_unknown_address_gets_a_friendly_404(analyst_client):
    response = analyst_client.get("/no-such-page/")
    assert response.status_code == 404
    assert "We could not find that page" in response.content.decode()


def test_500_page_renders_without_a_request_and_links_home():
    html = render_to_string("500.html")
    assert "Something went wrong on our side" in html and 'href="/"' in html and "favicon.svg" in html


def test_every_page_links_the_favicon(analyst_client):
    assert "favicon.svg" in analyst_client.get(reverse("dashboard:overview")).content.decode()


def test_favicon_ico_redirects_to_the_svg_without_a_login(outsider_client):
    response = outsider_client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("favicon.svg")
