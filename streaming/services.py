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
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from churn import services as churn_services
from churn.models import ChurnScore
from cltv import services as cltv_services
from cltv.models import CLTVScore
from cltv.pipeline import score_frame
from cltv.summary import summary_from_transactions
from rfm_portal.customers import importing as im
from rfm_portal.customers import services as customer_services
from rfm_portal.customers.features import build_features
from rfm_portal.customers.models import Customer, Product, Transaction
from rfm_portal.dashboard import summaries as page_summaries
from rfm_portal.mlops.services import NoActiveModel, load_active_entry

from . import bulk
from .events import Event
from .models import LiveRisk, RiskChange, StreamEvent

logger = logging.getLogger(__name__)

# Features are as of just after the event: the event's own rows (at occurred_at) count.
AFTER_EVENT = pd.Timedelta(milliseconds=1)


@dataclass
class ApplyResult:
    applied: list[str] = field(default_factory=list)  # event ids newly applied
    duplicates: list[str] = field(default_factory=list)  # already applied before: skipped
    alerts: list[dict[str, Any]] = field(default_factory=list)  # feed items, newest last


def _lines_frame(events: list[Event]) -> pd.DataFrame:
    """The events' lines in the importer's layout (strings), for ``importing.validate_transactions``."""
    rows = []
    for ev in events:
        when = ev.occurred_at.isoformat()
        sign = -1 if ev.kind == "return" else 1
        for ln in ev.lines:
            rows.append((ev.invoice, ev.customer_id, ln.sku, ln.description, ln.category, when,
                         str(sign * ln.quantity), str(ln.unit_price), ev.country))
    frame = pd.DataFrame(rows, columns=["invoice", "customer_id", "sku", "description", "category",
                                        "invoiced_at", "quantity", "unit_price", "country"])
    frame.insert(0, im.LINE, np.arange(1, len(frame) + 1))
    return frame


def _write_transactions(events: list[Event], locked: dict[str, tuple] | None = None) -> dict[str, int]:
    """Customers, products and transaction rows of the events; returns customer pk by external id.

    ``locked``: the batch's existing customers as locked by ``bulk.lock_customers`` (PostgreSQL path).
    """
    result = im.validate_transactions(_lines_frame(events))
    if result.errors:  # events were validated already: this would be a bug, never half-write
        raise ValueError(f"event lines rejected by the importer: {result.errors[:3]}")
    valid = result.valid
    if locked is not None:
        summary = im.customer_summary(valid)
        customer_ids = bulk.upsert_customers(
            list(zip(summary["external_id"], summary["country"],
                     customer_services._datetimes(summary["first_seen"]), strict=True)), locked)
        products = im.product_summary(valid)
        product_ids = bulk.upsert_products(list(zip(products["sku"], products["description"], products["category"],
                                                    strict=True)))
        bulk.insert_transactions({
            "invoice": valid["invoice"].tolist(),
            "customer_id": [customer_ids[c] for c in valid["customer_id"]],
            "product_id": [product_ids.get(s) if s else None for s in valid["sku"]],
            "invoiced_at": customer_services._datetimes(valid["invoiced_at"]),
            "quantity": valid["quantity"].astype(int).tolist(),
            "unit_price_e4": valid["unit_price_e4"].astype(np.int64).tolist(),
            "amount_e4": valid["amount_e4"].astype(np.int64).tolist(),
            "is_return": valid["is_return"].astype(bool).tolist(),
            "row_hash": valid["row_hash"].tolist(),
        })
        return customer_ids
    customer_ids = customer_services._upsert_customers_orm(im.customer_summary(valid))
    product_ids = customer_services._upsert_products_orm(im.product_summary(valid))
    Transaction.objects.bulk_create([
        Transaction(invoice=inv, customer_id=customer_ids[cust], product_id=product_ids.get(sku) if sku else None,
                    invoiced_at=when, quantity=int(qty), unit_price=customer_services._e4(price),
                    amount=customer_services._e4(amount), is_return=bool(ret), row_hash=row_hash)
        for inv, cust, sku, when, qty, price, amount, ret, row_hash in zip(
            valid["invoice"], valid["customer_id"], valid["sku"], customer_services._datetimes(valid["invoiced_at"]),
            valid["quantity"], valid["unit_price_e4"], valid["amount_e4"], valid["is_return"], valid["row_hash"],
            strict=True)
    ], ignore_conflicts=True)
    return customer_ids


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
            WHERE t.customer_id = ANY(%s::bigint[])
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


