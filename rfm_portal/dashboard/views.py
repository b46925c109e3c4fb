from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from rfm_portal.customers import selectors

from . import charts, summaries

_DECIMALS = ("revenue", "average_order_value", "returns_value")
_DATETIMES = ("as_of", "first_transaction")


def compute_overview(versions: dict[str, Any]) -> dict[str, Any]:
    """The overview's KPIs and revenue chart over every transaction (stored in ``summaries``, see SPECS)."""
    kpis = asdict(selectors.overview_kpis())
    for name in _DECIMALS:
        kpis[name] = None if kpis[name] is None else str(kpis[name])
    for name in _DATETIMES:
        kpis[name] = None if kpis[name] is None else kpis[name].isoformat()
    months = selectors.monthly_revenue()
    return {"kpis": kpis, "revenue_figure": charts.monthly_revenue_figure(months) if months else None}


def _kpis(stored: dict[str, Any]) -> selectors.OverviewKPIs:
    values = dict(stored)
    for name in _DECIMALS:
        values[name] = None if values[name] is None else Decimal(values[name])
    for name in _DATETIMES:
        values[name] = None if values[name] is None else datetime.fromisoformat(values[name])
    return selectors.OverviewKPIs(**values)


def overview(request: HttpRequest) -> HttpResponse:
    summary = summaries.get("overview")
    context = {"kpis": _kpis(summary["kpis"]), "revenue_figure": summary["revenue_figure"]}
    return render(request, "dashboard/overview.html", context)
