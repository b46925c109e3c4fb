"""Customer2Vec training, fold-in and lookalike search against the database (glue around ``pipeline``).

The vectors, the FAISS index, the category mixes and the 2-D map are one versioned artifact of a
``ModelVersion`` of kind ``embeddings``, written atomically with its sha256 and loaded once per
process by ``mlops.services.load_active`` (swapped when another version is promoted).
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import transaction

from cltv.services import registry_safe
from rfm_portal.customers.frames import transaction_frame
from rfm_portal.customers.models import Customer, Product
from rfm_portal.mlops import services as registry
from rfm_portal.mlops.models import ModelVersion
from rfm_portal.mlops.progress import JobReporter

from . import pipeline, selectors
from .pipeline import EmbeddingBundle, EmbeddingConfig

KIND = selectors.KIND
MIN_CUSTOMERS = 20
FOLD_IN_MAX = 1_000  # seed members newer than the model placed per request; more wait for the next retrain


class EmbeddingsError(RuntimeError):
    """Training cannot run (e.g. too few customers with purchases)."""


def config_from_settings(**overrides: Any) -> EmbeddingConfig:
    values = {**getattr(settings, "EMBEDDINGS", {}), **{k: v for k, v in overrides.items() if v is not None}}
    known = set(EmbeddingConfig.__dataclass_fields__)
    unknown = set(values) - known
    if unknown:
        raise EmbeddingsError(f"unknown embedding settings: {sorted(unknown)}")
    return EmbeddingConfig(**values)


def purchase_frame() -> pd.DataFrame:
    """Every purchase line with a product (customer pk, invoice, product pk, category, time, amount), via COPY."""
    return transaction_frame(("customer_id", "invoice", "product_id", "category", "invoiced_at", "amount"),
                             purchases_only=True, with_product=True)


def taste_check(bundle: EmbeddingBundle, rfm: np.ndarray, truth_path: str | Path, seed: int) -> dict[str, Any]:
    """Score the vectors against a generator truth file (evaluation only: truth never feeds the model).

    Neighbour taste purity@10 and seed-holdout lookalike recall per taste cluster, each beside the same
    measure on RFM features alone, and chance (1/number of clusters for purity).
    """
    truth = pd.read_csv(truth_path, usecols=["customer_id", "taste_cluster"], dtype={"customer_id": str})
    label_of = dict(zip(truth["customer_id"], truth["taste_cluster"], strict=True))
    rows = np.array([i for i, e in enumerate(bundle.external_ids) if str(e) in label_of], dtype=np.int64)
    if len(rows) < 50:
        return {"error": f"only {len(rows)} trained customers appear in the truth file"}
    labels = np.array([label_of[str(bundle.external_ids[i])] for i in rows])
    vectors, feats = bundle.vectors[rows], rfm[rows]
    sample = np.sort(np.random.default_rng(seed).choice(len(rows), min(2000, len(rows)), replace=False))
    clusters = sorted(set(labels.tolist()))
    holdout = {
        str(c): {"embeddings": pipeline.seed_holdout_recall(vectors, labels, c, seed=seed),
                 "rfm": pipeline.seed_holdout_recall(feats, labels, c, seed=seed, metric="euclidean"),
                 "chance": float(np.mean(labels == c))}
        for c in clusters
    }
    return {
        "customers": len(rows),
        "purity_at_10": pipeline.knn_labels_purity(vectors, labels, 10, sample),
        "purity_at_10_rfm": pipeline.euclidean_knn_purity(feats, labels, 10, sample),
        "purity_chance": 1.0 / len(clusters),
        "holdout_recall": holdout,
        "holdout_recall_mean": float(np.mean([h["embeddings"] for h in holdout.values()])),
        "holdout_recall_mean_rfm": float(np.mean([h["rfm"] for h in holdout.values()])),
    }


def _model_card(metrics: dict[str, Any], config: EmbeddingConfig) -> str:
    quality = metrics.get("quality", {})
    lines = [
        "# Customer2Vec (item2vec skip-gram + customer vectors, PV-DBOW style)",
        "",
        f"Data: {metrics['n_customers']:,} customers, {metrics['n_products']:,} products, "
        f"{metrics['n_purchase_lines']:,} purchase lines, {metrics['n_basket_pairs']:,} within-basket pairs.",
        f"Settings: {config.dim} dimensions, {len(metrics['loss_curve'])} epochs, {config.negatives} negatives, "
        f"seed {config.seed} (deterministic), {metrics['train_seconds']:.1f} s.",
        f"Index: {metrics['index_kind']} (cosine), recall@10 vs exact {metrics['index_recall_at_10']:.3f}.",
    ]
    if quality:
        lines.append(
            f"Neighbours share the customer's favourite category {quality['favourite_category_agreement_at_10']:.0%}"
            f" of the time (RFM features alone: {quality['favourite_category_agreement_rfm_at_10']:.0%}, "
            f"chance {quality['favourite_category_agreement_chance']:.0%}).")
    if metrics.get("taste_check") and "purity_at_10" in metrics["taste_check"]:
        t = metrics["taste_check"]
        lines.append(f"Taste check against generator truth: purity@10 {t['purity_at_10']:.2f} "
                     f"(RFM {t['purity_at_10_rfm']:.2f}, chance {t['purity_chance']:.2f}).")
    lines.append("Limits: customers with one or two purchases get uncertain vectors; new customers are folded in "
                 "from their products until the next retrain.")
    return "\n".join(lines)


def train_embeddings_model(*, user=None, reporter: JobReporter | None = None, truth_path: str | None = None,
                           **overrides: Any) -> ModelVersion:
    """Train, index, register and promote a Customer2Vec version. On any error the version is marked
    failed and the active version keeps serving."""

    def progress(pct: int, message: str) -> None:
        if reporter is not None:
            reporter.report(pct, message)

    config = config_from_settings(**overrides)
    params = registry_safe(pipeline._config_dict(config))
    mv = registry.start_model_version(KIND, params, user=user)
    try:
        progress(2, "Reading purchases")
        frame = purchase_frame()
        n_customers = frame["customer_id"].nunique() if len(frame) else 0
        if n_customers < MIN_CUSTOMERS:
            raise EmbeddingsError(f"need purchases of at least {MIN_CUSTOMERS} customers, found {n_customers}")
        baskets = pipeline.encode_baskets(frame)
        progress(5, f"Training on {len(baskets.customer_ids):,} customers and {len(baskets.product_ids):,} products")

        def epoch_done(epoch: int, epochs: int, loss: float) -> None:
            progress(5 + int(75 * epoch / epochs), f"Epoch {epoch} of {epochs}: loss {loss:.3f}")

        trained = pipeline.train_customer2vec(baskets, config, progress=epoch_done)
        progress(82, "Building the search index and the map")
        # whole tables rather than IN (…) lists: no parameter limits (SQLite), one sequential read
        external = dict(Customer.objects.values_list("pk", "external_id").iterator(chunk_size=50_000))
        products = {pk: (sku, desc) for pk, sku, desc in Product.objects.values_list("pk", "sku", "description")}
        bundle, index_metrics = pipeline.build_bundle(
            baskets, trained, config,
            external_ids=np.array([external[int(pk)] for pk in baskets.customer_ids], dtype=object),
            skus=np.array([products[int(pk)][0] for pk in baskets.product_ids], dtype=object),
            product_names=np.array([products[int(pk)][1] for pk in baskets.product_ids], dtype=object),
        )
        bundle.version = mv.version
        progress(90, "Checking neighbour quality")
        rfm = pipeline.rfm_features(frame).loc[baskets.customer_ids].to_numpy(dtype=np.float32)
        metrics: dict[str, Any] = {
            "n_customers": len(baskets.customer_ids), "n_products": len(baskets.product_ids),
            "n_purchase_lines": len(baskets.lines), "n_basket_pairs": trained.n_basket_pairs,
            "train_seconds": trained.seconds, "loss_curve": trained.loss_curve,
            "final_loss": trained.loss_curve[-1]["loss"] if trained.loss_curve else None,
            **index_metrics,
            "quality": pipeline.category_quality(bundle, rfm, config.quality_sample, config.seed),
        }
        if truth_path:
            metrics["taste_check"] = taste_check(bundle, rfm, truth_path, config.seed)
        metrics = registry_safe(metrics)
        progress(95, "Saving the artifact")
        path, _sha = registry.write_artifact(KIND, mv.version, bundle)
        with transaction.atomic():
            registry.complete_model_version(mv, metrics, path, _model_card(metrics, config))
            registry.promote(mv)
    except Exception as exc:
        registry.fail_model_version(mv, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        raise
    progress(100, f"v{mv.version} active")
    mv.refresh_from_db()
    return mv


# --- Lookalikes -------------------------------------------------------------------------------------


@dataclass
class Lookalikes:
    """A ranked lookalike list and what was asked."""

    results: list[dict[str, Any]]
    seed_size: int
    seed_mix: np.ndarray
    unknown_ids: list[str] = field(default_factory=list)
    folded_in: list[str] = field(default_factory=list)
    unknown_skus: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LookalikeOptions:
    k: int = 10
    exclude_seed: bool = True
    min_p_alive: float | None = None
    country: str = ""


def _allowed_mask(bundle: EmbeddingBundle, options: LookalikeOptions) -> np.ndarray | None:
    mask = None
    if options.min_p_alive is not None:
        mask = np.isin(bundle.customer_ids, selectors.p_alive_at_least(options.min_p_alive))
    if options.country:
        in_country = np.isin(bundle.customer_ids, selectors.customers_in_country(options.country))
        mask = in_country if mask is None else mask & in_country
    return mask


def _fold_in_customers(bundle: EmbeddingBundle, pks: list[int]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Vectors and category mixes of customers not in the model, from their purchases; pks that have none."""
    bought = selectors.purchased_product_ids(pks)
    product_row = {int(pk): i for i, pk in enumerate(bundle.product_ids)}
    codes, kept = [], []
    for pk in pks:
        rows = [product_row[p] for p in bought.get(pk, []) if p in product_row]
        if rows:
            codes.append(np.array(rows, dtype=np.int64))
            kept.append(pk)
    vectors = pipeline.normalise(pipeline.fold_in(codes, bundle.product_out, bundle.noise,
                                                  int(bundle.config["negatives"]), float(bundle.config["customer_l2"])))
    mixes = np.zeros((len(kept), len(bundle.categories)), dtype=np.float32)
    cat_index = {c: i for i, c in enumerate(bundle.categories)}
    for i, row_codes in enumerate(codes):
        for code in row_codes:
            mixes[i, cat_index[bundle.product_categories[code]]] += 1
        mixes[i] /= max(mixes[i].sum(), 1.0)
    return vectors, mixes, [pk for pk in pks if pk not in set(kept)]


