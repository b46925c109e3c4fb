"""CLTV portal pages: the model and whether to trust it, the customers' value, retraining, export."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from rfm_portal.accounts.permissions import admin_required, is_portal_admin
from rfm_portal.core.csv_export import SafeCSVWriter
from rfm_portal.customers.models import Customer
from rfm_portal.dashboard import summaries
from rfm_portal.mlops import services as registry
from rfm_portal.mlops.progress import submit_job

from . import selectors, services
from .forms import CLVSettingsForm
from .tasks import train_cltv_task


def compute_overview(versions: dict[str, Any]) -> dict[str, Any]:
    """The overview at the trained settings over every scored customer, stored per model version
    (``dashboard.summaries``)."""
    mv = versions[services.KIND]
    if mv is None:
        return {}
    return dataclasses.asdict(services.cltv_page(mv, registry.load_active(services.KIND), selectors.scores_frame(mv)))


def overview(request: HttpRequest) -> HttpResponse:
    mv = selectors.active_version()
    context: dict[str, Any] = {
        "mv": mv,
        "latest": selectors.latest_version(),
        "is_admin": is_portal_admin(request.user),
    }
    if mv is None:
        return render(request, "cltv/overview.html", context)
    bundle = registry.load_active(services.KIND)
    initial = {
        "horizon_days": int(bundle.clv_horizon_days),
        "annual_discount_rate": bundle.annual_discount_rate,
        "margin": bundle.margin,
    }
    form = CLVSettingsForm(request.GET if request.GET else None, initial=initial)
    export_query = ""
    if form.is_bound and form.is_valid():
        bundle = services.bundle_with_settings(bundle, **form.cleaned_data)
        export_query = urlencode(form.cleaned_data)  # the export follows what is on screen
    if export_query:  # other settings than the trained ones: a what-if, computed for this request
        page = services.cltv_page(mv, bundle, selectors.scores_frame(mv))
    else:
        page = services.CLTVPage(**summaries.get("cltv.overview", {services.KIND: mv}))
    context.update({"form": form, "bundle": bundle, "page": page, "metrics": mv.metrics, "export_query": export_query})
    return render(request, "cltv/overview.html", context)


def scores_csv(request: HttpRequest) -> HttpResponse:
    """The scores as the page shows them: the horizon, discount rate and margin in the query apply."""
    mv = selectors.active_version()
    if mv is None:
        return HttpResponse("No active CLTV model.", status=404, content_type="text/plain")
    bundle = registry.load_active(services.KIND)
    if request.GET:
        form = CLVSettingsForm(request.GET)
        if not form.is_valid():
            return HttpResponse(f"Invalid settings: {form.errors.as_text()}", status=400, content_type="text/plain")
        bundle = services.bundle_with_settings(bundle, **form.cleaned_data)
    table = services.scores_export(mv, bundle, selectors.scores_frame(mv))
    writer = SafeCSVWriter()

    def stream() -> Iterator[str]:
        yield writer.writerow(list(table.columns))
        for row in table.itertuples(index=False, name=None):
            yield writer.writerow(row)

    response = StreamingHttpResponse(stream(), content_type="text/csv")
    name = f"cltv_scores_v{mv.version}_{round(bundle.clv_horizon_days)}d_margin{bundle.margin:g}"
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response


@admin_required
@require_POST
def train(request: HttpRequest) -> HttpResponse:
    job = submit_job(train_cltv_task, {}, request.user)
    messages.success(request, f"CLTV training queued as job #{job.pk}; follow it on the Jobs page.")
    return redirect("mlops:jobs")


def customer_panel_context(customer: Customer) -> dict[str, Any] | None:
    """Customer-360 panel: the active model's scores for this customer, or None."""
    mv = selectors.active_version()
    if mv is None:
        return None
    score = selectors.customer_score(customer, mv)
    if score is None:
        return None
    return {"score": score, "mv": mv, "unit": "weeks" if mv.params.get("unit") == "W" else "days"}
