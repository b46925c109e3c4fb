"""Applying streamed events: one database transaction per batch, every event's effects inside it.

For the events of a batch, in one transaction: record each event id (the unique constraint makes
a redelivered event a no-op), write its transaction rows (the importer's validation, row hashes
and customer/product upserts), rebuild the customer's features as of the event
(``customers.features.build_features`` — the one feature definition), re-score churn and CLTV's
P(alive) with the active models (``load_active``; the churn bundle's ``predict_proba`` and risk
bands, ``cltv.pipeline.score_frame``), and store the change of risk. The caller acknowledges the
stream entries only after this returns, i.e. after the commit.

Exactly-once per event follows: an event is either committed with all its effects or not at all;
redelivered, its id is already recorded and it is skipped (its entry is then acknowledged).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from churn import services as churn_services
from churn.models import ChurnScore
from cltv import services as cltv_services
from cltv.models import CLTVScore
from cltv.pipeline import alive_and_clv, compress_rows
from cltv.summary import purchase_days_from_day_totals, summaries_as_of
from rfm_portal.customers import services as customer_services
from rfm_portal.customers.features import build_features
from rfm_portal.customers.models import Customer, Product, Transaction
from rfm_portal.dashboard import summaries as page_summaries
from rfm_portal.mlops.services import NoActiveModel, load_active_entry

from . import bulk, lines
from .events import Event
from .models import LiveRisk, RiskChange, StreamEvent

logger = logging.getLogger(__name__)

# Features are as of just after the event: the event's own rows (at occurred_at) count.
AFTER_EVENT = pd.Timedelta(milliseconds=1)


class StoredLive(NamedTuple):
    """What a batch needs of a customer's stored live risk (a ``LiveRisk`` has the same attributes)."""

    churn_version_id: int | None
    as_of: datetime


@dataclass
class ApplyResult:
    applied: list[str] = field(default_factory=list)  # event ids newly applied
    duplicates: list[str] = field(default_factory=list)  # already applied before: skipped
    alerts: list[dict[str, Any]] = field(default_factory=list)  # feed items, newest last


def _write_transactions(events: list[Event], locked: dict[str, tuple] | None = None
                        ) -> tuple[dict[str, int], pd.DataFrame | None]:
    """Customers, products and transaction rows of the events.

    Returns customer pk by external id and, on the PostgreSQL path, the customers as now stored
    (``churn.services.load_customers``' frame, so it need not be read again; None on the ORM path).
    ``locked``: the batch's existing customers as locked by ``bulk.lock_customers`` (PostgreSQL path).
    The rows are the importer's (``streaming.lines``): same normalisation, same row hashes.
    """
    rows = lines.rows_of(events)
    if locked is not None:
        stored = bulk.upsert_customers(rows.customers(), locked)
        customer_ids = {ext: row[0] for ext, row in stored.items()}
        customers = pd.DataFrame({
            "customer_id": np.asarray([row[0] for row in stored.values()], dtype=np.int64),
            "country": [row[2] for row in stored.values()],
            "first_seen": pd.to_datetime([row[1] for row in stored.values()], utc=True),
        })
        product_ids = bulk.upsert_products(rows.products())
        bulk.insert_transactions({
            "invoice": rows.invoice,
            "customer_id": [customer_ids[c] for c in rows.customer_id],
            "product_id": [product_ids.get(s) if s else None for s in rows.sku],
            "invoiced_at": rows.invoiced_at,
            "quantity": rows.quantity,
            "unit_price_e4": rows.unit_price_e4,
            "amount_e4": rows.amount_e4,
            "is_return": rows.is_return,
            "row_hash": rows.row_hash,
        })
        return customer_ids, customers
    customers = rows.customers()
    customer_ids = customer_services._upsert_customers_orm(pd.DataFrame({
        "external_id": [c[0] for c in customers], "country": [c[1] for c in customers],
        "first_seen": pd.to_datetime([c[2] for c in customers], utc=True)}))
    products = rows.products()
    product_ids = customer_services._upsert_products_orm(pd.DataFrame(products, columns=["sku", "description",
                                                                                          "category"]))
    Transaction.objects.bulk_create([
        Transaction(invoice=inv, customer_id=customer_ids[cust], product_id=product_ids.get(sku) if sku else None,
                    invoiced_at=when, quantity=qty, unit_price=customer_services._e4(price),
                    amount=customer_services._e4(amount), is_return=ret, row_hash=row_hash)
        for inv, cust, sku, when, qty, price, amount, ret, row_hash in zip(
            rows.invoice, rows.customer_id, rows.sku, rows.invoiced_at, rows.quantity, rows.unit_price_e4,
            rows.amount_e4, rows.is_return, rows.row_hash, strict=True)
    ], ignore_conflicts=True)
    return customer_ids, None


