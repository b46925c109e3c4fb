"""Page summaries: what a page aggregates over every customer, computed once and stored (``PageSummary``).

A page asks ``get(name)``; the stored payload is served while the *key* it was computed under still holds:

* the active version of each model kind the page reads (``kinds``): a training or rollback changes it;
* counters bumped after a data change commits (``counters``): ``import`` (an import of transactions or
  campaigns), ``stream`` (a batch of stream events written), ``erasure`` (a customer erased);
* with ``row_ids``, the highest transaction and customer ids, which also catch rows written by any other
  path (a test factory, a script) without a counter.

Otherwise the page computes it (once) and stores it. The services that change data call one hook, so a
summary is also refreshed ahead of the next visit: ``data_changed("import")`` after an import,
``data_changed("stream", refresh=False)`` after a stream batch, and ``model_changed(kind)`` once a version
became active (the registry's ``model_activated`` signal: a training's promotion, a promotion by hand, a
rollback). Erasure removes every stored summary in the
erasure's own transaction (registered as a customer store: a summary may name a customer, e.g. the
decision plot's), so nothing computed from an erased customer is served afterwards.

Stream events arrive in small, frequent batches: a summary that only they have outdated is served for up to
``stream_max_age`` seconds (``settings.PAGE_SUMMARY_STREAM_MAX_AGE``) before the page recomputes it.

The computing functions live with their pages and are named by dotted path in ``SPECS``; each takes the
model versions of its key ({kind: ModelVersion or None}) and returns JSON-able data.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.module_loading import import_string

from .models import CustomerTotals, DataGeneration, PageSummary

logger = logging.getLogger(__name__)

COUNTERS = ("import", "stream", "erasure")


@dataclass(frozen=True)
class SummarySpec:
    name: str
    compute: str  # dotted path: f(versions: dict[str, ModelVersion | None]) -> JSON-able dict
    kinds: tuple[str, ...] = ()
    counters: tuple[str, ...] = ("erasure",)
    row_ids: bool = False
    stream_max_age: bool = False  # may be served stale by stream events for settings.PAGE_SUMMARY_STREAM_MAX_AGE


SPECS: dict[str, SummarySpec] = {spec.name: spec for spec in (
    SummarySpec("overview", "rfm_portal.dashboard.views.compute_overview",
                counters=COUNTERS, row_ids=True, stream_max_age=True),
    SummarySpec("customer_totals", "rfm_portal.dashboard.summaries.rebuild_customer_totals",
                counters=COUNTERS, row_ids=True, stream_max_age=True),
    SummarySpec("churn.overview", "churn.views.compute_overview", kinds=("churn",)),
    SummarySpec("cltv.overview", "cltv.views.compute_overview", kinds=("cltv",)),
    SummarySpec("uplift.overview", "uplift.views.compute_overview", kinds=("uplift",)),
    # The choice lists of filter forms (customer table, churn lists, lookalike builder, campaign form): a DISTINCT
    # over every customer or score per view otherwise.
    SummarySpec("customers.countries", "rfm_portal.customers.selectors.compute_countries",
                counters=COUNTERS, row_ids=True, stream_max_age=True),
    SummarySpec("segmentation.choices", "segmentation.selectors.compute_choices", kinds=("segmentation",)),
    # The unfiltered customer table's counts (every customer, and those with a value per sort column): its
    # paging splits at them, and counting joins every customer's scores (~0.3 s at 100k) per view otherwise.
    SummarySpec("customers.table_counts", "rfm_portal.customers.table.compute_counts",
                kinds=("segmentation", "cltv", "churn", "uplift"), counters=COUNTERS, row_ids=True,
                stream_max_age=True),
    SummarySpec("churn.list_counts", "churn.selectors.compute_list_counts",
                kinds=("segmentation", "cltv", "churn", "uplift"), counters=COUNTERS, row_ids=True,
                stream_max_age=True),
)}


# --- Counters -------------------------------------------------------------------------------------------


def counters(names: Iterable[str] = COUNTERS) -> dict[str, int]:
    names = list(names)
    values = dict(DataGeneration.objects.filter(name__in=names).values_list("name", "value"))
    return {name: int(values.get(name, 0)) for name in names}


def bump(name: str) -> None:
    """Add one to a counter (one statement, so concurrent bumps never lose one)."""
    if name not in COUNTERS:
        raise ValueError(f"unknown data counter {name!r}")
    table = connection.ops.quote_name(DataGeneration._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (name, value, changed_at) VALUES (%s, 1, %s) "
            f"ON CONFLICT (name) DO UPDATE SET value = {table}.value + 1, changed_at = EXCLUDED.changed_at",
            [name, timezone.now()],
        )


# --- Keys -----------------------------------------------------------------------------------------------


def _active_versions(kinds: Iterable[str]) -> dict[str, Any]:
    from rfm_portal.mlops.selectors import active_version

    return {kind: active_version(kind) for kind in kinds}


def _row_ids() -> dict[str, int]:
    from rfm_portal.customers.models import Customer, Transaction

    return {"transaction": Transaction.objects.aggregate(m=Max("pk"))["m"] or 0,
            "customer": Customer.objects.aggregate(m=Max("pk"))["m"] or 0}


def current_key(spec: SummarySpec, versions: dict[str, Any] | None = None) -> dict[str, Any]:
    versions = _active_versions(spec.kinds) if versions is None else versions
    key: dict[str, Any] = {"versions": {kind: (mv.pk if mv else None) for kind, mv in versions.items()},
                           "counters": counters(spec.counters)}
    if spec.row_ids:
        key["rows"] = _row_ids()
    return key


def _usable(spec: SummarySpec, stored: PageSummary, key: dict[str, Any]) -> bool:
    if stored.key == key:
        return True
    if not spec.stream_max_age:
        return False
    max_age = float(getattr(settings, "PAGE_SUMMARY_STREAM_MAX_AGE", 60))
    old, new = stored.key, key
    only_stream = (old.get("versions") == new.get("versions")
                   and {k: v for k, v in old.get("counters", {}).items() if k != "stream"}
                   == {k: v for k, v in new.get("counters", {}).items() if k != "stream"}
                   and old.get("counters", {}).get("stream", 0) < new["counters"].get("stream", 0))
    return only_stream and (timezone.now() - stored.computed_at).total_seconds() <= max_age


# --- Reading and refreshing -----------------------------------------------------------------------------


def get(name: str, versions: dict[str, Any] | None = None) -> dict[str, Any]:
    """The page's stored summary if it still holds, else computed now and stored. ``versions`` (the active
    model versions the page already read) keeps the key and the page on the same versions."""
    spec = SPECS[name]
    versions = _active_versions(spec.kinds) if versions is None else versions
    key = current_key(spec, versions)
    stored = PageSummary.objects.filter(name=name).first()
    if stored is not None and _usable(spec, stored, key):
        return stored.payload
    return _compute_and_store(spec, key, versions)


def refresh(name: str) -> dict[str, Any]:
    """Compute and store a summary now (after the data or a model changed)."""
    spec = SPECS[name]
    versions = _active_versions(spec.kinds)
    return _compute_and_store(spec, current_key(spec, versions), versions)


class _Encoder(DjangoJSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        return super().default(o)


def jsonable(data: Any) -> Any:
    """``data`` as it reads back from the JSON column: dates and decimals as strings, numpy as Python,
    NaN and infinities as None (PostgreSQL's jsonb has no NaN)."""
    return json.loads(json.dumps(data, cls=_Encoder), parse_constant=lambda _constant: None)


def _compute_and_store(spec: SummarySpec, key: dict[str, Any], versions: dict[str, Any]) -> dict[str, Any]:
    compute: Callable[[dict[str, Any]], dict[str, Any]] = import_string(spec.compute)
    began = time.perf_counter()
    payload = jsonable(compute(versions))
    seconds = time.perf_counter() - began
    try:
        with transaction.atomic():
            PageSummary.objects.bulk_create(
                [PageSummary(name=spec.name, key=key, payload=payload, computed_at=timezone.now(), seconds=seconds)],
                update_conflicts=True, unique_fields=["name"],
                update_fields=["key", "payload", "computed_at", "seconds"])
    except Exception:  # e.g. a read-only transaction: the page still shows what it computed
        logger.warning("page summary %s not stored", spec.name, exc_info=True)
    return payload


def _refresh_quietly(names: Iterable[str]) -> None:
    """Refresh after a change; a failure is logged, never breaks the import or training that triggered it
    (the page then computes the summary itself)."""
    for name in names:
        try:
            refresh(name)
        except Exception:
            logger.exception("could not refresh page summary %s", name)


# --- Hooks for the services that change data or models --------------------------------------------------


def data_changed(counter: str, refresh: bool = True) -> None:
    """Call where data change (inside or outside their transaction): once it commits, the counter goes up
    and, with ``refresh``, the summaries that read it are computed again."""

    def after_commit() -> None:
        bump(counter)
        if refresh:
            _refresh_quietly(name for name, spec in SPECS.items() if counter in spec.counters)

    transaction.on_commit(after_commit)


def on_model_activated(sender: Any, model_version: Any, **kwargs: Any) -> None:
    """Receiver of ``mlops.signals.model_activated`` (a promotion or a rollback)."""
    kind = model_version.kind
    transaction.on_commit(lambda: model_changed(kind))


def model_changed(kind: str) -> None:
    """A version of ``kind`` became active (called after the promotion committed): refresh its pages."""
    _refresh_quietly(name for name, spec in SPECS.items() if kind in spec.kinds)


# --- The customer table's per-customer totals ---------------------------------------------------------


def rebuild_customer_totals(versions: dict[str, Any]) -> dict[str, Any]:
    """Recompute ``CustomerTotals`` (a row per customer) from every transaction in one statement (one writer at
    a time); the customer table reads orders, net revenue and last purchase from it."""
    from rfm_portal.customers.models import Customer, Transaction

    totals = connection.ops.quote_name(CustomerTotals._meta.db_table)
    customers = connection.ops.quote_name(Customer._meta.db_table)
    lines = connection.ops.quote_name(Transaction._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # a second rebuild waits, then replaces the first one's rows
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [totals])
        cursor.execute(f"DELETE FROM {totals}")
        cursor.execute(
            f"INSERT INTO {totals} (customer_id, orders, revenue, last_purchase) "
            f"SELECT c.id, COALESCE(t.orders, 0), t.revenue, t.last_purchase FROM {customers} c LEFT JOIN ("
            f"  SELECT customer_id, COUNT(DISTINCT invoice) FILTER (WHERE NOT is_return) AS orders,"
            f"         SUM(amount) AS revenue, MAX(invoiced_at) FILTER (WHERE NOT is_return) AS last_purchase"
            f"  FROM {lines} GROUP BY customer_id) t ON t.customer_id = c.id")
        if connection.vendor == "postgresql":  # every row replaced: fresh statistics, so the planner uses the indexes
            cursor.execute(f"ANALYZE {totals}")
        return {"customers": CustomerTotals.objects.count()}


def ensure_customer_totals() -> None:
    """Make ``CustomerTotals`` current before a query reads it (a few small queries when it already is)."""
    get("customer_totals")


# --- Erasure: a registered customer store ---------------------------------------------------------------


def erase_summaries(customer_pk: int, external_id: str):
    """Inside the erasure's transaction: drop every stored summary and bump the erasure counter."""
    from rfm_portal.privacy.registry import StoreErasure

    removed, _ = PageSummary.objects.all().delete()
    bump("erasure")
    return StoreErasure(removed=removed, details={"summaries_removed": removed})


def export_summaries(customer_pk: int, external_id: str) -> None:
    return None  # aggregates over all customers: nothing of one customer to hand over


def summaries_contain(customer_pk: int, external_id: str) -> bool:
    from django.db.models import TextField
    from django.db.models.functions import Cast

    return (PageSummary.objects.annotate(text=Cast("payload", TextField()))
            .filter(text__contains=f'"{external_id}').exists())
