"""The Audiences page: saved customer selections, their size and source, CSV of members, delete."""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from rfm_portal.accounts.permissions import is_portal_admin

from . import selectors, services


def audience_list(request: HttpRequest) -> HttpResponse:
    audiences = list(selectors.audience_list())
    for audience in audiences:
        audience.can_delete = is_portal_admin(request.user) or audience.created_by_id == request.user.pk
    return render(request, "customers/audiences.html", {"audiences": audiences})


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_rows(audience) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(["customer_id", "country", "rank", "score", "audience"])
    for eid, country, rank, score in selectors.audience_member_rows(audience):
        yield writer.writerow([eid, country, rank, "" if score is None else f"{score:.4f}", audience.name])


def _audience_from(params) -> object | None:
    try:
        return selectors.audience_get(int(params.get("id", "")))
    except ValueError:
        return None


def audience_csv(request: HttpRequest) -> HttpResponse:
    audience = _audience_from(request.GET)
    if audience is None:
        return HttpResponse("No such audience (give ?id=<audience id>).\n", status=404, content_type="text/plain")
    response = StreamingHttpResponse(_csv_rows(audience), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="audience_{slugify(audience.name) or audience.pk}.csv"'
    return response


@require_POST
def audience_delete(request: HttpRequest) -> HttpResponse:
    audience = _audience_from(request.POST)
    if audience is None:
        messages.error(request, "No such audience.")
        return redirect("customers:audiences")
    try:
        services.audience_delete(audience, user=request.user)
    except PermissionDenied:
        messages.error(request, "Only the audience's creator or an admin can delete it.")
        return redirect("customers:audiences")
    messages.success(request, f"Audience “{audience.name}” deleted.")
    return redirect("customers:audiences")
