"""Login throttling (django-axes): too many wrong passwords lock the username from that address.

Every failed attempt is recorded (axes' AccessAttempt / AccessFailureLog, visible in the
Django admin); after AXES_FAILURE_LIMIT failures the login page refuses even the right
password, says so plainly and when to come back (429 with Retry-After), until the cool-off
passes or an admin runs `manage.py axes_reset_username <name>`.
"""

from __future__ import annotations

import math
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_cool_off
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def lockout_message(request: HttpRequest) -> str:
    cool_off = get_cool_off(request)
    minutes = max(1, math.ceil(cool_off.total_seconds() / 60)) if cool_off else None
    wait = f"Try again in {minutes} minute{'s' if minutes != 1 else ''}" if minutes else "Ask an admin to unlock it"
    return (
        f"Too many failed log-in attempts: this account is locked for now, even with the right password. "
        f"{wait}, or ask an admin to unlock it sooner."
    )


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict[str, Any] | None = None
) -> HttpResponse:
    """The login page again, with the lockout explained (429, Retry-After)."""
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    form = AuthenticationForm(request, initial={"username": username})
    context = {"form": form, "locked_out": lockout_message(request), "next": request.POST.get("next", "")}
    response = render(request, "registration/login.html", context, status=429)
    cool_off = get_cool_off(request)
    if cool_off:
        response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response


class PortalAxesBackend(AxesStandaloneBackend):
    """Axes' check on every login through a request (the login page, the admin).

    authenticate() without a request (a management command, Client.login in tests) has no
    client address to throttle by; axes would raise, so those calls are passed on untouched.
    """

    def authenticate(self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kw):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kw)
