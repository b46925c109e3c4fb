"""Uplift pages: overview (checks, curves, deciles, groups, profit targeting), member list + CSV, retraining,
customer-360 panel."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from rfm_portal.accounts.permissions import admin_required, is_portal_admin
from rfm_portal.customers.models import Customer
from rfm_portal.dashboard import summaries
from rfm_portal.mlops.progress import submit_job
from rfm_portal.mlops.services import load_active
from uplift import charts, selectors, services
from uplift.forms import MemberFilterForm, ProfitForm, TrainForm
from uplift.pipeline import GROUP_LABELS, LEARNER_LABELS, NORMALISATION, ProfitInputs, UpliftModel, expected_profit
from uplift.tasks import train_uplift_task

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
CSV_COLUMNS = ("customer_id", "country", "group", "uplift", "uplift_low", "uplift_high", "baseline",
               "revenue_uplift", "expected_profit", "recommendation", "model_version", "data_cutoff")


def _active_model() -> UpliftModel | None:
    try:
        return load_active(services.KIND)
    except Exception:
        logger.exception("could not load the active uplift model")
        return None


def _base_context(request: HttpRequest, tab: str) -> dict[str, Any]:
    return {"tab": tab, "mv": selectors.active_version(), "latest": selectors.latest_version(),
            "is_admin": is_portal_admin(request.user), "train_form": TrainForm(), "train_jobs": selectors.train_jobs(),
            "campaigns": services.campaigns_with_both_arms()}


def _profit_inputs(request: HttpRequest, mv: Any) -> tuple[ProfitForm, ProfitInputs]:
    default = ProfitInputs(**mv.metrics.get("profit_defaults", {})) if mv else services.default_profit_inputs()
    keys = ("contact_cost", "incentive_cost", "margin")
    form = ProfitForm(request.GET if any(k in request.GET for k in keys) else None,
                      initial={k: getattr(default, k) for k in keys})
    return form, form.inputs(default)


def _recommended(mv: Any, inputs: ProfitInputs) -> dict[str, Any] | None:
    """Customers worth contacting under ``inputs`` (expected profit > 0, sleeping dogs never), over every score."""
    rows = list(selectors.score_values(mv))
    if not rows:
        return None
    arr = np.array([r[:5] for r in rows], dtype=float)
    profit = expected_profit(arr[:, 4], arr[:, 0], arr[:, 3], inputs)
    dogs = np.array([r[5] == "sleeping_dog" for r in rows])
    contact = (profit > 0) & ~dogs
    return {"n": int(contact.sum()), "share": float(contact.mean()), "profit": float(profit[contact].sum())}


def _targeting(model: UpliftModel | None, mv: Any, inputs: ProfitInputs) -> dict[str, Any]:
    """The profit-targeting curves and the recommendation under ``inputs`` (empty without a readable model)."""
    if model is None:
        return {}
    out: dict[str, Any] = {}
    targeting = services.profit_targeting(model, inputs, mv.metrics.get("scored_customers", 0))
    if targeting:
        out.update(targeting=targeting, profit_figure=charts.profit_figure(targeting))
    recommended = _recommended(mv, inputs)
    if recommended:
        out["recommended"] = recommended
    return out


def _default_inputs(mv: Any) -> ProfitInputs:
    return ProfitInputs(**mv.metrics.get("profit_defaults", {}))


def compute_overview(versions: dict[str, Any]) -> dict[str, Any]:
    """The overview's figures and group totals, and the targeting under the version's default profit inputs,
    stored per uplift version (``dashboard.summaries``): building the Plotly figures and reading every score
    took ~1 s per view at 100k customers."""
    mv = versions.get(services.KIND)
    if mv is None:
        return {}
    m = mv.metrics
    ev = m.get("evaluation", {})
    summary = selectors.group_summary(mv)
    return {
        "qini_figure": charts.qini_figure(ev), "uplift_figure": charts.uplift_curve_figure(ev),
        "deciles_figure": charts.deciles_figure(ev[m["learner"]]["deciles"], m["learner"]),
        "balance_figure": charts.balance_figure(m["checks"]["balance"]),
        "groups": summary, "groups_figure": charts.groups_figure(summary),
        "default_targeting": _targeting(_active_model(), mv, _default_inputs(mv)),
    }


def overview(request: HttpRequest) -> HttpResponse:
    context = _base_context(request, "overview")
    mv = context["mv"]
    context["normalisation"] = NORMALISATION
    if mv is not None:
        m = mv.metrics
        ev = m.get("evaluation", {})
        learners = [k for k in ("causal_forest", "t_learner") if k in ev]
        form, inputs = _profit_inputs(request, mv)
        stored = summaries.get("uplift.overview", {services.KIND: mv})
        context.update({
            "m": m, "checks": m["checks"], "campaign": m["campaign"], "challenger": selectors.challenger_for(mv),
            "learner_label": LEARNER_LABELS.get(m["learner"], m["learner"]),
            "comparison_rows": [
                {"name": charts.CURVE_LABELS[k], "kind": k, "champion": k == m["learner"], "qini": ev[k]["qini"],
                 "auuc": ev[k]["auuc"], "at10": ev[k]["uplift_at"]["10"], "at20": ev[k]["uplift_at"]["20"],
                 "at30": ev[k]["uplift_at"]["30"], "learner": k in learners}
                for k in (*learners, "most_likely_buyers", "highest_churn_risk", "random") if k in ev],
            "deciles": ev[m["learner"]]["deciles"],
            "unbalanced": [b for b in m["checks"]["balance"] if not b["balanced"]],
            "profit_form": form, "inputs": inputs,
            **{key: value for key, value in stored.items() if key != "default_targeting"},
        })
        # the stored targeting is for the version's default inputs; other inputs (the form) are computed now
        context.update(stored.get("default_targeting", {}) if inputs == _default_inputs(mv)
                       else _targeting(_active_model(), mv, inputs))
    return render(request, "uplift/overview.html", context)


def member_list(request: HttpRequest) -> HttpResponse:
    context = _base_context(request, "members")
    form = MemberFilterForm(request.GET or None)
    context["form"] = form
    mv = context["mv"]
    if mv is not None:
        paginator = Paginator(selectors.members(mv, form.filters()), PAGE_SIZE)
        context["page"] = paginator.get_page(request.GET.get("page"))
        query = request.GET.copy()
        query.pop("page", None)
        context["query"] = query.urlencode()
        context["group_labels"] = GROUP_LABELS
    return render(request, "uplift/members.html", context)


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_rows(rows: Any, version: int, cutoff: str) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for s in rows.iterator(chunk_size=2000):
        yield writer.writerow([s.customer.external_id, s.customer.country, s.group, f"{s.uplift:.4f}",
                               f"{s.uplift_low:.4f}", f"{s.uplift_high:.4f}", f"{s.baseline:.4f}",
                               f"{s.revenue_uplift:.2f}", f"{s.expected_profit:.2f}",
                               "contact" if s.contact else "dont_contact", version, cutoff])


def member_csv(request: HttpRequest) -> HttpResponse:
    mv = selectors.active_version()
    if mv is None:
        return HttpResponse("No uplift model is active yet, so there is no member list to export.\n",
                            status=409, content_type="text/plain")
    form = MemberFilterForm(request.GET or None)
    cutoff = mv.data_cutoff.date().isoformat() if mv.data_cutoff else ""
    group = form.filters().group or "all"
    response = StreamingHttpResponse(_csv_rows(selectors.members(mv, form.filters()), mv.version, cutoff),
                                     content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="uplift_{group}_v{mv.version}.csv"'
    return response


@admin_required
@require_POST
def train(request: HttpRequest) -> HttpResponse:
    form = TrainForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Training not started: " + "; ".join(
            f"{field}: {' '.join(errs)}" for field, errs in form.errors.items()))
        return redirect("uplift:overview")
    job = submit_job(train_uplift_task, {"campaign": form.cleaned_data["campaign"] or None}, request.user)
    messages.success(request, f"Uplift training queued as job #{job.pk}; progress shows below and on the Jobs page.")
    return redirect("uplift:overview")


def customer_panel_context(customer: Customer) -> dict[str, Any] | None:
    """Customer-360 panel: effect with interval, group, expected profit, recommendation and why."""
    mv = selectors.active_version()
    if mv is None:
        return None
    score = selectors.customer_score(customer, mv)
    if score is None:
        return {"mv": mv, "score": None}
    u = score.uplift
    if score.group == "sleeping_dog":
        reason = (f"Contact lowers this customer's chance to buy by {-u:.1%} (95% interval {score.uplift_low:+.1%} "
                  f"to {score.uplift_high:+.1%}): leave them alone.")
    elif score.contact:
        reason = (f"Contact changes the chance to buy by {u:+.1%} and is expected to earn "
                  f"{score.expected_profit:+.2f} after costs.")
    else:
        reason = (f"Contact changes the chance to buy by {u:+.1%}, which does not pay for its cost "
                  f"(expected {score.expected_profit:+.2f}).")
    return {"mv": mv, "score": score, "group_label": GROUP_LABELS[score.group], "reason": reason}
