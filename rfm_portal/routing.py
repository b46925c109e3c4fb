"""Websocket routes; each capability that pushes live data adds its consumer here."""

from django.urls import path

from rfm_portal.mlops.consumers import JobsConsumer
from streaming.routing import websocket_urlpatterns as streaming_websockets

websocket_urlpatterns = [
    path("ws/jobs/", JobsConsumer.as_asgi()),
    *streaming_websockets,
]