def _per_event_features(events: list[Event], pks: list[int], tx: pd.DataFrame | None = None) -> pd.DataFrame:
    """Churn features of each event's customer as of just after the event, indexed by event position.

    One ``build_features`` call for the whole batch: features only depend on times relative to the
    cut-off, so each event's customer history (rows before its own cut-off) is shifted so that all
    cut-offs coincide, and keyed by the event's position.
    """
    tx = churn_services.load_transactions(pks) if tx is None else tx
    customers = churn_services.load_customers(pks)
    cutoffs = pd.to_datetime([ev.occurred_at for ev in events], utc=True) + AFTER_EVENT
    common = cutoffs.max()
    ev_frame = pd.DataFrame({"customer_id": np.asarray(pks, dtype=np.int64), "key": np.arange(len(events)),
                             "shift": (common - cutoffs).to_numpy(), "cutoff": cutoffs})
    tx = tx.assign(customer_id=tx["customer_id"].astype(np.int64), invoice=tx["invoice"].astype(object),
                   category=tx["category"].astype(object))
    rows = tx.merge(ev_frame, on="customer_id", how="inner")
    rows = rows[rows["invoiced_at"] < rows["cutoff"]]
    rows = rows.assign(invoiced_at=rows["invoiced_at"] + rows["shift"], customer_id=rows["key"])
    cust = customers.merge(ev_frame, on="customer_id", how="inner")
    cust = cust.assign(first_seen=cust["first_seen"] + cust["shift"], customer_id=cust["key"])
    return build_features(rows[["customer_id", "invoice", "invoiced_at", "amount", "is_return", "category"]],
                          common, cust[["customer_id", "country", "first_seen"]])


def _per_event_cltv(bundle: Any, events: list[Event], pks: list[int], days: pd.DataFrame | None = None
                    ) -> pd.DataFrame:
    """P(alive) and expected CLV of each event's customer as of the event's day (closed forms).

    The CLTV summary counts whole days, so histories are shifted by whole days to a common end day.
    """
    days = cltv_services.transaction_days(customer_ids=pks) if days is None else days
    if days.empty:
        return pd.DataFrame(columns=["p_alive", "clv"])
    end_days = pd.to_datetime([ev.occurred_at.date() for ev in events])
    common = end_days.max()
    ev_frame = pd.DataFrame({"customer_id": np.asarray(pks, dtype=np.int64), "key": np.arange(len(events)),
                             "shift": (common - end_days).to_numpy(), "end": end_days})
    rows = days.assign(customer_id=days["customer_id"].astype(np.int64)).merge(ev_frame, on="customer_id")
    rows = rows[rows["invoiced_at"] <= rows["end"]]
    rows = rows.assign(invoiced_at=rows["invoiced_at"] + rows["shift"], customer_id=rows["key"])
    summary = summary_from_transactions(rows[["customer_id", "invoiced_at", "amount"]], common, unit=bundle.unit)
    if summary.empty:
        return pd.DataFrame(columns=["p_alive", "clv"])
    scores = score_frame(bundle, summary[["frequency", "recency", "T", "monetary_value"]], with_uncertainty=False)
    return scores[["p_alive", "clv"]]


def _previous_risk(pks: set[int], churn_mv: int | None, cltv_mv: int | None) -> dict[int, dict[str, Any]]:
    """Each customer's latest known risk: the live one, else the active churn/CLTV versions' stored scores."""
    known: dict[int, dict[str, Any]] = {}
    if connection.vendor == "postgresql":
        for pk, p, band, alive, live_id, live_mv, live_p, live_band, live_alive, live_clv, as_of in (
                bulk.previous_risk_rows(sorted(pks), churn_mv, cltv_mv)):
            if p is not None:
                known[pk] = {"probability": p, "band": band, "p_alive": alive if cltv_mv is not None else None}
            if live_id is None:
                continue
            live = LiveRisk(id=live_id, customer_id=pk, churn_version_id=live_mv, probability=live_p, band=live_band,
                            p_alive=live_alive, clv=live_clv, as_of=as_of)
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
        externals = sorted({ev.customer_id for ev, _ in by_id.values()})
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
        customer_ids = _write_transactions(events_, locked)
        page_summaries.data_changed("stream", refresh=False)  # the overview recomputes when next opened
        result.alerts = _rescore(events_, [eid for _, eid in fresh], customer_ids, event_pks, fast)
    return result


