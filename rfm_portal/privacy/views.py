"""Erasure and access pages (admins), the customer-360 privacy panel, and the limitations page (everyone)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from rfm_portal.accounts.permissions import admin_required
from rfm_portal.customers.models import Customer

from . import selectors, services
from .forms import ErasureConfirmForm


def customer_panel_context(customer: Customer) -> dict[str, Any]:
    return {"customer": customer}


@admin_required
@require_http_methods(["GET", "POST"])
def customer_erase(request: HttpRequest, external_id: str) -> HttpResponse:
    customer = get_object_or_404(Customer, external_id=external_id)
    form = ErasureConfirmForm(request.POST or None, external_id=customer.external_id)
    if request.method == "POST" and form.is_valid():
        result = services.erase_customer(customer=customer, actor=request.user)
        messages.success(request, f"Customer erased: {result.total_rows} rows removed"
                         f"{' and their lookalike-index entry' if result.stores.get('embeddings-index') else ''}. "
                         "An audit entry (without personal data) records it.")
        return redirect("customers:list")
    footprint = services.footprint_summary(selectors.customer_footprint(customer))
    return render(request, "privacy/erase.html", {"customer": customer, "form": form, "footprint": footprint})


@admin_required
@require_http_methods(["GET"])
def customer_export(request: HttpRequest, external_id: str) -> HttpResponse:
    customer = get_object_or_404(Customer, external_id=external_id)
    data = services.export_customer(customer=customer, actor=request.user)
    response = HttpResponse(data, content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="customer-{customer.pk}.json"'
    return response


# Measured with bench/country_input_bench.py (docs/operations.md has the full table); shown on the page.
COUNTRY_INPUT_MEASURED = {
    "setup": "3 generated data sets of 6,000 customers in 8 countries",
    "churn": "changed by −0.0004 (logistic, 0.8284 → 0.8280) and +0.0003 (LightGBM, 0.8239 → 0.8242)",
    "uplift": "changed by +0.0002 (causal forest, 0.0151 → 0.0152) and −0.0005 (T-learner, 0.0096 → 0.0090)",
}


def limitations(request: HttpRequest) -> HttpResponse:
    return render(request, "privacy/limitations.html", {
        "fatigue_days": getattr(settings, "CAMPAIGN_FATIGUE_DAYS", 14),
        "measured": COUNTRY_INPUT_MEASURED,
        "country_setting": getattr(settings, "MODELS_USE_COUNTRY", False),
    })