def find_lookalikes(bundle: EmbeddingBundle, options: LookalikeOptions, *, external_ids: list[str] | None = None,
                    customer_pks: list[int] | None = None, skus: list[str] | None = None) -> Lookalikes:
    """Customers most like a seed: one or more customers (by external id or pk) or a basket of products.

    The seed's query is the normalised mean of its members' vectors; members the model has not seen are
    folded in from their purchases. Results are ordered by cosine similarity; "why" is the categories
    the result and the seed both buy substantially.
    """
    unknown: list[str] = []
    unknown_skus: list[str] = []
    folded: list[str] = []
    if skus is not None:
        known = bundle.product_row_of()
        unknown_skus = [s for s in skus if s not in known]
        if len(unknown_skus) == len(skus):
            return Lookalikes([], 0, np.zeros(len(bundle.categories)), unknown_skus=unknown_skus)
        query = bundle.fold_in_skus(skus)
        seed_mix = bundle.sku_category_mix(skus)
        seed_rows = np.zeros(0, dtype=np.int64)
        seed_size = 1
    else:
        if external_ids is not None:
            pk_of = selectors.pks_by_external(external_ids)
            unknown = [e for e in external_ids if e not in pk_of]
            pks = [pk_of[e] for e in external_ids if e in pk_of]
        else:
            pks = list(customer_pks or [])
        row_by_pk = {int(pk): i for i, pk in enumerate(bundle.customer_ids)}
        seed_rows = np.array([row_by_pk[pk] for pk in pks if pk in row_by_pk], dtype=np.int64)
        unseen = [pk for pk in pks if pk not in row_by_pk]
        skipped = unseen[FOLD_IN_MAX:]
        unseen = unseen[:FOLD_IN_MAX]
        extra_vectors = np.zeros((0, bundle.vectors.shape[1]), dtype=np.float32)
        extra_mix = np.zeros((0, len(bundle.categories)), dtype=np.float32)
        if unseen:
            extra_vectors, extra_mix, empty = _fold_in_customers(bundle, unseen)
            external_of = dict(Customer.objects.filter(pk__in=unseen).values_list("pk", "external_id"))
            unknown += [external_of[pk] for pk in empty]
            folded = [external_of[pk] for pk in unseen if pk not in set(empty)]
        if skipped:
            unknown += list(Customer.objects.filter(pk__in=skipped).values_list("external_id", flat=True))
        members = np.concatenate([bundle.vectors[seed_rows], extra_vectors])
        if not len(members):
            return Lookalikes([], 0, np.zeros(len(bundle.categories)), unknown_ids=unknown)
        query = pipeline.normalise(members.mean(axis=0, keepdims=True))[0]
        seed_mix = np.concatenate([bundle.category_mix[seed_rows], extra_mix]).mean(axis=0)
        seed_size = len(members)
    exclude = seed_rows if options.exclude_seed else None
    rows, sims = bundle.search(query, options.k, exclude=exclude, allowed=_allowed_mask(bundle, options))
    pks = [int(bundle.customer_ids[r]) for r in rows]
    facts = selectors.customer_facts(pks)
    results = []
    for row, sim, pk in zip(rows, sims, pks, strict=True):
        if pk not in facts:
            continue  # erased after this process loaded the index (see embeddings/privacy.py)
        f = facts[pk]
        results.append({
            "customer_id": str(bundle.external_ids[row]), "customer_pk": pk, "similarity": float(sim),
            "shared_categories": pipeline.shared_categories(seed_mix, bundle.category_mix[row], bundle.categories),
            "segment": f.get("segment"), "cluster_name": f.get("cluster_name"), "clv": f.get("clv"),
            "p_alive": f.get("p_alive"), "country": f.get("country"), "mix": bundle.category_mix[row],
        })
    return Lookalikes(results, seed_size, seed_mix, unknown_ids=unknown, folded_in=folded, unknown_skus=unknown_skus)


def save_lookalike_audience(*, name: str, description: str, source: str, lookalikes: Lookalikes, user):
    """Save a lookalike result as a fixed-list audience (members in similarity order, score = similarity)."""
    from rfm_portal.customers.services import audience_create

    return audience_create(
        name=name, kind="fixed", user=user, description=description, source=source,
        customer_ids=[r["customer_pk"] for r in lookalikes.results],
        scores=[r["similarity"] for r in lookalikes.results],
    )
