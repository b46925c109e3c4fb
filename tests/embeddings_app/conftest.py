"""Generated customers imported through the ordinary import, and a Customer2Vec model for them.

Training through the service is tested once (test_train_service.py). Every other test registers a
bundle fitted once per session (pure) and re-keyed to this test's database ids, so the API and
page tests do not each pay for a training run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from embeddings import pipeline
from embeddings.pipeline import EmbeddingBundle
from rfm_portal.customers.generator import generate, write_outputs
from rfm_portal.customers.models import Customer, Product
from rfm_portal.customers.services import import_transactions
from rfm_portal.mlops import services as registry
from rfm_portal.mlops.models import ModelVersion

N_CUSTOMERS = 500
SEED = 9
TEST_EMBEDDINGS = {"dim": 16, "epochs": 6, "seed": 3, "map_method": "pca", "map_sample": 300, "threads": 1}


@pytest.fixture(autouse=True)
def _fast_settings(settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.EMBEDDINGS = dict(TEST_EMBEDDINGS)
    registry.clear_model_cache()
    yield
    registry.clear_model_cache()


@pytest.fixture(scope="session")
def generated_files(tmp_path_factory) -> dict[str, Path]:
    data = generate(N_CUSTOMERS, seed=SEED)
    return write_outputs(data, tmp_path_factory.mktemp("embeddings_gen"), prefix="gen")


@pytest.fixture
def generated(db, generated_files) -> pd.DataFrame:
    """The generated customers in the database; returns the truth table (evaluation only)."""
    job = import_transactions(Path(generated_files["transactions"]), file_name="gen.csv")
    assert job.status == "succeeded", job.message
    return pd.read_csv(generated_files["truth"], dtype={"customer_id": str})


@pytest.fixture(scope="session")
def template_bundle(generated_files) -> EmbeddingBundle:
    """A bundle fitted on the generated file, keyed by external id and sku (pure: no database)."""
    t = pd.read_csv(generated_files["transactions"], dtype={"customer_id": str, "invoice": str})
    t = t[t["quantity"] > 0]
    frame = pd.DataFrame({"customer_id": t["customer_id"], "invoice": t["invoice"], "product_id": t["sku"],
                          "category": t["category"]})
    baskets = pipeline.encode_baskets(frame)
    config = pipeline.EmbeddingConfig(**TEST_EMBEDDINGS)
    trained = pipeline.train_customer2vec(baskets, config)
    coded = dataclasses.replace(baskets, customer_ids=np.arange(len(baskets.customer_ids)),
                                product_ids=np.arange(len(baskets.product_ids)))
    bundle, _metrics = pipeline.build_bundle(coded, trained, config, external_ids=baskets.customer_ids,
                                             skus=baskets.product_ids, product_names=baskets.product_ids)
    return bundle


def register_bundle(template: EmbeddingBundle, drop: set[str] = frozenset()) -> ModelVersion:
    """Re-key the template to this database's customer and product ids, write it and promote it.

    ``drop``: external ids left out of the model (customers "newer than the model", to test fold-in)."""
    keep = np.array([str(e) not in drop for e in template.external_ids])
    pk_of = dict(Customer.objects.values_list("external_id", "pk"))
    product_pk = dict(Product.objects.values_list("sku", "pk"))
    rows = np.flatnonzero(keep)
    bundle = dataclasses.replace(
        template, customer_ids=np.array([pk_of[str(e)] for e in template.external_ids[rows]], dtype=np.int64),
        external_ids=template.external_ids[rows], vectors=template.vectors[rows],
        category_mix=template.category_mix[rows],
        product_ids=np.array([product_pk[str(s)] for s in template.skus], dtype=np.int64),
        map_rows=np.searchsorted(rows, template.map_rows[np.isin(template.map_rows, rows)]),
        map_coords=template.map_coords[np.isin(template.map_rows, rows)],
        index_bytes=pipeline.faiss.serialize_index(pipeline.build_index(template.vectors[rows], "exact")),
        _index=None, _rows=None, _skus=None,
    )
    mv = registry.start_model_version("embeddings", dict(TEST_EMBEDDINGS))
    bundle.version = mv.version
    path, _ = registry.write_artifact("embeddings", mv.version, bundle)
    metrics = {"n_customers": len(rows), "n_products": len(bundle.skus), "index_kind": "exact",
               "index_recall_at_10": 1.0, "map_points": len(bundle.map_rows), "loss_curve": [
                   {"epoch": 1, "loss": 5.0, "customer_loss": 3.0, "basket_loss": 2.0}],
               "quality": {"favourite_category_agreement_at_10": 0.6, "favourite_category_agreement_rfm_at_10": 0.2,
                           "favourite_category_agreement_chance": 0.15, "sample": 100}}
    registry.complete_model_version(mv, metrics, path)
    return registry.promote(mv)


@pytest.fixture
def model(generated, template_bundle) -> ModelVersion:
    return register_bundle(template_bundle)
