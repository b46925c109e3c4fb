"""Reads for the Live feed: recent alerts (the snapshot a socket gets on connect) and stream figures."""

from __future__ import annotations

import logging
from typing import Any

from .backends import get_stream
from .models import RiskChange

logger = logging.getLogger(__name__)

SNAPSHOT_SIZE = 50


def alert_item(change: RiskChange) -> dict[str, Any]:
    """A feed item, the same shape the consumers push (services._rescore)."""
    ev = change.event
    return {
        "event_id": ev.event_id, "entry_id": ev.stream_entry_id, "kind": ev.kind, "amount": float(ev.amount),
        "occurred_at": change.occurred_at.isoformat(), "customer_id": change.customer.external_id,
        "customer_pk": change.customer_id, "old_probability": change.old_probability,
        "new_probability": change.new_probability, "old_band": change.old_band, "new_band": change.new_band,
        "old_p_alive": change.old_p_alive, "new_p_alive": change.new_p_alive, "clv": change.clv,
        "reason": change.reason,
    }


def recent_alerts(limit: int = SNAPSHOT_SIZE) -> list[dict[str, Any]]:
    """Newest first."""
    rows = (RiskChange.objects.filter(is_alert=True).select_related("event", "customer")
            .order_by("-created_at", "-id")[:limit])
    return [alert_item(c) for c in rows]


def stream_stats() -> dict[str, Any]:
    try:
        return get_stream().stats().as_dict()
    except Exception as error:  # Redis down: the page still opens and says so
        logger.warning("stream figures unavailable", exc_info=True)
        return {"error": f"stream unavailable ({type(error).__name__})"}


def dead_letters(limit: int = 20) -> list[dict[str, str]]:
    try:
        entries = get_stream().dead_letters(limit)
    except Exception:  # Redis down: the page still opens (stream_stats says the stream is unavailable)
        logger.warning("dead letters unavailable", exc_info=True)
        return []
    return [{"id": eid, "entry_id": f.get("entry_id", ""), "reason": f.get("reason", ""),
             "event": f.get("event", "")[:300], "consumer": f.get("consumer", "")} for eid, f in entries]


def snapshot() -> dict[str, Any]:
    return {"snapshot": True, "alerts": recent_alerts(), "stats": stream_stats(), "dead_letters": dead_letters(5)}
