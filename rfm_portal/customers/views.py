from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from rfm_portal.dashboard import charts

from . import selectors
from .models import Customer, ImportJob
from .panels import customer_panels

PAGE_SIZE = 50


def customer_list(request: HttpRequest) -> HttpResponse:
    search = request.GET.get("q", "")
    order = request.GET.get("order", "-revenue")
    paginator = Paginator(selectors.customer_list(search, order), PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    return render(request, "customers/list.html", {"page": page, "q": search, "order": order})


def customer_detail(request: HttpRequest, external_id: str) -> HttpResponse:
    customer = get_object_or_404(Customer, external_id=external_id)
    invoices = selectors.customer_invoices(customer)
    context = {
        "customer": customer,
        "totals": selectors.customer_totals(customer),
        "invoices": invoices[:100],
        "invoice_count": len(invoices),
        "timeline_figure": charts.customer_timeline_figure(invoices) if invoices else None,
        "transactions": selectors.customer_transactions(customer),
        "campaigns": selectors.customer_campaigns(customer),
        "panels": customer_panels(customer),
    }
    return render(request, "customers/detail.html", context)


def import_list(request: HttpRequest) -> HttpResponse:
    return render(request, "customers/import_list.html", {"jobs": selectors.recent_imports()})


def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(ImportJob, pk=pk)
    return render(request, "customers/import_detail.html", {"job": job})
