"""CLTV portal pages: the model and whether to trust it, the customers' value, retraining, export."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from rfm_portal.accounts.permissions import admin_required, is_portal_admin
from rfm_portal.core.csv_export import SafeCSVWriter
from rfm_portal.customers.models import Customer
from rfm_portal.mlops import services as registry
from rfm_portal.mlops.progress import submit_job

from . import selectors, services
from .forms import CLVSettingsForm
from .models import CLTVScore
from .tasks import train_cltv_task


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
    if form.is_bound and form.is_valid():
        bundle = services.bundle_with_settings(bundle, **form.cleaned_data)
    page = services.cltv_page(mv, bundle, selectors.scores_frame(mv))
    context.update({"form": form, "bundle": bundle, "page": page, "metrics": mv.metrics})
    return render(request, "cltv/overview.html", context)


def scores_csv(request: HttpRequest) -> HttpResponse:
    mv = selectors.active_version()
    if mv is None:
        return HttpResponse("No active CLTV model.", status=404, content_type="text/plain")
    fields = [
        "frequency", "recency", "T", "monetary", "p_alive", "expected_purchases_30d", "expected_purchases_90d",
        "expected_purchases_365d", "expected_aov", "clv", "clv_p10", "clv_p50", "clv_p90",
    ]  # fmt: skip
    rows = (
        CLTVScore.objects.filter(model_version=mv)
        .order_by("-clv")
        .values_list("customer__external_id", "first_purchase", *fields)
    )
    writer = SafeCSVWriter()

    def stream() -> Iterator[str]:
        yield writer.writerow(["customer_id", "first_purchase", *fields, "model_version"])
        for row in rows.iterator(chunk_size=5000):
            yield writer.writerow([*row, mv.version])

    response = StreamingHttpResponse(stream(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="cltv_scores_v{mv.version}.csv"'
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
