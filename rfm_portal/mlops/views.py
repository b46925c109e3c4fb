"""Portal pages: Jobs (live progress) and Models (registry; promotion and rollback for admins)."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from rfm_portal.accounts.permissions import admin_required

from . import kinds, selectors, services
from .progress import submit_job
from .tasks import RUNNABLE


def _job_rows(jobs) -> list:
    """Each job with a human name and, when it produced one, the model version it made."""
    rows = list(jobs)
    for job in rows:
        job.label = kinds.job_label(job.kind)
        result = job.result if isinstance(job.result, dict) else {}
        job.result_version_id = job.model_version_id or result.get("model_version_id")
    return rows


def job_list(request: HttpRequest) -> HttpResponse:
    # Rendered server-side; jobs.js applies the websocket's updates on top.
    context = {
        "jobs": _job_rows(selectors.job_list()),
        "runnable": [(name, label) for name, (_task, label) in RUNNABLE.items()],
    }
    return render(request, "mlops/jobs.html", context)


@admin_required
@require_POST
def job_start(request: HttpRequest, name: str) -> HttpResponse:
    if name not in RUNNABLE:
        raise Http404("No such job.")
    task, label = RUNNABLE[name]
    job = submit_job(task, {}, request.user)
    messages.success(request, f"{label}: job #{job.pk} queued.")
    return redirect("mlops:jobs")


def model_list(request: HttpRequest) -> HttpResponse:
    """Active version per kind at the top, then every version as one compact row, paged."""
    kind = request.GET.get("kind") or None
    all_kinds = selectors.model_kinds()
    if kind not in all_kinds:
        kind = None
    page = Paginator(selectors.model_version_rows(kind), selectors.MODELS_PAGE_SIZE).get_page(request.GET.get("page"))
    for mv in page.object_list:
        mv.key_metrics = kinds.key_metrics(mv.kind, mv.metrics)
        mv.kind_label = kinds.kind_label(mv.kind)
    # kinds that never serve (e.g. a challenger) and cannot be rolled back have nothing to say here
    active = [g for g in selectors.active_by_kind() if g.active or g.can_roll_back]
    for group in active:
        group.label = kinds.kind_label(group.kind)
        group.key_metrics = kinds.key_metrics(group.kind, group.active.metrics) if group.active else []
    context = {
        "page": page,
        "active_kinds": active,
        "kind_choices": [(k, kinds.kind_label(k)) for k in all_kinds],
        "kind": kind,
    }
    return render(request, "mlops/models.html", context)


def model_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One version: its key metrics, rendered model card, charts and every plain figure it stored."""
    mv = selectors.model_version_detail(pk)
    page_url_name = kinds.kind_page_url_name(mv.kind)
    context = {
        "mv": mv,
        "kind_label": kinds.kind_label(mv.kind),
        "key_metrics": kinds.key_metrics(mv.kind, mv.metrics),
        "charts": [
            {"id": f"fig-version-{i}", "caption": caption, "figure": figure}
            for i, (caption, figure) in enumerate(kinds.kind_charts(mv.kind, mv.metrics))
        ],
        "figures": kinds.scalar_metrics(mv.metrics),
        "jobs": [(job, kinds.job_label(job.kind)) for job in selectors.version_jobs(mv)],
        "page_url_name": page_url_name,
    }
    return render(request, "mlops/model_detail.html", context)


@admin_required
@require_POST
def model_promote(request: HttpRequest, pk: int) -> HttpResponse:
    mv = selectors.model_version_get(pk)
    try:
        services.promote(mv, user=request.user)
    except services.RegistryError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"{mv.kind} v{mv.version} is now active.")
    return redirect("mlops:models")


@admin_required
@require_POST
def model_rollback(request: HttpRequest, kind: str) -> HttpResponse:
    try:
        mv = services.rollback(kind)
    except services.RegistryError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Rolled back: {mv.kind} v{mv.version} is active again.")
    return redirect("mlops:models")


def model_card_download(request: HttpRequest, pk: int) -> HttpResponse:
    """The version's model card as a markdown file."""
    mv = selectors.model_version_get(pk)
    response = HttpResponse(mv.model_card or f"# {mv.kind} v{mv.version}\n\nNo model card was recorded.\n",
                            content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="model-card-{mv.kind}-v{mv.version}.md"'
    return response
