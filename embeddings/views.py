"""Lookalikes pages: the taste explorer, the lookalike audience builder (+ CSV, save as audience),
retraining, and the customer-360 panel."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from rfm_portal.accounts.permissions import admin_required, is_portal_admin
from rfm_portal.customers.audiences import AudienceError
from rfm_portal.customers.models import Customer
from rfm_portal.mlops.progress import submit_job
from rfm_portal.mlops.services import load_active

from . import charts, selectors, services
from .forms import BuilderForm, SaveAudienceForm, TrainForm
from .pipeline import EmbeddingBundle
from .tasks import train_embeddings_task

logger = logging.getLogger(__name__)

COLOURS = {"segment": "RFM segment", "cluster": "Cluster", "category": "Favourite category", "clv": "CLV"}
EXPLORER_K = 10
PANEL_K = 5


def _active_bundle() -> EmbeddingBundle | None:
    """The active model, or None when there is none or its artifact cannot be read (the page says so)."""
    if selectors.active_version() is None:
        return None
    try:
        return load_active(services.KIND)
    except Exception:
        logger.exception("could not load the active embeddings model")
        return None


def _base_context(request: HttpRequest, tab: str) -> dict[str, Any]:
    mv = selectors.active_version()
    return {"tab": tab, "mv": mv, "latest": selectors.latest_version(), "is_admin": is_portal_admin(request.user),
            "train_form": TrainForm(), "train_jobs": selectors.train_jobs()}


def _fmt_money(value: float | None) -> str:
    return "–" if value is None else f"£{value:,.0f}"


def _map_figure(bundle: EmbeddingBundle, colour: str, highlight_rows: list[int]) -> dict[str, Any]:
    rows = bundle.map_rows
    pks = [int(bundle.customer_ids[r]) for r in rows]
    facts = selectors.customer_facts(pks)
    favourite = [bundle.categories[i] for i in bundle.category_mix[rows].argmax(axis=1)]
    values: list[Any]
    if colour == "segment":
        values = [facts.get(pk, {}).get("segment") for pk in pks]
    elif colour == "cluster":
        values = [(lambda f: None if f.get("cluster") is None else f"{f['cluster']}: {f['cluster_name']}")(
            facts.get(pk, {})) for pk in pks]
    elif colour == "clv":
        values = [facts.get(pk, {}).get("clv") for pk in pks]
    else:
        values = favourite
    hover = [f"<b>{bundle.external_ids[r]}</b><br>favourite: {fav}"
             f"<br>segment: {facts.get(pk, {}).get('segment') or '–'}"
             f"<br>CLV: {_fmt_money(facts.get(pk, {}).get('clv'))}<br><i>click for lookalikes</i>"
             for r, pk, fav in zip(rows, pks, favourite, strict=True)]
    position = {int(r): i for i, r in enumerate(rows)}
    highlight = [position[r] for r in highlight_rows if r in position]
    return charts.taste_map_figure(bundle.map_coords[:, 0], bundle.map_coords[:, 1], bundle.external_ids[rows],
                                   values, COLOURS[colour], colour == "clv", hover, bundle.map_method, highlight)


def _quality(mv) -> dict[str, Any]:
    m = mv.metrics
    quality = m.get("quality") or {}
    taste = m.get("taste_check") or {}
    return {"index_kind": m.get("index_kind"), "recall": m.get("index_recall_at_10"), "effort": m.get("index_effort"),
            "agreement": quality.get("favourite_category_agreement_at_10"),
            "agreement_rfm": quality.get("favourite_category_agreement_rfm_at_10"),
            "agreement_chance": quality.get("favourite_category_agreement_chance"),
            "taste": taste if "purity_at_10" in taste else None}


def explorer(request: HttpRequest) -> HttpResponse:
    context = _base_context(request, "explorer")
    colour = request.GET.get("colour", "category")
    colour = colour if colour in COLOURS else "category"
    query = request.GET.get("customer", "").strip()[:64]
    context.update({"colour": colour, "colours": COLOURS, "query": query})
    bundle = _active_bundle() if context["mv"] else None
    context["bundle"] = bundle
    if bundle is None:
        return render(request, "embeddings/explorer.html", context)
    mv = context["mv"]
    highlight: list[int] = []
    if query:
        row = bundle.row_of().get(query)
        customer = Customer.objects.filter(external_id=query).first()
        if customer is None:
            context["search_error"] = f"No customer {query}."
        else:
            found = services.find_lookalikes(bundle, services.LookalikeOptions(k=EXPLORER_K),
                                             customer_pks=[customer.pk])
            if not found.seed_size:
                context["search_error"] = f"Customer {query} has no purchases yet, so there is no taste to match."
            else:
                facts = selectors.customer_facts([customer.pk]).get(customer.pk, {})
                context.update({"seed": {"customer_id": query, "folded_in": bool(found.folded_in), **facts},
                                "neighbours": found.results})
                context["mix_figure"] = charts.mix_figure(
                    [f"{query} (seed)"] + [r["customer_id"] for r in found.results], bundle.categories,
                    np.vstack([found.seed_mix] + [r["mix"] for r in found.results]),
                    [None] + [r["similarity"] for r in found.results])
                row_by_pk = {int(pk): i for i, pk in enumerate(bundle.customer_ids)}
                highlight = ([row] if row is not None else []) + [row_by_pk[r["customer_pk"]] for r in found.results]
    context["map_figure"] = _map_figure(bundle, colour, highlight)
    context["loss_figure"] = charts.loss_figure(mv.metrics.get("loss_curve", []))
    context["quality"] = _quality(mv)
    popular = np.argsort(-bundle.noise, kind="stable")[:300]
    context["products"] = sorted((str(bundle.skus[i]), str(bundle.product_names[i])) for i in popular)
    sku = request.GET.get("product", "").strip()[:64] or (str(bundle.skus[popular[0]]) if len(popular) else "")
    context["product"] = sku
    names = {str(s): str(n) for s, n in zip(bundle.skus, bundle.product_names, strict=True)}
    cats = {str(s): str(c) for s, c in zip(bundle.skus, bundle.product_categories, strict=True)}
    context["product_name"] = names.get(sku, "")
    context["similar_products"] = [{"sku": s, "name": names.get(s, ""), "category": cats.get(s, ""), "similarity": v}
                                   for s, v in bundle.similar_products(sku, 10)]
    return render(request, "embeddings/explorer.html", context)


def _builder_form(request: HttpRequest, data=None, files=None) -> BuilderForm:
    return BuilderForm(data, files, segments=selectors.segment_names(), clusters=selectors.cluster_choices(),
                       countries=selectors.countries())


def _seed(data: dict[str, Any]) -> tuple[list[int], list[str], str]:
    """Seed customer pks, unknown ids, and a plain description of the seed (the audience's source)."""
    kind = data["seed_type"]
    if kind == "segment":
        return selectors.segment_members(data["segment"]), [], f"segment {data['segment']}"
    if kind == "cluster":
        return selectors.cluster_members(data["cluster"]), [], f"cluster {data['cluster']}"
    if kind == "top_clv":
        return selectors.top_clv_members(data["top_n"]), [], f"top {data['top_n']:,} by CLV"
    ids = data["id_list"]
    pk_of = selectors.pks_by_external(ids)
    return [pk_of[i] for i in ids if i in pk_of], [i for i in ids if i not in pk_of], f"a list of {len(ids):,} ids"


def _run_builder(form: BuilderForm, bundle: EmbeddingBundle) -> tuple[services.Lookalikes, str, list[str]]:
    data = form.cleaned_data
    pks, unknown, described = _seed(data)
    options = services.LookalikeOptions(k=data["size"], exclude_seed=data["exclude_seed"],
                                        min_p_alive=data.get("min_p_alive"), country=data.get("country") or "")
    found = services.find_lookalikes(bundle, options, customer_pks=pks)
    filters = []
    if data.get("min_p_alive") is not None:
        filters.append(f"P(alive) ≥ {data['min_p_alive']:g}")
    if data.get("country"):
        filters.append(data["country"])
    source = f"lookalike of {described}" + (f" ({', '.join(filters)})" if filters else "")
    return found, source, unknown + found.unknown_ids


def builder(request: HttpRequest) -> HttpResponse:
    context = _base_context(request, "builder")
    bundle = _active_bundle() if context["mv"] else None
    context.update({"bundle": bundle, "has_cltv": selectors.has_cltv(), "save_form": SaveAudienceForm()})
    if request.method != "POST":
        context["form"] = _builder_form(request)
        return render(request, "embeddings/builder.html", context)
    form = _builder_form(request, request.POST, request.FILES)
    context["form"] = form
    if bundle is None or not form.is_valid():
        return render(request, "embeddings/builder.html", context, status=200 if bundle else 409)
    found, source, unknown = _run_builder(form, bundle)
    if form.cleaned_data["seed_type"] == "ids":  # uploaded ids become pasted ones, so export and save see them
        data = request.POST.copy()
        data["ids"] = "\n".join(form.cleaned_data["id_list"])
        context["form"] = _builder_form(request, data)
        context["form"].is_valid()
    if form.cleaned_data.get("min_p_alive") is not None and not context["has_cltv"]:
        messages.warning(request, "No CLTV model is active, so the P(alive) filter matches nobody.")
    context.update({"found": found, "source": source, "unknown": unknown,
                    "seed_categories": [c for c, v in sorted(zip(bundle.categories, found.seed_mix, strict=True),
                                                             key=lambda t: -t[1]) if v >= 0.1]})
    return render(request, "embeddings/builder.html", context)


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv(found: services.Lookalikes, version: int, source: str) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(["rank", "customer_id", "similarity", "shared_categories", "segment", "clv", "p_alive",
                           "country", "source", "model_version"])
    for rank, r in enumerate(found.results, start=1):
        yield writer.writerow([rank, r["customer_id"], f"{r['similarity']:.4f}", "; ".join(r["shared_categories"]),
                               r["segment"] or "", "" if r["clv"] is None else f"{r['clv']:.2f}",
                               "" if r["p_alive"] is None else f"{r['p_alive']:.3f}", r["country"] or "", source,
                               version])


@require_POST
def builder_csv(request: HttpRequest) -> HttpResponse:
    bundle = _active_bundle()
    if bundle is None:
        return HttpResponse("No lookalike model is active yet.\n", status=409, content_type="text/plain")
    form = _builder_form(request, request.POST, request.FILES)
    if not form.is_valid():
        return HttpResponse("Invalid builder settings: " + "; ".join(
            f"{k}: {' '.join(v)}" for k, v in form.errors.items()) + "\n", status=400, content_type="text/plain")
    found, source, _unknown = _run_builder(form, bundle)
    response = StreamingHttpResponse(_csv(found, bundle.version, source), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="lookalikes_v{bundle.version}.csv"'
    return response


@require_POST
def builder_save(request: HttpRequest) -> HttpResponse:
    bundle = _active_bundle()
    form = _builder_form(request, request.POST, request.FILES)
    save = SaveAudienceForm(request.POST)
    if bundle is None:
        messages.error(request, "No lookalike model is active yet, so there is nothing to save.")
        return redirect("embeddings:builder")
    if not form.is_valid() or not save.is_valid():
        errors = {**form.errors, **save.errors}
        messages.error(request, "Audience not saved: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        return redirect("embeddings:builder")
    found, source, _unknown = _run_builder(form, bundle)
    if not found.results:
        messages.error(request, "Audience not saved: the lookalike list is empty.")
        return redirect("embeddings:builder")
    try:
        audience = services.save_lookalike_audience(
            name=save.cleaned_data["name"], description=save.cleaned_data["description"],
            source=f"{source}, model v{bundle.version}", lookalikes=found, user=request.user)
    except AudienceError as error:
        messages.error(request, f"Audience not saved: {error}")
        return redirect("embeddings:builder")
    messages.success(request, f"Saved “{audience.name}”: {audience.size:,} customers.")
    return redirect(reverse("customers:audiences"))


@admin_required
@require_POST
def train(request: HttpRequest) -> HttpResponse:
    form = TrainForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Training not started: " + "; ".join(
            f"{field}: {' '.join(errs)}" for field, errs in form.errors.items()))
        return redirect("embeddings:overview")
    params = {k: v for k, v in form.cleaned_data.items() if v is not None}
    job = submit_job(train_embeddings_task, params, request.user)
    messages.success(request, f"Lookalike training queued as job #{job.pk}; follow it on the Jobs page.")
    return redirect("mlops:jobs")


def customer_panel_context(customer: Customer) -> dict[str, Any] | None:
    """Customer-360 panel: "customers like this one" and the customer's taste (None without a model)."""
    mv = selectors.active_version()
    if mv is None:
        return None
    bundle = _active_bundle()
    if bundle is None:
        return None
    found = services.find_lookalikes(bundle, services.LookalikeOptions(k=PANEL_K), customer_pks=[customer.pk])
    if not found.seed_size:
        return {"mv": mv, "found": None, "customer_id": customer.external_id}
    favourite = bundle.categories[int(np.argmax(found.seed_mix))] if found.seed_mix.sum() else None
    return {"mv": mv, "found": found, "customer_id": customer.external_id, "favourite": favourite,
            "folded_in": bool(found.folded_in),
            "taste_figure": charts.taste_bar_figure(bundle.categories, found.seed_mix.tolist())}
