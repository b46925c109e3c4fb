from django.urls import path

from .consumers import LiveFeedConsumer

websocket_urlpatterns = [path("ws/live/", LiveFeedConsumer.as_asgi())]
