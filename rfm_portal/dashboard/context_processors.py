from django.urls import NoReverseMatch, reverse

from rfm_portal.accounts.permissions import is_portal_admin

from .navigation import CAPABILITIES


def navigation(request) -> dict:
    # Hiding admin items is for tidiness only; the views themselves refuse non-admins.
    show_admin = is_portal_admin(getattr(request, "user", None))
    items = []
    for cap in CAPABILITIES:
        if cap.admin_only and not show_admin:
            continue
        try:
            url = reverse(cap.url_name)
        except NoReverseMatch:
            continue
        items.append({"slug": cap.slug, "title": cap.title, "url": url, "active": request.path == url})
    return {"nav_items": items}
