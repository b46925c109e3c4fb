from django.urls import path

from . import api, views

app_name = "streaming"

urlpatterns = [
    path("live/", views.live, name="live"),
    path("live/wall/", views.wall, name="wall"),
    path("api/events", api.events_api, name="api-events"),
]