def _history(pks: list[int]) -> pd.DataFrame:
    """The customers' transactions as ``churn.services.load_transactions`` gives them (one read per batch).

    On PostgreSQL times come as epoch microseconds and money as float, so no Python datetime or
    Decimal is built per row.
    """
    if connection.vendor != "postgresql":
        return churn_services.load_transactions(pks)
    with bulk.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT t.customer_id, t.invoice, (extract(epoch FROM t.invoiced_at) * 1000000)::int8, t.amount::float8,
                   t.is_return, coalesce(p.category, '')
            FROM {Transaction._meta.db_table} t LEFT JOIN {Product._meta.db_table} p ON p.id = t.product_id
            WHERE t.customer_id = ANY(%b::bigint[])
            """,
            [list({int(pk) for pk in pks})],
        )
        rows = cursor.fetchall()
    if not rows:
        return churn_services.load_transactions([])
    cust, inv, at_us, amount, ret, cat = zip(*rows, strict=True)
    return pd.DataFrame({
        "customer_id": np.asarray(cust, dtype=np.int64),
        "invoice": pd.Categorical(inv),
        "invoiced_at": pd.to_datetime(np.asarray(at_us, dtype=np.int64), unit="us", utc=True),
        "amount": np.asarray(amount, dtype=np.float64),
        "is_return": np.asarray(ret, dtype=bool),
        "category": pd.Categorical(cat),
    })


def _days_from(tx: pd.DataFrame) -> pd.DataFrame:
    """``cltv.services.transaction_days`` computed from the history already read: per customer, UTC day, sign."""
    if tx.empty:
        return pd.DataFrame({"customer_id": pd.Series([], dtype="int64"),
                             "invoiced_at": pd.Series([], dtype="datetime64[ns]"),
                             "amount": pd.Series([], dtype=float)})
    day = tx["invoiced_at"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    frame = pd.DataFrame({"customer_id": tx["customer_id"].to_numpy(), "invoiced_at": day.to_numpy(),
                          "negative": tx["amount"].to_numpy() < 0, "amount": tx["amount"].to_numpy()})
    days = frame.groupby(["customer_id", "invoiced_at", "negative"], sort=False, observed=True)["amount"].sum()
    return days.reset_index()[["customer_id", "invoiced_at", "amount"]]


def _rows_of(history_customers: np.ndarray, customers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each entry ``k`` of ``customers``, the positions of its rows in ``history_customers`` (in history
    order), one after the other: (row positions, k of each row)."""
    order = np.argsort(history_customers, kind="stable")
    ordered = history_customers[order]
    start = np.searchsorted(ordered, customers, side="left")
    count = np.searchsorted(ordered, customers, side="right") - start
    owner = np.repeat(np.arange(len(customers)), count)
    offsets = np.cumsum(count) - count
    return order[np.arange(count.sum()) - offsets[owner] + start[owner]], owner


