"""Churn pages: overview (definition, model comparison, SHAP), at-risk list + CSV, retraining, customer panel."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from churn import charts, selectors, services
from churn.drivers import plain_drivers
from churn.forms import AtRiskFilterForm, TrainForm
from churn.pipeline import ChurnModelBundle
from churn.tasks import train_churn_task
from rfm_portal.accounts.permissions import admin_required, is_portal_admin
from rfm_portal.core.csv_export import SafeCSVWriter
from rfm_portal.customers import selectors as customer_selectors
from rfm_portal.customers.models import Customer
from rfm_portal.customers.table import without_jit
from rfm_portal.dashboard import summaries
from rfm_portal.mlops.progress import submit_job
from rfm_portal.mlops.services import load_active

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
CSV_COLUMNS = ("customer_id", "country", "segment", "clv_p50", "p_alive", "churn_probability", "risk_band",
               "value_at_risk", "last_purchase", "top_driver_1", "top_driver_2", "top_driver_3", "model_version",
               "data_cutoff")


def _legend_below(fig: dict[str, Any] | None) -> dict[str, Any] | None:
    """Half-width cards are narrow: put the legend under the plot instead of over the curves."""
    if fig is not None:
        fig["layout"]["legend"] = {"orientation": "h", "yanchor": "top", "y": -0.3, "x": 0}
        fig["layout"]["margin"] = {"l": 60, "r": 30, "t": 50, "b": 40}
    return fig


def _active_bundle() -> ChurnModelBundle | None:
    """The active model, or None when its artifact cannot be read (the page then says so)."""
    try:
        return load_active(services.KIND)
    except Exception:
        logger.exception("could not load the active churn model")
        return None


def _base_context(request: HttpRequest, tab: str) -> dict[str, Any]:
    mv = selectors.active_version()
    return {
        "tab": tab, "mv": mv, "latest": selectors.latest_version(), "is_admin": is_portal_admin(request.user),
        "horizon_days": (mv.params.get("horizon_days", 90) if mv else 90),
        "train_form": TrainForm(), "train_jobs": selectors.train_jobs(),
    }


def compute_overview(versions: dict[str, Any]) -> dict[str, Any]:
    """The overview's figures over every scored customer, stored per model version (``dashboard.summaries``):
    the comparison curves, the risk histogram as bin counts, SHAP over a sample and the decision plot."""
    mv = versions.get(services.KIND)
    if mv is None:
        return {}
    comparison = mv.metrics.get("comparison", {})
    bundle = _active_bundle()
    bands = bundle.bands if bundle else None
    summary: dict[str, Any] = {
        "roc_figure": _legend_below(charts.roc_figure(comparison)) if comparison else None,
        "pr_figure": _legend_below(charts.pr_figure(comparison)) if comparison else None,
        "calibration_figure": _legend_below(charts.calibration_figure(comparison)) if comparison else None,
        "lift_figure": _legend_below(charts.lift_gain_figure(comparison)) if comparison else None,
        "risk_figure": charts.risk_distribution_figure(selectors.score_probabilities(mv), bands),
    }
    if bundle is not None:
        spread = selectors.risk_spread(mv, 10)
        summary.update(services.global_explanation(bundle, selectors.score_sample(mv)))
        summary["decision_figure"] = services.decision_plot(bundle, spread)
        summary["spread_scores"] = [{"customer": {"external_id": s.customer.external_id},
                                     "probability": s.probability} for s in spread]
    return summary


def overview(request: HttpRequest) -> HttpResponse:
    context = _base_context(request, "overview")
    mv = context["mv"]
    if mv is not None:
        comparison = mv.metrics.get("comparison", {})
        context.update({
            "challenger": selectors.challenger_for(mv),
            "comparison_rows": [
                {"name": charts.MODEL_LABELS.get(name, name), "kind": name,
                 "champion": name == mv.metrics["model_kind"],
                 **{k: m[k] for k in ("roc_auc", "pr_auc", "brier", "log_loss", "base_rate", "n")},
                 "top_decile_lift": m["lift"][0]["lift"], "top_decile_gain": m["lift"][0]["cumulative_gain"]}
                for name, m in comparison.items()
            ],
            "bundle": _active_bundle(),
            **summaries.get("churn.overview", {services.KIND: mv}),
        })
    return render(request, "churn/overview.html", context)


def _action_rows(mv, customers: list) -> list[dict[str, Any]]:
    """Each listed customer with its churn score's drivers in plain words (one query for the page)."""
    scores = selectors.scores_for(mv, customers)
    rows = []
    for customer in customers:
        score = scores.get(customer.pk)
        drivers = plain_drivers(score.top_contributions, score.features) if score else []
        rows.append({"customer": customer, "score": score, "drivers": drivers})
    return rows


