"""Right to erasure: nothing about the customer remains in any table, nor in any version of the lookalike index."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.apps import apps
from django.db import connection, models

from embeddings import services as embedding_services
from rfm_portal.audit.models import AuditEntry
from rfm_portal.customers.models import Customer, Transaction
from rfm_portal.mlops import services as registry
from rfm_portal.mlops.models import ModelVersion
from rfm_portal.privacy import registry as store_registry
from rfm_portal.privacy import services
from rfm_portal.privacy.selectors import customer_tables

from .conftest import SECRET_ID, fill_every_customer_table


def text_columns_holding(value: str) -> list[str]:
    """Every text or JSON column of every table, searched in PostgreSQL for ``value``."""
    found = []
    with connection.cursor() as cursor:
        for model in apps.get_models():
            for f in model._meta.concrete_fields:
                if isinstance(f, models.CharField | models.TextField | models.JSONField):
                    table, column = model._meta.db_table, f.column
                    cursor.execute(f'SELECT 1 FROM "{table}" WHERE "{column}"::text LIKE %s LIMIT 1', [f"%{value}%"])
                    if cursor.fetchone():
                        found.append(f"{table}.{column}")
    return found


def test_discovery_covers_every_capability_table(db):
    labels = {t.label for t in customer_tables()}
    assert {"customers.transaction", "customers.campaignhistory", "customers.audiencemember",
            "segmentation.rfmscore", "cltv.cltvscore", "churn.churnscore", "uplift.upliftscore",
            "streaming.streamevent", "streaming.riskchange", "streaming.liverisk",
            "campaigns.campaigntarget"} <= labels


def test_erasure_leaves_nothing_in_any_table_or_index(indexed, admin, django_capture_on_commit_callbacks):
    target, others = indexed["target"], indexed["others"]
    pk = target.pk
    filled = fill_every_customer_table(target)
    assert len(filled) >= 11
    assert text_columns_holding(SECRET_ID)  # the search finds it before erasure
    old_paths = {mv.pk: mv.artifact_path for mv in ModelVersion.objects.filter(kind="embeddings")}
    stale_bundle = registry.load_active("embeddings")  # what a process loaded before the erasure
    transactions_of_others = Transaction.objects.exclude(customer=target).count()


    with django_capture_on_commit_callbacks(execute=True):
        result = services.erase_customer(customer=target, actor=admin)

    assert result.rows_deleted["customers.transaction"] == 2
    assert result.stores["embeddings-index"] == 2
    assert not Customer.objects.filter(pk=pk).exists()
    for table in customer_tables():
        value = SECRET_ID if table.by_external_id else pk
        assert not table.model._default_manager.filter(**{table.field: value}).exists(), table.label
    assert text_columns_holding(SECRET_ID) == []
    assert Transaction.objects.count() == transactions_of_others
    assert Customer.objects.count() == len(others)

    # Every stored version of the index was rewritten without the customer; the old files are gone.
    for mv in ModelVersion.objects.filter(kind="embeddings"):
        assert mv.artifact_path != old_paths[mv.pk]
        assert not registry.resolve_artifact(old_paths[mv.pk]).exists()
        bundle = registry.load_artifact(mv.artifact_path, mv.artifact_sha256)
        assert pk not in bundle.customer_ids.tolist()
        assert SECRET_ID not in [str(e) for e in bundle.external_ids]
        assert bundle.index.ntotal == len(others) == len(bundle.vectors)
        assert bundle.map_rows.max() < len(bundle.vectors)
    assert not store_registry._STORES["embeddings-index"].contains(pk, SECRET_ID)

    # The active index never returns the customer: not when reloaded, not from a copy loaded before.
    active = registry.load_active("embeddings")
    assert active is not stale_bundle
    options = embedding_services.LookalikeOptions(k=10, exclude_seed=False)
    erased_row = int(np.flatnonzero(stale_bundle.customer_ids == pk)[0])
    query = stale_bundle.vectors[erased_row]
    rows, _ = active.search(query, 10)
    assert pk not in [int(active.customer_ids[r]) for r in rows]
    stale = embedding_services.find_lookalikes(stale_bundle, options, customer_pks=[int(others[0].pk)])
    assert pk not in [r["customer_pk"] for r in stale.results] and len(stale.results) == len(others)

    entry = AuditEntry.objects.get(action="customer.erased", target_id=str(pk))
    assert entry.actor == admin and entry.target_type == "customers.customer" and entry.target_id == str(pk)
    text = json.dumps(entry.details)
    assert SECRET_ID not in text and "Iceland" not in text and "example.com" not in text
    assert entry.details["rows_deleted"]["customers.customer"] == 1
    assert entry.details["stores"]["embeddings-index"]["removed"] == 2


def test_a_failing_store_erases_nothing(indexed, admin):
    target = indexed["target"]
    fill_every_customer_table(target)
    before_paths = dict(ModelVersion.objects.filter(kind="embeddings").values_list("pk", "artifact_path"))
    artifact_dir = registry.artifact_root() / "embeddings"
    files_before = sorted(p.name for p in artifact_dir.rglob("*.joblib"))

    def boom(customer_pk: int, external_id: str):
        raise RuntimeError("store unavailable")

    store_registry.register_customer_store(name="zz-failing", erase=boom, export=lambda pk, eid: None,
                                           contains=lambda pk, eid: False)
    try:
        with pytest.raises(RuntimeError, match="store unavailable"):
            services.erase_customer(customer=target, actor=admin)
    finally:
        store_registry._STORES.pop("zz-failing")

    assert Customer.objects.filter(pk=target.pk).exists()
    assert Transaction.objects.filter(customer=target).count() == 2
    assert dict(ModelVersion.objects.filter(kind="embeddings").values_list("pk", "artifact_path")) == before_paths
    assert sorted(p.name for p in artifact_dir.rglob("*.joblib")) == files_before  # the rewritten files removed
    assert store_registry._STORES["embeddings-index"].contains(target.pk, SECRET_ID)
    assert not AuditEntry.objects.filter(action="customer.erased", target_id=str(target.pk)).exists()


def test_fixed_audience_sizes_follow_the_erasure(people, admin):
    from rfm_portal.customers.services import audience_create

    target, others = people["target"], people["others"]
    audience = audience_create(name="VIPs", kind="fixed", user=admin, customer_ids=[target.pk, others[0].pk])
    assert audience.size == 2
    services.erase_customer(customer=target, actor=admin)
    audience.refresh_from_db()
    assert audience.size == 1 and audience.members.count() == 1