def _per_event_features(events: list[Event], pks: list[int], tx: pd.DataFrame | None = None,
                        customers: pd.DataFrame | None = None) -> pd.DataFrame:
    """Churn features of each event's customer as of just after the event, indexed by event position.

    One ``build_features`` call for the whole batch: features only depend on times relative to the
    cut-off, so each event's customer history (rows before its own cut-off) is shifted so that all
    cut-offs coincide, and keyed by the event's position. (Each event's rows keep their history
    order, so every sum adds the same numbers in the same order as ``build_features`` on that
    customer alone.)
    """
    tx = churn_services.load_transactions(pks) if tx is None else tx
    customers = churn_services.load_customers(pks) if customers is None else customers
    customers = customers.drop_duplicates("customer_id").set_index("customer_id")
    cutoffs = pd.to_datetime([ev.occurred_at for ev in events], utc=True).as_unit("ns") + AFTER_EVENT
    common = cutoffs.max()
    shift = (common - cutoffs).asi8  # ns
    ids = np.asarray(pks, dtype=np.int64)
    times = pd.DatetimeIndex(tx["invoiced_at"]).tz_convert("UTC").as_unit("ns").asi8
    rows, owner = _rows_of(tx["customer_id"].to_numpy(dtype=np.int64), ids)
    before = times[rows] < cutoffs.asi8[owner]
    rows, owner = rows[before], owner[before]
    history = pd.DataFrame({
        "customer_id": owner,
        "invoice": tx["invoice"].to_numpy(dtype=object)[rows],
        "invoiced_at": pd.to_datetime(times[rows] + shift[owner], unit="ns", utc=True),
        "amount": tx["amount"].to_numpy(dtype=np.float64)[rows],
        "is_return": tx["is_return"].to_numpy(dtype=bool)[rows],
        "category": tx["category"].to_numpy(dtype=object)[rows],
    })
    known = customers.reindex(ids).reset_index(drop=True)
    people = pd.DataFrame({
        "customer_id": np.arange(len(events)),
        "country": known["country"],
        "first_seen": pd.to_datetime(known["first_seen"], utc=True).dt.as_unit("ns") + pd.to_timedelta(shift),
    })
    return build_features(history, common, people)