def _action_page(request: HttpRequest, view: str) -> HttpResponse:
    context = _base_context(request, view)
    form = AtRiskFilterForm(request.GET or None)
    context.update({"form": form, "view": view, "winback_p_alive": selectors.winback_threshold()})
    mv = context["mv"]
    if mv is not None:
        order = form.sort_order()
        orders = selectors.ORDERS[view]
        context["order"] = order if order in orders else next(iter(orders))
        context["orders"] = orders
        paginator = Paginator(selectors.action_rows(form.filters(), view, order), PAGE_SIZE)
        with without_jit():
            page = paginator.get_page(request.GET.get("page"))
            context["rows"] = _action_rows(mv, list(page.object_list))
        context["page"] = page
        context["countries"] = customer_selectors.countries()
        context["base_rate"] = (mv.metrics.get("comparison", {}).get(mv.metrics.get("model_kind"), {})
                                .get("base_rate"))
        bundle = _active_bundle()
        context["bands"] = bundle.bands if bundle else None
        query = request.GET.copy()
        query.pop("page", None)
        context["query"] = query.urlencode()
    return render(request, "churn/at_risk.html", context)


def at_risk(request: HttpRequest) -> HttpResponse:
    """Customers likely to stop buying who are still reachable, the most value at risk first."""
    return _action_page(request, selectors.AT_RISK)


def win_back(request: HttpRequest) -> HttpResponse:
    """Customers the CLTV model considers already gone (P(alive) below the setting): a win-back list."""
    return _action_page(request, selectors.WIN_BACK)


def _num(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _csv_rows(qs: Any, mv: Any, cutoff: str) -> Iterator[str]:
    writer = SafeCSVWriter()
    yield writer.writerow(CSV_COLUMNS)
    def batches() -> Iterator[list]:
        batch: list = []
        for customer in qs.iterator(chunk_size=2000):
            batch.append(customer)
            if len(batch) == 2000:
                yield batch
                batch = []
        if batch:
            yield batch

    with without_jit():
        for batch in batches():
            for row in _action_rows(mv, batch):
                c = row["customer"]
                drivers = [d["text"] for d in row["drivers"]][:3]
                drivers += [""] * (3 - len(drivers))
                yield writer.writerow([
                    c.external_id, c.country, getattr(c, "segment", "") or "",
                    _num(getattr(c, "clv_p50", None), 2), _num(getattr(c, "p_alive", None), 4), _num(c.churn_risk, 4),
                    c.risk_band, _num(c.value_at_risk, 2),
                    c.last_purchase.date().isoformat() if c.last_purchase else "", *drivers, mv.version, cutoff])


def at_risk_csv(request: HttpRequest) -> HttpResponse:
    """CSV of the list on screen (same view, filters and order), every page."""
    mv = selectors.active_version()
    if mv is None:
        return HttpResponse("No churn model is active yet, so there is no at-risk list to export.\n",
                            status=409, content_type="text/plain")
    form = AtRiskFilterForm(request.GET or None)
    view = selectors.WIN_BACK if request.GET.get("view") == selectors.WIN_BACK else selectors.AT_RISK
    cutoff = mv.data_cutoff.date().isoformat() if mv.data_cutoff else ""
    qs = selectors.action_list(form.filters(), view, form.sort_order())
    response = StreamingHttpResponse(_csv_rows(qs, mv, cutoff), content_type="text/csv")
    name = "churn_win_back" if view == selectors.WIN_BACK else "churn_at_risk"
    response["Content-Disposition"] = f'attachment; filename="{name}_v{mv.version}.csv"'
    return response


@admin_required
@require_POST
def train(request: HttpRequest) -> HttpResponse:
    form = TrainForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Training not started: " + "; ".join(
            f"{field}: {' '.join(errs)}" for field, errs in form.errors.items()))
        return redirect("churn:overview")
    cutoff = form.cleaned_data["cutoff"]
    job = submit_job(train_churn_task, {"cutoff": cutoff.isoformat() if cutoff else None,
                                        "horizon_days": form.cleaned_data["horizon_days"] or 90}, request.user)
    messages.success(request, f"Churn training queued as job #{job.pk}; follow it on the Jobs page.")
    return redirect("mlops:jobs")


def customer_panel_context(customer: Customer) -> dict[str, Any] | None:
    """Customer-360 panel: risk, waterfall, decision plot and counterfactual (None without a score)."""
    mv = selectors.active_version()
    if mv is None:
        return None
    score = selectors.customer_score(customer, mv)
    if score is None:
        return {"mv": mv, "score": None}
    drivers = plain_drivers(score.top_contributions, score.features)
    bundle = _active_bundle()
    if bundle is None:
        return {"mv": mv, "score": score, "explanation": None, "probability_pct": f"{score.probability:.1%}",
                "drivers": drivers}
    return {"mv": mv, "score": score, "explanation": services.customer_explanation(bundle, score), "drivers": drivers,
            "probability_pct": f"{score.probability:.1%}",
            "horizon_days": mv.params.get("horizon_days", 90)}
