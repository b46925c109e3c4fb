"""The embeddings index as a customer-data store for erasure and access (rfm_portal/privacy/registry.py).

Erasure removes the customer's row from every stored version of the artifact (active and earlier ones, so
a rollback cannot bring it back): vector, ids, category mix, map point; the FAISS index is rebuilt from the
remaining vectors (same kind and search effort). Each rewritten artifact is a new file; the registry row
points at it inside the erasure's transaction, the superseded file is deleted once it commits (the new one
if it fails). Every process reloads an artifact whose sha256 changed (mlops load_active_entry), and until
then ``find_lookalikes`` drops results whose customer no longer exists, so the index never returns an
erased customer.
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

import numpy as np

from rfm_portal.mlops import services as registry
from rfm_portal.mlops.models import ModelVersion
from rfm_portal.privacy.registry import StoreErasure

from . import pipeline
from .pipeline import EmbeddingBundle

KIND = "embeddings"


def _stored_versions() -> list[ModelVersion]:
    return list(ModelVersion.objects.filter(kind=KIND).exclude(artifact_path="").exclude(artifact_sha256="")
                .order_by("version"))


def _load(mv: ModelVersion) -> EmbeddingBundle | None:
    try:
        return registry.load_artifact(mv.artifact_path, mv.artifact_sha256)
    except FileNotFoundError:
        return None


def bundle_without(bundle: EmbeddingBundle, customer_pk: int) -> EmbeddingBundle:
    """The bundle with one customer's row removed and the index rebuilt over the rest."""
    keep = np.asarray(bundle.customer_ids) != customer_pk
    rows = np.flatnonzero(keep)
    vectors = np.ascontiguousarray(bundle.vectors[rows])
    config = bundle.config
    if bundle.index_kind == "hnsw":
        index = pipeline.build_index(vectors, "hnsw", hnsw_m=int(config.get("hnsw_m", 32)),
                                     ef_construction=int(config.get("hnsw_ef_construction", 80)),
                                     ef_search=int(bundle.index_effort or config.get("hnsw_ef_search", 64)))
    else:  # exact (an ivf index is rebuilt exact: its training set has changed)
        index = pipeline.build_index(vectors, "exact")
    on_map = np.isin(bundle.map_rows, rows)
    return dataclasses.replace(
        bundle, customer_ids=np.asarray(bundle.customer_ids)[rows], external_ids=np.asarray(bundle.external_ids)[rows],
        vectors=vectors, category_mix=bundle.category_mix[rows],
        map_rows=np.searchsorted(rows, bundle.map_rows[on_map]), map_coords=bundle.map_coords[on_map],
        index_bytes=pipeline.faiss.serialize_index(index),
        index_kind="hnsw" if bundle.index_kind == "hnsw" else "exact",
        index_effort=bundle.index_effort if bundle.index_kind == "hnsw" else None, _index=None, _rows=None, _skus=None,
    )


def erase_from_index(customer_pk: int, external_id: str = "") -> StoreErasure:
    result = StoreErasure(removed=0, details={"versions": []})
    for mv in _stored_versions():
        bundle = _load(mv)
        if bundle is None or customer_pk not in set(np.asarray(bundle.customer_ids).tolist()):
            continue
        old_path = mv.artifact_path
        new_path, sha = registry.write_artifact(KIND, mv.version, bundle_without(bundle, customer_pk),
                                                filename=f"model-{secrets.token_hex(6)}.joblib")
        result.on_rollback.append(lambda p=new_path: registry.resolve_artifact(p).unlink(missing_ok=True))
        ModelVersion.objects.filter(pk=mv.pk).update(artifact_path=new_path, artifact_sha256=sha)
        result.on_commit.append(lambda p=old_path: registry.resolve_artifact(p).unlink(missing_ok=True))
        result.removed += 1
        result.details["versions"].append(mv.version)
    if result.removed:
        result.on_commit.append(lambda: registry.forget_active_check(KIND))
    return result


def export_from_index(customer_pk: int, external_id: str = "") -> dict[str, Any] | None:
    held = {}
    for mv in _stored_versions():
        bundle = _load(mv)
        if bundle is None:
            continue
        where = np.flatnonzero(np.asarray(bundle.customer_ids) == customer_pk)
        if len(where):
            row = int(where[0])
            held[f"v{mv.version}"] = {
                "status": mv.status,
                "vector": [float(x) for x in bundle.vectors[row]],
                "category_mix": {c: float(x) for c, x in zip(bundle.categories, bundle.category_mix[row], strict=True)},
            }
    return held or None


def index_contains(customer_pk: int, external_id: str = "") -> bool:
    return any(
        bundle is not None and customer_pk in set(np.asarray(bundle.customer_ids).tolist())
        for bundle in (_load(mv) for mv in _stored_versions())
    )
