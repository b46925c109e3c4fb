"""The admin upload of an import file (the list and detail pages are in views.py).

Small files are imported in the request; large ones (IMPORT_BACKGROUND_THRESHOLD_BYTES) were
streamed to disk by Django's upload handler and are imported by a background Job.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from rfm_portal.accounts.permissions import admin_required

from . import selectors, services
from .forms import ImportUploadForm
from .models import ImportJob


@require_POST
@admin_required
def import_upload(request: HttpRequest) -> HttpResponse:
    form = ImportUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        context = {"jobs": selectors.recent_imports(), "form": form}
        return render(request, "customers/import_list.html", context, status=400)
    data = form.cleaned_data
    if services.is_large_upload(data["file"]):
        # Big files: on disk, imported by a worker with progress; JobQueueUnavailable (broker down)
        # becomes a message on the page (mlops middleware).
        job = services.queue_import(
            data["file"],
            kind=data["kind"],
            mapping=data["mapping"],
            skip_invalid=data["skip_invalid"],
            dayfirst=data["dayfirst"],
            user=request.user,
        )
        messages.info(request, job.message)
        return redirect("customers:import-detail", pk=job.pk)
    job = services.import_uploaded_file(
        data["file"],
        kind=data["kind"],
        mapping=data["mapping"],
        skip_invalid=data["skip_invalid"],
        dayfirst=data["dayfirst"],
        user=request.user,
    )
    level = messages.SUCCESS if job.status == ImportJob.Status.SUCCEEDED else messages.ERROR
    messages.add_message(request, level, job.message)
    return redirect("customers:import-detail", pk=job.pk)
