"""The audit log page (admins): filters, pages, and the same selection as CSV."""

from __future__ import annotations

import json

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from rfm_portal.accounts.permissions import admin_required
from rfm_portal.core.csv_export import SafeCSVWriter

from . import selectors
from .forms import AuditFilterForm

CSV_COLUMNS = ["at", "user", "action", "object_type", "object_id", "ip_address", "details"]


def _filtered(request: HttpRequest):
    form = AuditFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    return form, selectors.audit_entries(**{k: v for k, v in filters.items() if v})


@admin_required
@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    form, entries = _filtered(request)
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    actions = selectors.known_actions()
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "audit/log.html", {
        "form": form, "page": page, "actions": actions, "families": selectors.action_families(actions),
        "query": query.urlencode(),
    })


@admin_required
@require_GET
def audit_log_csv(request: HttpRequest) -> HttpResponse:
    _form, entries = _filtered(request)
    writer = SafeCSVWriter()

    def rows():
        yield writer.writerow(CSV_COLUMNS)
        for e in entries.iterator(chunk_size=2000):
            yield writer.writerow([e.at.isoformat(), e.actor_label, e.action, e.target_type, e.target_id,
                                   e.ip_address or "", json.dumps(e.details, sort_keys=True, default=str)])

    response = StreamingHttpResponse(rows(), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="audit-log.csv"'
    return response
