"""The customer-360 privacy panel and the erase page: admins only, confirmation by typing the id."""

from __future__ import annotations

from django.urls import reverse

from rfm_portal.customers.models import Customer, Transaction

from .conftest import SECRET_ID


def test_panel_offers_erase_and_export_to_admins_only(people, admin_client, analyst_client):
    url = reverse("customers:detail", args=[SECRET_ID])
    admin_page = admin_client.get(url).content.decode()
    assert 'data-panel="privacy"' in admin_page
    assert reverse("privacy:customer-erase", args=[SECRET_ID]) in admin_page
    assert reverse("privacy:customer-export", args=[SECRET_ID]) in admin_page
    analyst_page = analyst_client.get(url).content.decode()
    assert 'data-panel="privacy"' in analyst_page
    assert reverse("privacy:customer-erase", args=[SECRET_ID]) not in analyst_page


def test_erase_page_shows_what_goes_and_needs_the_id(people, admin_client):
    url = reverse("privacy:customer-erase", args=[SECRET_ID])
    page = admin_client.get(url).content.decode()
    assert "customers.transaction" in page and "cannot be undone" in page
    wrong = admin_client.post(url, {"confirm": "KEEP-0"})
    assert wrong.status_code == 200 and "nothing was erased" in wrong.content.decode()
    assert Customer.objects.filter(external_id=SECRET_ID).exists()
    done = admin_client.post(url, {"confirm": SECRET_ID}, follow=True)
    assert done.redirect_chain[-1][0] == reverse("customers:list")
    assert "Customer erased: 3 rows removed" in done.content.decode()  # 2 transactions + the customer
    assert not Customer.objects.filter(external_id=SECRET_ID).exists()
    assert Transaction.objects.count() == len(people["others"])


def test_analysts_cannot_erase_or_export(people, analyst_client):
    assert analyst_client.post(reverse("privacy:customer-erase", args=[SECRET_ID]),
                               {"confirm": SECRET_ID}).status_code == 403
    assert analyst_client.get(reverse("privacy:customer-export", args=[SECRET_ID])).status_code == 403
    assert Customer.objects.filter(external_id=SECRET_ID).exists()
