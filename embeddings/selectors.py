"""Reads for the Lookalikes pages, API and panel: the active version, and what other capabilities know
about customers (segment and cluster from segmentation, CLV and P(alive) from CLTV) — through their
selectors' models, never their math."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from cltv.models import CLTVScore
from rfm_portal.customers.models import Customer, Transaction
from rfm_portal.mlops import selectors as mlops_selectors
from rfm_portal.mlops.models import Job, ModelVersion
from segmentation.models import RFMScore

KIND = "embeddings"
TRAIN_JOB_KIND = "embeddings.train"


def active_version() -> ModelVersion | None:
    return mlops_selectors.active_version(KIND)


def latest_version() -> ModelVersion | None:
    return mlops_selectors.latest_version(KIND)


def train_jobs(limit: int = 5) -> QuerySet[Job]:
    return Job.objects.filter(kind=TRAIN_JOB_KIND).order_by("-created_at")[:limit]


def customer_facts(customer_pks: list[int]) -> dict[int, dict[str, Any]]:
    """Per customer pk: external_id, country, segment, cluster, cluster_name, clv, p_alive (None when the
    capability has no active model or did not score the customer)."""
    facts: dict[int, dict[str, Any]] = {
        pk: {"external_id": eid, "country": country, "segment": None, "cluster": None, "cluster_name": None,
             "clv": None, "p_alive": None}
        for pk, eid, country in Customer.objects.filter(pk__in=customer_pks).values_list("pk", "external_id",
                                                                                         "country")
    }
    seg = mlops_selectors.active_version("segmentation")
    if seg is not None:
        for pk, segment, cluster, cname in RFMScore.objects.filter(
                model_version=seg, customer_id__in=customer_pks).values_list(
                "customer_id", "segment", "cluster", "cluster_name"):
            if pk in facts:
                facts[pk].update(segment=segment, cluster=cluster, cluster_name=cname)
    cltv = mlops_selectors.active_version("cltv")
    if cltv is not None:
        for pk, clv, p_alive in CLTVScore.objects.filter(model_version=cltv, customer_id__in=customer_pks
                                                         ).values_list("customer_id", "clv", "p_alive"):
            if pk in facts:
                facts[pk].update(clv=clv, p_alive=p_alive)
    return facts


def segment_names() -> list[str]:
    """The active segmentation's segment names (stored with it: ``segmentation.selectors.choices``)."""
    from segmentation.selectors import choices

    return choices()[0]


def cluster_choices() -> list[tuple[int, str]]:
    from segmentation.selectors import choices

    return choices()[1]


def segment_members(segment: str) -> list[int]:
    seg = mlops_selectors.active_version("segmentation")
    return [] if seg is None else list(
        RFMScore.objects.filter(model_version=seg, segment=segment).values_list("customer_id", flat=True))


def cluster_members(cluster: int) -> list[int]:
    seg = mlops_selectors.active_version("segmentation")
    return [] if seg is None else list(
        RFMScore.objects.filter(model_version=seg, cluster=cluster).values_list("customer_id", flat=True))


def top_clv_members(n: int) -> list[int]:
    cltv = mlops_selectors.active_version("cltv")
    return [] if cltv is None else list(
        CLTVScore.objects.filter(model_version=cltv).order_by("-clv", "customer_id")[:n]
        .values_list("customer_id", flat=True))


def has_cltv() -> bool:
    return mlops_selectors.active_version("cltv") is not None


def p_alive_at_least(threshold: float) -> list[int]:
    cltv = mlops_selectors.active_version("cltv")
    return [] if cltv is None else list(
        CLTVScore.objects.filter(model_version=cltv, p_alive__gte=threshold).values_list("customer_id", flat=True))


def customers_in_country(country: str) -> list[int]:
    return list(Customer.objects.filter(country__iexact=country).values_list("pk", flat=True))


def countries() -> list[str]:
    from rfm_portal.customers.selectors import countries

    return countries()


def pks_by_external(external_ids: list[str]) -> dict[str, int]:
    return dict(Customer.objects.filter(external_id__in=external_ids).values_list("external_id", "pk"))


def purchased_product_ids(customer_pks: list[int]) -> dict[int, list[int]]:
    """Product pks each customer bought (one entry per purchase line, returns left out)."""
    out: dict[int, list[int]] = {pk: [] for pk in customer_pks}
    rows = (Transaction.objects.filter(customer_id__in=customer_pks, is_return=False, product__isnull=False)
            .values_list("customer_id", "product_id").order_by())
    for pk, product in rows.iterator(chunk_size=20_000):
        out[pk].append(product)
    return out


def recommended_products(skus: list[str], k: int = 3) -> dict[str, list[str]]:
    """For each sku, the names of its ``k`` nearest products in the active lookalikes model (products bought
    in similar baskets); empty when no model is active or the sku is unknown to it."""
    from rfm_portal.mlops.services import load_active

    if active_version() is None or not skus:
        return {s: [] for s in skus}
    try:
        bundle = load_active(KIND)
    except Exception:  # an unreadable artifact must not break a campaign plan: no recommendations then
        return {s: [] for s in skus}
    names = {str(s): str(n) for s, n in zip(bundle.skus, bundle.product_names, strict=True)}
    return {s: [names.get(o, o) for o, _ in bundle.similar_products(s, k)] for s in skus}