def _rescore(events: list[Event], entry_ids: list[str], customer_ids: dict[str, int], event_pks: dict[str, int],
             fast: bool) -> list[dict[str, Any]]:
    churn_bundle, churn_mv = _active(churn_services.KIND)
    if churn_bundle is None:
        return []  # nothing to score with yet: the events and rows are stored, no risk change
    cltv_bundle, cltv_mv = _active(cltv_services.KIND)
    pks = [customer_ids[ev.customer_id] for ev in events]
    history = _history(pks)
    X = _per_event_features(events, pks, history)
    if X.empty:
        return []
    keys = X.index.to_numpy(dtype=np.int64)
    proba = churn_bundle.predict_proba(X)
    bands = churn_bundle.bands.assign(proba)
    cltv = _per_event_cltv(cltv_bundle, events, pks, _days_from(history)) if cltv_bundle is not None else pd.DataFrame()
    previous = _previous_risk(set(pks), churn_mv, cltv_mv)
    external = {pk: ext for ext, pk in customer_ids.items()}
    changes, alerts, latest = [], [], {}
    for key, p, band in zip(keys, proba, bands, strict=True):  # in event time order (keys follow `events`)
        ev, pk = events[key], pks[key]
        before = previous.get(pk, {})
        old_p, old_band, old_alive = before.get("probability"), before.get("band", ""), before.get("p_alive")
        p_alive = float(cltv.at[key, "p_alive"]) if key in cltv.index else None
        clv = float(cltv.at[key, "clv"]) if key in cltv.index else None
        reason = classify(old_p, old_band, float(p), str(band))
        changes.append(RiskChange(event_id=event_pks[ev.event_id], customer_id=pk, churn_version_id=churn_mv,
                                  occurred_at=ev.occurred_at, old_probability=old_p, new_probability=float(p),
                                  old_band=old_band, new_band=str(band), old_p_alive=old_alive, new_p_alive=p_alive,
                                  clv=clv, is_alert=bool(reason), reason=reason))
        previous[pk] = {**before, "probability": float(p), "band": str(band), "p_alive": p_alive}
        latest[pk] = (ev, float(p), str(band), p_alive, clv)
        if reason:
            alerts.append({
                "event_id": ev.event_id, "entry_id": entry_ids[key], "kind": ev.kind,
                "amount": float(ev.amount), "occurred_at": ev.occurred_at.isoformat(),
                "customer_id": external[pk], "customer_pk": pk, "old_probability": old_p, "new_probability": float(p),
                "old_band": old_band, "new_band": str(band), "old_p_alive": old_alive, "new_p_alive": p_alive,
                "clv": clv, "reason": reason,
            })
    if fast:
        bulk.insert_risk_changes(changes)
    else:
        RiskChange.objects.bulk_create(changes)
    _store_live(latest, previous, churn_mv, fast)
    return alerts


def _store_live(latest: dict[int, tuple], previous: dict[int, dict[str, Any]], churn_mv: int | None,
                fast: bool = False) -> None:
    """Upsert each customer's live risk (one INSERT … ON CONFLICT), unless a later event already set it."""
    rows = []
    for pk, (ev, p, band, p_alive, clv) in latest.items():
        live = previous.get(pk, {}).get("live")
        if live is None or ev.occurred_at >= live.as_of or live.churn_version_id != churn_mv:
            rows.append(LiveRisk(customer_id=pk, churn_version_id=churn_mv, probability=p, band=band, p_alive=p_alive,
                                 clv=clv, as_of=ev.occurred_at, updated_at=timezone.now()))
    if fast:
        bulk.upsert_live(rows)
        return
    LiveRisk.objects.bulk_create(rows, update_conflicts=True, unique_fields=["customer"],
                                 update_fields=["churn_version", "probability", "band", "p_alive", "clv", "as_of",
                                                "updated_at"])
