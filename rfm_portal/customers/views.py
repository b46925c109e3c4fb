from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from rfm_portal.dashboard import charts

from . import selectors, services, table
from .audiences import AudienceError
from .models import Customer, ImportJob
from .panels import customer_panels
from .table_display import NUMERIC_KINDS, spec_pairs, table_csv_lines, table_rows

PAGE_SIZE = 50


def _table_request(params) -> tuple[dict, dict, str]:
    spec, errors = table.parse_filters(params)
    order = params.get("order") or table.default_order()
    return spec, errors, order


def customer_list(request: HttpRequest) -> HttpResponse:
    """The customer table: every model's score beside the totals, filtered and sorted together."""
    spec, errors, order = _table_request(request.GET)
    paginator = Paginator(table.customer_table_rows(spec, order), PAGE_SIZE)
    columns = table.table_columns()
    with table.without_jit():
        page = paginator.get_page(request.GET.get("page"))
        rows = table_rows(page.object_list, columns)
    query = request.GET.copy()
    query.pop("page", None)
    sort_query = query.copy()
    sort_query.pop("order", None)
    filters = [{"filter": flt, "value": spec.get(flt.key), "error": errors.get(flt.key),
                "options": list(flt.choices()) if flt.choices else []} for flt in table.table_filters()]
    return render(request, "customers/list.html", {
        "page": page, "rows": rows, "columns": columns, "order": order,
        "filters": filters, "spec": spec, "errors": errors, "query": query.urlencode(),
        "sort_query": sort_query.urlencode(), "spec_pairs": spec_pairs(spec), "numeric_kinds": NUMERIC_KINDS,
    })


def customer_table_csv(request: HttpRequest) -> HttpResponse:
    """CSV of exactly what the table shows: same filters, same order, every row (not just one page)."""
    spec, errors, order = _table_request(request.GET)
    if errors:
        return HttpResponse("Bad filter: " + "; ".join(f"{k}: {v}" for k, v in errors.items()) + "\n",
                            status=400, content_type="text/plain")
    columns = table.table_columns()
    response = StreamingHttpResponse(table_csv_lines(table.customer_table(spec, order), columns),
                                     content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="customers.csv"'
    return response


@require_POST
def customer_table_save_audience(request: HttpRequest) -> HttpResponse:
    """Save the table's current filters as a filter audience (the campaign planner targets it)."""
    spec, errors, _ = _table_request(request.POST)
    back = reverse("customers:list") + ("?" + request.POST.get("query", "") if request.POST.get("query") else "")
    if errors:
        messages.error(request, "Audience not saved: " + "; ".join(errors.values()))
        return redirect(back)
    try:
        audience = services.audience_create(name=request.POST.get("name", ""), kind="filter", user=request.user,
                                            filter=spec, source="customer table",
                                            description=request.POST.get("description", "")[:500])
    except AudienceError as exc:
        messages.error(request, f"Audience not saved: {exc}")
        return redirect(back)
    messages.success(request, f"Audience “{audience.name}” saved with {audience.size:,} customers today; "
                              "it follows these filters as the models are retrained.")
    return redirect(back)


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
