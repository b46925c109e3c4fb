"""Portal pages: Jobs (live progress) and Models (registry; promotion and rollback for admins)."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from rfm_portal.accounts.permissions import admin_required

from . import selectors, services
from .progress import submit_job
from .tasks import RUNNABLE


def job_list(request: HttpRequest) -> HttpResponse:
    # Rendered server-side; jobs.js applies the websocket's updates on top.
    context = {
        "jobs": selectors.job_list(),
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
    return render(request, "mlops/models.html", {"kinds": selectors.versions_by_kind()})


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