def _per_event_cltv(bundle: Any, events: list[Event], pks: list[int], days: pd.DataFrame | None = None
                    ) -> pd.DataFrame:
    """P(alive) and expected CLV of each event's customer as of the event's day (closed forms), by event position.

    One summary per event (``cltv.summary.summaries_as_of``: the customer's purchase days up to the
    event's, counted as ``summary_from_transactions`` counts them, from the batch's purchase days made
    once with ``purchase_days_from_day_totals``) and one evaluation of the closed forms for the batch.
    """
    days = cltv_services.transaction_days(customer_ids=pks) if days is None else days
    if days.empty:
        return pd.DataFrame(columns=["p_alive", "clv"])
    end_days = np.array([ev.occurred_at.date() for ev in events], dtype="datetime64[D]").astype(np.int64)
    summary = summaries_as_of(purchase_days_from_day_totals(days), np.asarray(pks, dtype=np.int64), end_days,
                              unit=bundle.unit)
    if summary.empty:
        return pd.DataFrame(columns=["p_alive", "clv"])
    x, tx, T, m = (summary[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T", "monetary_value"))
    p_alive, _, clv = alive_and_clv(bundle, x, m, compress_rows(x, tx, T))
    return pd.DataFrame({"p_alive": p_alive, "clv": clv}, index=summary.index)


def _previous_risk(pks: set[int], churn_mv: int | None, cltv_mv: int | None) -> dict[int, dict[str, Any]]:
    """Each customer's latest known risk: the live one, else the active churn/CLTV versions' stored scores."""
    known: dict[int, dict[str, Any]] = {}
    if connection.vendor == "postgresql":
        for pk, p, band, alive, has_live, live_mv, live_p, live_band, live_alive, as_of in (
                bulk.previous_risk_rows(sorted(pks), churn_mv, cltv_mv)):
            if p is not None:
                known[pk] = {"probability": p, "band": band, "p_alive": alive if cltv_mv is not None else None}
            if not has_live:
                continue
            live = StoredLive(live_mv, as_of)
            if live_mv == churn_mv:
                known[pk] = {"probability": live_p, "band": live_band, "p_alive": live_alive, "live": live}
            elif pk in known:
                known[pk]["live"] = live
            else:
                known[pk] = {"live": live}
        return known
    if churn_mv is not None:
        for pk, p, band in ChurnScore.objects.filter(model_version_id=churn_mv, customer_id__in=pks).values_list(
                "customer_id", "probability", "risk_band"):
            known[pk] = {"probability": p, "band": band, "p_alive": None}
    if cltv_mv is not None:
        for pk, p_alive in CLTVScore.objects.filter(model_version_id=cltv_mv, customer_id__in=pks).values_list(
                "customer_id", "p_alive"):
            if pk in known:
                known[pk]["p_alive"] = p_alive
    for live in LiveRisk.objects.filter(customer_id__in=pks):
        if live.churn_version_id == churn_mv:
            known[live.customer_id] = {"probability": live.probability, "band": live.band, "p_alive": live.p_alive,
                                       "live": live}
        elif live.customer_id in known:
            known[live.customer_id]["live"] = live
        else:
            known[live.customer_id] = {"live": live}
    return known


def _active(kind: str) -> tuple[Any, int | None]:
    """The active model of a kind and its version's pk (one entry: the pk is the bundle's own)."""
    try:
        entry = load_active_entry(kind)
    except NoActiveModel:
        return None, None
    return entry.obj, entry.pk


def classify(old_p: float | None, old_band: str, new_p: float, new_band: str) -> str:
    """Why a change is on the Live feed ("" when it is not): crossed into high, or rose sharply."""
    if old_p is None:
        return ""
    if new_band == "high" and old_band != "high":
        return "crossed into high risk"
    if new_p - old_p >= settings.STREAM["SHARP_RISE"]:
        return f"risk up {100 * (new_p - old_p):.0f} points"
    return ""


def apply_events(events: list[Event], *, entry_ids: list[str] | None = None, consumer: str = "") -> ApplyResult:
    """Apply a batch of valid events in one transaction (see the module docstring)."""
    result = ApplyResult()
    if not events:
        return result
    entry_ids = entry_ids or [""] * len(events)
    by_id: dict[str, tuple[Event, str]] = {}
    for ev, eid in zip(events, entry_ids, strict=True):
        by_id.setdefault(ev.event_id, (ev, eid))  # a batch repeating an id applies it once
    token = uuid.uuid4().hex
    fast = connection.vendor == "postgresql"
    with transaction.atomic():
        # Lock the batch's existing customers (sorted: concurrent consumers never deadlock on them), so
        # two consumers never read the same "old" risk for one customer at once.
        externals = sorted({lines.external_id(ev.customer_id) for ev, _ in by_id.values()})
        if fast:
            locked = bulk.lock_customers(externals)
            event_pks = bulk.insert_events([
                (ev.event_id, ev.kind, ev.customer_id, ev.occurred_at, ev.amount, eid, consumer[:128])
                for ev, eid in by_id.values()], token)
        else:
            locked = None
            list(Customer.objects.select_for_update().filter(external_id__in=externals).order_by("external_id")
                 .values_list("pk", flat=True))
            StreamEvent.objects.bulk_create([
                StreamEvent(event_id=ev.event_id, kind=ev.kind, customer_external_id=ev.customer_id,
                            occurred_at=ev.occurred_at, amount=ev.amount, stream_entry_id=eid,
                            consumer=consumer[:128], batch_token=token)
                for ev, eid in by_id.values()
            ], ignore_conflicts=True)
            event_pks = dict(StreamEvent.objects.filter(batch_token=token).values_list("event_id", "pk"))
        result.duplicates = [i for i in by_id if i not in event_pks]
        fresh = sorted((by_id[i] for i in event_pks), key=lambda pair: (pair[0].occurred_at, pair[0].event_id))
        result.applied = [ev.event_id for ev, _ in fresh]
        if not fresh:
            return result
        events_ = [ev for ev, _ in fresh]
        customer_ids, customers = _write_transactions(events_, locked)
        page_summaries.data_changed("stream", refresh=False)  # the overview recomputes when next opened
        result.alerts = _rescore(events_, [eid for _, eid in fresh], customer_ids, event_pks, fast, customers)
    return result


def _rescore(events: list[Event], entry_ids: list[str], customer_ids: dict[str, int], event_pks: dict[str, int],
             fast: bool, customers: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    churn_bundle, churn_mv = _active(churn_services.KIND)
    if churn_bundle is None:
        return []  # nothing to score with yet: the events and rows are stored, no risk change
    cltv_bundle, cltv_mv = _active(cltv_services.KIND)
    pks = [customer_ids[lines.external_id(ev.customer_id)] for ev in events]
    history = _history(pks)
    X = _per_event_features(events, pks, history, customers)
    if X.empty:
        return []
    keys = X.index.to_numpy(dtype=np.int64)
    proba = churn_bundle.predict_proba(X)
    bands = churn_bundle.bands.assign(proba)
    cltv = _per_event_cltv(cltv_bundle, events, pks, _days_from(history)) if cltv_bundle is not None else pd.DataFrame()
    previous = _previous_risk(set(pks), churn_mv, cltv_mv)
    external = {pk: ext for ext, pk in customer_ids.items()}
    alive_clv = dict(zip(cltv.index.tolist(), zip(cltv["p_alive"].tolist(), cltv["clv"].tolist(), strict=True),
                         strict=True)) if len(cltv) else {}
    changes, alerts, latest = [], [], {}
    # in event time order (keys follow `events`)
    for key, p, band in zip(keys.tolist(), np.asarray(proba, dtype=float).tolist(), map(str, bands), strict=True):
        ev, pk = events[key], pks[key]
        before = previous.get(pk, {})
        old_p, old_band, old_alive = before.get("probability"), before.get("band", ""), before.get("p_alive")
        p_alive, clv = alive_clv.get(key, (None, None))
        reason = classify(old_p, old_band, p, band)
        changes.append((event_pks[ev.event_id], pk, churn_mv, ev.occurred_at, old_p, p, old_band, band,
                        old_alive, p_alive, clv, bool(reason), reason))
        previous[pk] = {**before, "probability": p, "band": band, "p_alive": p_alive}
        latest[pk] = (ev, p, band, p_alive, clv)
        if reason:
            alerts.append({
                "event_id": ev.event_id, "entry_id": entry_ids[key], "kind": ev.kind,
                "amount": float(ev.amount), "occurred_at": ev.occurred_at.isoformat(),
                "customer_id": external[pk], "customer_pk": pk, "old_probability": old_p, "new_probability": p,
                "old_band": old_band, "new_band": band, "old_p_alive": old_alive, "new_p_alive": p_alive,
                "clv": clv, "reason": reason,
            })
    live = _live_rows(latest, previous, churn_mv)
    if fast:
        bulk.insert_risk(changes, live)
        return alerts
    RiskChange.objects.bulk_create([RiskChange(**dict(zip(bulk.RISK_CHANGE_FIELDS, row, strict=True)))
                                    for row in changes])
    now = timezone.now()
    LiveRisk.objects.bulk_create([LiveRisk(**dict(zip(bulk.LIVE_FIELDS, row, strict=True)), updated_at=now)
                                  for row in live], update_conflicts=True, unique_fields=["customer"],
                                 update_fields=["churn_version", "probability", "band", "p_alive", "clv", "as_of",
                                                "updated_at"])
    return alerts


def _live_rows(latest: dict[int, tuple], previous: dict[int, dict[str, Any]], churn_mv: int | None) -> list[tuple]:
    """Each customer's new live risk (``bulk.LIVE_FIELDS``), unless a later event already set it."""
    rows = []
    for pk, (ev, p, band, p_alive, clv) in latest.items():
        live = previous.get(pk, {}).get("live")
        if live is None or ev.occurred_at >= live.as_of or live.churn_version_id != churn_mv:
            rows.append((pk, churn_mv, p, band, p_alive, clv, ev.occurred_at))
    return rows
