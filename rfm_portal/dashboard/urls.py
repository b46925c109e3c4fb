from django.urls import path

from . import views

app_name = "dashboard"

# Capabilities whose apps are not built yet; each app replaces its entry with its own urls.
PENDING = ("lookalikes", "live")

urlpatterns = [
    path("", views.overview, name="overview"),
    *[path(f"{slug}/", views.capability_pending, {"slug": slug}, name=slug) for slug in PENDING],
]
