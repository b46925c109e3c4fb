"""Campaign pages: list + ranking, new/edit, the campaign page (plan, audit log, results), lifecycle actions,
exports, message preview, the template library, the customer panel. Thin: services decide and enforce roles."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from campaigns import charts, pipeline, selectors, services
from campaigns.forms import CampaignForm, MessageTemplateForm, PreviewForm, ReviewForm
from campaigns.models import Campaign, CampaignTarget
from campaigns.services import CampaignError, CampaignPermissionError
from campaigns.tasks import plan_campaign_task
from rfm_portal.accounts.permissions import admin_required, is_portal_admin
from rfm_portal.customers.models import Customer
from rfm_portal.mlops.progress import submit_job
from uplift import selectors as uplift_selectors


def _campaign(pk: int) -> Campaign:
    campaign = selectors.campaign_get(pk)
    if campaign is None:
        raise Http404("No such campaign.")
    return campaign


def _act(request: HttpRequest, campaign: Campaign, fn, *args: Any, done: str, **kwargs: Any) -> HttpResponse:
    try:
        fn(campaign, *args, user=request.user, **kwargs)
    except CampaignPermissionError as error:
        raise PermissionDenied(str(error)) from error
    except CampaignError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, done)
    return redirect("campaigns:detail", pk=campaign.pk)


def campaign_list(request: HttpRequest) -> HttpResponse:
    return render(request, "campaigns/list.html", {
        "campaigns": selectors.campaign_list(request.GET.get("status", "")), "ranking": selectors.ranked_campaigns(),
        "status_counts": selectors.status_counts(), "statuses": Campaign.Status.choices,
        "status": request.GET.get("status", ""), "is_admin": is_portal_admin(request.user),
        "has_uplift": uplift_selectors.active_version() is not None,
    })


def campaign_new(request: HttpRequest) -> HttpResponse:
    form = CampaignForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            fields = form.campaign_fields()
            campaign = services.campaign_create(user=request.user, **fields)
        except CampaignError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, "Draft saved. Plan it to see whom to contact.")
            return redirect("campaigns:detail", pk=campaign.pk)
    return render(request, "campaigns/form.html", {"form": form, "campaign": None})


def campaign_edit(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = _campaign(pk)
    form = CampaignForm(request.POST or None, initial=CampaignForm.initial_for(campaign))
    if request.method == "POST" and form.is_valid():
        try:
            services.campaign_update(campaign, user=request.user, **form.campaign_fields())
        except CampaignError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, "Saved.")
            return redirect("campaigns:detail", pk=campaign.pk)
    return render(request, "campaigns/form.html", {"form": form, "campaign": campaign})


def campaign_detail(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = _campaign(pk)
    plan = campaign.plan or {}
    preview_form = PreviewForm(request.GET if "customer" in request.GET else None)
    preview = None
    if preview_form.is_bound and preview_form.is_valid():
        customer = Customer.objects.filter(external_id=preview_form.cleaned_data["customer"].strip()).first()
        if customer is None:
            preview_form.add_error("customer", "No customer with this id.")
        else:
            preview = services.preview(campaign, preview_form.cleaned_data.get("template"), customer.pk)
    contacts = selectors.targets(campaign)
    return render(request, "campaigns/detail.html", {
        "campaign": campaign, "plan": plan, "totals": plan.get("totals", {}), "is_admin": is_portal_admin(request.user),
        "audit": selectors.audit_log(campaign)[:100], "review_form": ReviewForm(), "preview_form": preview_form,
        "preview": preview, "top_targets": contacts[:20], "arm_counts": selectors.arm_counts(campaign),
        "plan_jobs": selectors.plan_jobs(campaign), "results": campaign.results,
        "curve_figure": charts.profit_curve_figure(plan) if plan else None,
        "naive_figure": charts.naive_bars_figure(plan) if plan else None,
        "segments_figure": charts.segments_figure(plan.get("segments", []), "Effect of contact by RFM segment"),
        "clusters_figure": charts.segments_figure(plan.get("clusters", []), "Effect of contact by cluster"),
        "results_figure": charts.results_figure(campaign.results),
        "naive_labels": charts.NAIVE_LABELS, "placeholders": pipeline.PLACEHOLDERS,
        "editable": campaign.status not in (Campaign.Status.EXPORTED, Campaign.Status.MEASURED,
                                            Campaign.Status.CLOSED),
    })


@require_POST
def campaign_plan(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = _campaign(pk)
    if campaign.status not in (Campaign.Status.DRAFT, Campaign.Status.REJECTED):
        messages.error(request, "Only a draft (or rejected) campaign can be planned; edit it to plan again.")
        return redirect("campaigns:detail", pk=pk)
    job = submit_job(plan_campaign_task, {"campaign_id": campaign.pk}, request.user)
    services.set_plan_job(campaign, job)
    messages.info(request, f"Planning started (job #{job.pk}); the page updates when it is done.")
    return redirect("campaigns:detail", pk=pk)


@require_POST
def campaign_submit(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, _campaign(pk), services.campaign_submit, done="Submitted for approval.")


@require_POST
@admin_required
def campaign_approve(request: HttpRequest, pk: int) -> HttpResponse:
    form = ReviewForm(request.POST)
    comment = form.cleaned_data["comment"] if form.is_valid() else ""
    return _act(request, _campaign(pk), services.campaign_approve, comment=comment, done="Approved.")


@require_POST
@admin_required
def campaign_reject(request: HttpRequest, pk: int) -> HttpResponse:
    form = ReviewForm(request.POST)
    comment = form.cleaned_data["comment"] if form.is_valid() else ""
    return _act(request, _campaign(pk), services.campaign_reject, comment=comment, done="Rejected.")


@require_POST
@admin_required
def campaign_close(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, _campaign(pk), services.campaign_close, done="Closed.")


@require_POST
def campaign_measure(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, _campaign(pk), services.campaign_measure, done="Results measured.")


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_stream(rows: Iterator[dict[str, Any]], columns: tuple[str, ...]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(columns)
    for row in rows:
        yield writer.writerow([pipeline.csv_safe(row[c]) for c in columns])


def _json_stream(rows: Iterator[dict[str, Any]], campaign: Campaign, arm: str) -> Iterator[str]:
    yield '{"campaign": ' + json.dumps(campaign.name) + ', "list": ' + json.dumps(arm) + ', "targets": ['
    for i, row in enumerate(rows):
        yield ("," if i else "") + json.dumps(row)
    yield "]}"


@require_POST
@admin_required
def campaign_export(request: HttpRequest, pk: int) -> HttpResponse:
    """The approved target list (or the holdout list) as CSV or JSON; logged. POST: exporting changes the state."""
    campaign = _campaign(pk)
    fmt = request.POST.get("format", "csv")
    arm = request.POST.get("list", CampaignTarget.Arm.CONTACT)
    if fmt not in ("csv", "json") or arm not in CampaignTarget.Arm.values:
        messages.error(request, "Choose CSV or JSON, and the contact or holdout list.")
        return redirect("campaigns:detail", pk=pk)
    try:
        rows = services.export_targets(campaign, user=request.user, fmt=fmt, arm=arm)
        first = next(rows, None)  # runs the checks and the logging now, not while streaming
    except CampaignPermissionError as error:
        raise PermissionDenied(str(error)) from error
    except CampaignError as error:
        messages.error(request, str(error))
        return redirect("campaigns:detail", pk=pk)

    def all_rows() -> Iterator[dict[str, Any]]:
        if first is not None:
            yield first
            yield from rows

    columns = services.EXPORT_COLUMNS if arm == CampaignTarget.Arm.CONTACT else services.HOLDOUT_COLUMNS
    slug = "".join(ch if ch.isalnum() else "-" for ch in campaign.name)[:50]
    if fmt == "csv":
        response = StreamingHttpResponse(_csv_stream(all_rows(), columns), content_type="text/csv")
    else:
        response = StreamingHttpResponse(_json_stream(all_rows(), campaign, arm), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="campaign-{slug}-{arm}.{fmt}"'
    return response


def campaign_targets(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = _campaign(pk)
    arm = request.GET.get("list", CampaignTarget.Arm.CONTACT)
    if arm not in CampaignTarget.Arm.values:
        arm = CampaignTarget.Arm.CONTACT
    page = Paginator(selectors.targets(campaign, arm), 50).get_page(request.GET.get("page"))
    return render(request, "campaigns/targets.html", {"campaign": campaign, "page": page, "arm": arm})


def template_list(request: HttpRequest) -> HttpResponse:
    return render(request, "campaigns/templates.html", {
        "templates": selectors.templates(), "is_admin": is_portal_admin(request.user),
        "placeholders": pipeline.PLACEHOLDERS})


@admin_required
def template_new(request: HttpRequest) -> HttpResponse:
    return _template_form(request, None)


@admin_required
def template_edit(request: HttpRequest, pk: int) -> HttpResponse:
    template = selectors.template_get(pk)
    if template is None:
        raise Http404("No such template.")
    return _template_form(request, template)


def _template_form(request: HttpRequest, template) -> HttpResponse:
    form = MessageTemplateForm(request.POST or None, instance=template)
    if request.method == "POST" and form.is_valid():
        try:
            services.template_save(user=request.user, template=template, **form.cleaned_data)
        except CampaignError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, "Template saved.")
            return redirect("campaigns:templates")
    return render(request, "campaigns/template_form.html", {"form": form, "template": template,
                                                            "placeholders": pipeline.PLACEHOLDERS})


@require_POST
@admin_required
def template_delete(request: HttpRequest, pk: int) -> HttpResponse:
    template = selectors.template_get(pk)
    if template is None:
        raise Http404("No such template.")
    services.template_delete(template, user=request.user)
    messages.success(request, "Template deleted.")
    return redirect("campaigns:templates")


def customer_panel_context(customer: Customer) -> dict[str, Any] | None:
    targets = list(selectors.customer_targets(customer))
    return {"targets": targets} if targets else None
