"""The Live feed page and wall mode: login required, snapshot rendered, linked from the navigation."""

from __future__ import annotations

from django.urls import reverse

from streaming import services
from streaming.events import parse_event

from .conftest import event


def test_the_page_needs_a_login(outsider_client):
    for name in ("streaming:live", "streaming:wall"):
        response = outsider_client.get(reverse(name))
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_the_navigation_points_at_the_live_feed(analyst_client, stream):
    response = analyst_client.get(reverse("dashboard:overview"))
    live = [item for item in response.context["nav_items"] if item["title"] == "Live feed"]
    assert live and live[0]["url"] == reverse("streaming:live")


def test_the_page_lists_alerts_newest_first_with_cause_risk_and_value(live_db, stream, settings, client):
    from rfm_portal.accounts.models import User

    settings.STREAM = {**settings.STREAM, "SHARP_RISE": -1.0}
    customers = live_db.high_risk[:2]
    services.apply_events([parse_event(event("page-1", customers[0]))])
    services.apply_events([parse_event(event("page-2", customers[1], kind="return", quantity=1))])
    user = User.objects.create_user("pager", "p@example.com", "x-password-123")
    client.force_login(user)
    html = client.get(reverse("streaming:live")).content.decode()
    assert html.index('data-event-id="page-2"') < html.index('data-event-id="page-1"')
    assert f'href="{reverse("customers:detail", args=[customers[0]])}"' in html
    assert "Return of £6.49" in html and "Purchase of £12.98" in html
    assert 'id="live-connection"' in html and "js/live.js" in html
    wall = client.get(reverse("streaming:wall")).content.decode()
    assert 'class="wall"' in wall and "sidebar" not in wall and "<form" not in wall  # no controls
    assert 'data-event-id="page-2"' in wall
