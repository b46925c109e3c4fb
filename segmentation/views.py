"""Segmentation pages: overview, clusters, k search, migration, members (+ CSV), retrain (admins)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from rfm_portal.accounts.permissions import admin_required, is_portal_admin
from rfm_portal.core.csv_export import SafeCSVWriter
from rfm_portal.customers.models import Customer
from rfm_portal.dashboard.currency import money_column
from rfm_portal.mlops.models import Job
from rfm_portal.mlops.progress import submit_job
from segmentation import charts, selectors
from segmentation.forms import TrainSegmentationForm
from segmentation.segment_map import SEGMENT_NAMES, segment_grid
from segmentation.tasks import train_segmentation_task

PAGE_SIZE = 50


def _base_context(request: HttpRequest, tab: str) -> dict[str, Any]:
    mv = selectors.active_version()
    latest = selectors.latest_version()
    jobs = Job.objects.filter(kind=train_segmentation_task.name).order_by("-created_at", "-id")[:3]
    return {
        "tab": tab,
        "mv": mv,
        "summary": selectors.summary(mv) if mv is not None else None,
        "latest": latest if latest is not None and (mv is None or latest.pk != mv.pk) else None,
        "train_jobs": jobs,
        "is_admin": is_portal_admin(request.user),
        "train_form": TrainSegmentationForm(),
    }


@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    context = _base_context(request, "overview")
    summary = context["summary"]
    if summary is not None:
        context.update(
            segment_rows=summary.segment_rows(),
            overview_figure=charts.segment_overview_figure(summary.segments),
            pareto_figure=charts.pareto_figure(summary.pareto) if len(summary.pareto) else None,
            rf_figure=charts.rf_heatmap_figure(summary.rf_grid),
            grid=segment_grid(),
        )
    return render(request, "segmentation/overview.html", context)


@require_GET
def clusters(request: HttpRequest) -> HttpResponse:
    context = _base_context(request, "clusters")
    summary = context["summary"]
    if summary is not None:
        context.update(
            cluster_rows=summary.cluster_rows(),
            radar_figure=charts.cluster_radar_figure(summary.clusters),
        )
    return render(request, "segmentation/clusters.html", context)


@require_GET
def k_search(request: HttpRequest) -> HttpResponse:
    context = _base_context(request, "k-search")
    summary = context["summary"]
    if summary is not None and summary.search is not None:
        context.update(
            k_figure=charts.k_search_figure(summary.search),
            k_rows=summary.search.table().to_dict(orient="records"),
        )
    return render(request, "segmentation/k_search.html", context)


@require_GET
def migration(request: HttpRequest) -> HttpResponse:
    context = _base_context(request, "migration")
    summary = context["summary"]
    if summary is not None and summary.migration is not None:
        matrix = summary.migration
        context.update(
            sankey_figure=charts.migration_sankey_figure(matrix),
            heatmap_figure=charts.migration_heatmap_figure(matrix),
            matrix_columns=list(matrix.columns),
            matrix_rows=[(label, row.tolist(), int(row.sum())) for label, row in matrix.iterrows()],
            moved=summary.metrics["customers_moved_segment"],
            total=int(matrix.to_numpy().sum()),
        )
    return render(request, "segmentation/migration.html", context)


def _member_filter(request: HttpRequest) -> dict[str, Any]:
    segment = request.GET.get("segment", "")
    if segment and segment not in SEGMENT_NAMES:
        raise Http404("No such segment.")
    cluster_raw = request.GET.get("cluster", "")
    try:
        cluster = int(cluster_raw) if cluster_raw != "" else None
    except ValueError:
        raise Http404("No such cluster.") from None
    return {"segment": segment, "cluster": cluster, "search": request.GET.get("q", "")}


@require_GET
def members(request: HttpRequest) -> HttpResponse:
    context = _base_context(request, "members")
    filters = _member_filter(request)
    if context["mv"] is not None:
        names = context["mv"].metrics.get("cluster_names", [])
        if filters["cluster"] is not None and not 0 <= filters["cluster"] < len(names):
            raise Http404("No such cluster.")
        paginator = Paginator(selectors.score_list(context["mv"], **filters), PAGE_SIZE)
        context.update(
            page=paginator.get_page(request.GET.get("page")),
            cluster_names=list(enumerate(names)),
            cluster_label=names[filters["cluster"]] if filters["cluster"] is not None else "",
        )
    context.update(filters=filters, q=filters["search"], segment_names=SEGMENT_NAMES)
    return render(request, "segmentation/members.html", context)


CSV_HEADER = [
    "customer_id", "country", "recency_days", "frequency", "monetary", "r_score", "f_score", "m_score",
    "rfm_code", "segment", "cluster", "cluster_name", "first_purchase", "last_purchase", "model_version",
]  # fmt: skip


def _csv_rows(mv, filters: dict[str, Any]) -> Iterator[str]:
    writer = SafeCSVWriter()
    # the amount column names its currency (net_revenue_gbp)
    yield writer.writerow([money_column("net_revenue") if h == "monetary" else h for h in CSV_HEADER])
    for s in selectors.score_list(mv, **filters).iterator(chunk_size=2000):
        yield writer.writerow(
            [
                s.customer.external_id, s.customer.country, s.recency_days, s.frequency, f"{s.monetary:.2f}",
                s.r_score, s.f_score, s.m_score, s.rfm_code, s.segment, s.cluster, s.cluster_name,
                s.first_purchase.isoformat(), s.last_purchase.isoformat(), mv.version,
            ]
        )  # fmt: skip


@require_GET
def members_csv(request: HttpRequest) -> HttpResponse:
    mv = selectors.active_version()
    if mv is None:
        raise Http404("No segmentation model has been trained yet.")
    filters = _member_filter(request)
    label = filters["segment"] or (f"cluster-{filters['cluster']}" if filters["cluster"] is not None else "all")
    response = StreamingHttpResponse(_csv_rows(mv, filters), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="segment-{slugify(label)}-v{mv.version}.csv"'
    return response


@admin_required
@require_POST
def train(request: HttpRequest) -> HttpResponse:
    form = TrainSegmentationForm(request.POST)
    if not form.is_valid():
        errors = "; ".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items())
        messages.error(request, f"Retrain not started: {errors}")
        return redirect("segmentation:overview")
    job = submit_job(train_segmentation_task, form.job_params(), request.user)
    messages.success(request, f"Segmentation retrain queued as job #{job.pk}; follow it on the Jobs page.")
    return redirect("mlops:jobs")


def customer_panel_context(customer: Customer) -> dict[str, Any] | None:
    """The customer-360 panel: this customer's RFM in the active version (None when not scored)."""
    score = selectors.customer_score(customer)
    if score is None:
        return None
    return {"score": score, "info": selectors.SEGMENT_INFO.get(score.segment), "mv": score.model_version}
