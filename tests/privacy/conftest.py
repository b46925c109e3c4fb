"""A customer with a row in every table that refers to customers, and a small lookalike index holding them.

``fill_every_customer_table`` builds one row per discovered table generically (required fields get plain
values), so an app added later is covered by the erasure tests without editing them.
"""

from __future__ import annotations

import dataclasses
import itertools
from datetime import date
from decimal import Decimal

import numpy as np
import pytest
from django.db import models
from django.utils import timezone

from embeddings import pipeline
from embeddings.pipeline import EmbeddingBundle
from rfm_portal.customers.models import Customer, Product
from rfm_portal.mlops import services as registry
from rfm_portal.mlops.models import ModelVersion
from rfm_portal.privacy.selectors import customer_tables
from tests.factories import make_transaction

# A unique, recognisable id: the "nothing remains" test searches every text and JSON column for it.
SECRET_ID = "ERASE-ME-4e1f9a"
_counter = itertools.count(1)


def _value(field: models.Field, customer: Customer, made: dict):
    if field.choices:
        return field.choices[0][0]
    if isinstance(field, models.ForeignKey | models.OneToOneField):
        if field.related_model is Customer:
            return customer
        return make_row(field.related_model, customer, made)
    if isinstance(field, models.BooleanField):
        return False
    if isinstance(field, models.DateTimeField):
        return timezone.now()
    if isinstance(field, models.DateField):
        return date(2024, 1, 1)
    if isinstance(field, models.DecimalField):
        return Decimal("1.5")
    if isinstance(field, models.FloatField):
        return 0.5
    if isinstance(field, models.IntegerField):
        return next(_counter)
    if isinstance(field, models.JSONField):
        return {}
    if field.name == "customer_external_id":
        return customer.external_id
    if isinstance(field, models.CharField | models.TextField):
        return f"v{next(_counter)}"[: getattr(field, "max_length", None) or 64]
    raise AssertionError(f"no sample value for {field.model.__name__}.{field.name} ({type(field).__name__})")


def make_row(model: type[models.Model], customer: Customer, made: dict) -> models.Model:
    """One row of ``model`` with every required field filled (related rows made too, once each)."""
    if model in made and model is not Customer:
        return made[model]
    if model is ModelVersion:
        row = ModelVersion.objects.create(kind=f"kind{next(_counter)}", version=1, status="ready")
        made[model] = row
        return row
    values = {}
    for field in model._meta.concrete_fields:
        if field.primary_key or getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            continue
        if field.is_relation and field.related_model is Customer:
            values[field.name] = customer
            continue
        if field.has_default() or field.null:
            continue
        values[field.name] = _value(field, customer, made)
    row = model._default_manager.create(**values)
    made[model] = row
    return row


def fill_every_customer_table(customer: Customer) -> set[str]:
    made: dict = {}
    labels = set()
    for table in customer_tables():
        if table.model is Customer:
            continue
        if table.model._default_manager.filter(**{table.field: customer.external_id if table.by_external_id
                                                   else customer.pk}).exists():
            labels.add(table.label)
            continue
        make_row(table.model, customer, made)
        labels.add(table.label)
    return labels


def tiny_bundle(customers: list[Customer]) -> EmbeddingBundle:
    """A real (exact) FAISS bundle over a few customers, without training."""
    rng = np.random.default_rng(0)
    n, dim = len(customers), 8
    vectors = pipeline.normalise(rng.normal(size=(n, dim)).astype(np.float32))
    index = pipeline.build_index(vectors, "exact")
    return EmbeddingBundle(
        config={"negatives": 5, "customer_l2": 0.1}, customer_ids=np.array([c.pk for c in customers], dtype=np.int64),
        external_ids=np.array([c.external_id for c in customers], dtype=object), vectors=vectors,
        category_mix=np.full((n, 2), 0.5, dtype=np.float32), categories=["kitchen", "garden"],
        product_ids=np.array([1], dtype=np.int64), skus=np.array(["MUG"], dtype=object),
        product_names=np.array(["Mug"], dtype=object), product_categories=np.array([0]),
        product_in=np.zeros((1, dim), dtype=np.float32), product_out=np.zeros((1, dim), dtype=np.float32),
        noise=np.ones(1, dtype=np.float64), index_kind="exact", index_effort=None,
        index_bytes=pipeline.faiss.serialize_index(index), map_rows=np.arange(n), map_coords=rng.normal(size=(n, 2)),
        map_method="pca",
    )


def register(bundle: EmbeddingBundle, promote: bool = True) -> ModelVersion:
    mv = registry.start_model_version("embeddings", {})
    bundle = dataclasses.replace(bundle, version=mv.version)
    path, _ = registry.write_artifact("embeddings", mv.version, bundle)
    registry.complete_model_version(mv, {"n_customers": len(bundle.customer_ids)}, path)
    return registry.promote(mv) if promote else mv


@pytest.fixture(autouse=True)
def _artifacts(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    registry.clear_model_cache()
    yield
    registry.clear_model_cache()


@pytest.fixture
def people(db) -> dict[str, Customer]:
    mug = Product.objects.create(sku="MUG", description="Mug", category="kitchen")
    target = Customer.objects.create(external_id=SECRET_ID, country="Iceland", attributes={"email": "x@example.com"})
    others = [Customer.objects.create(external_id=f"KEEP-{i}", country="France") for i in range(5)]
    make_transaction(target, "9001", "2024-01-05T10:00", 2, "10.00", mug)
    make_transaction(target, "C9002", "2024-01-06T10:00", -1, "10.00", mug)
    for i, other in enumerate(others):
        make_transaction(other, f"80{i}", "2024-01-05T10:00", 1, "10.00", mug)
    return {"target": target, "others": others}


@pytest.fixture
def indexed(people) -> dict:
    """Two embeddings versions (an earlier, retired one and the active one), both holding the target."""
    everyone = [people["target"], *people["others"]]
    old = register(tiny_bundle(everyone))
    active = register(tiny_bundle(list(reversed(everyone))))
    return {"old": old, "active": active, **people}
