from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from rfm_portal.customers import selectors

from . import charts


def overview(request: HttpRequest) -> HttpResponse:
    kpis = selectors.overview_kpis()
    months = selectors.monthly_revenue()
    context = {
        "kpis": kpis,
        "revenue_figure": charts.monthly_revenue_figure(months) if months else None,
        "months": months,
    }
    return render(request, "dashboard/overview.html", context)
