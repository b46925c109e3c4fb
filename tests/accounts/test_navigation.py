import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def titles(response) -> list[str]:
    return [item["title"] for item in response.context["nav_items"]]


def test_everyone_sees_jobs_and_models_only_admins_see_admin_pages(analyst_client, admin_client):
    analyst_nav = titles(analyst_client.get(reverse("mlops:jobs")))
    admin_nav = titles(admin_client.get(reverse("mlops:jobs")))
    assert {"Jobs", "Models"} <= set(analyst_nav)
    assert not {"Users", "API keys"} & set(analyst_nav)
    assert {"Jobs", "Models", "Users", "API keys"} <= set(admin_nav)
