from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from rfm_portal.customers import selectors

from . import charts
from .navigation import CAPABILITIES


def overview(request: HttpRequest) -> HttpResponse:
    kpis = selectors.overview_kpis()
    months = selectors.monthly_revenue()
    context = {
        "kpis": kpis,
        "revenue_figure": charts.monthly_revenue_figure(months) if months else None,
        "months": months,
    }
    return render(request, "dashboard/overview.html", context)


def capability_pending(request: HttpRequest, slug: str) -> HttpResponse:
    """The page of a capability that is not built yet: says so, shows no numbers."""
    capability = next(c for c in CAPABILITIES if c.slug == slug)
    return render(request, "dashboard/pending.html", {"capability": capability})
