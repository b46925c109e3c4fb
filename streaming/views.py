"""The Live feed page and its full-screen wall mode (both login required, like every page)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from . import selectors


def _context() -> dict:
    return {"snapshot": selectors.snapshot(), "sharp_rise_points": round(100 * settings.STREAM["SHARP_RISE"]),
            "dead_letters": selectors.dead_letters(20)}


def live(request: HttpRequest) -> HttpResponse:
    return render(request, "streaming/live.html", _context())


def wall(request: HttpRequest) -> HttpResponse:
    return render(request, "streaming/wall.html", _context())
