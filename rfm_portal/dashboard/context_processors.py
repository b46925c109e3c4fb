from django.urls import NoReverseMatch, reverse

from .navigation import CAPABILITIES


def navigation(request) -> dict:
    items = []
    for cap in CAPABILITIES:
        try:
            url = reverse(cap.url_name)
        except NoReverseMatch:
            continue
        items.append({"slug": cap.slug, "title": cap.title, "url": url, "active": request.path == url})
    return {"nav_items": items}
