"""simulate_stream: realistic events, consistent with the generator, with producer-assigned ids."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from rfm_portal.customers.generator import SAMPLE_SEED, make_products
from streaming.events import decode, parse_event
from streaming.producer import Simulator, load_history


def test_simulated_events_are_valid_and_consistent_with_the_generator(live_db):
    history, clock_start = load_history()
    sim = Simulator(history, clock_start, seed=1, speed=86400 * 30, return_rate=0.2, new_share=0.05)
    events = []
    for _ in range(20):
        events += sim.events(50)
    assert len({e.event_id for e in events}) == len(events) == 1000
    for ev in events[:50]:
        assert parse_event(ev.to_json()) == ev  # every event passes the webhook's validation
    catalogue = make_products(np.random.default_rng(SAMPLE_SEED)).set_index("sku")
    for ev in events:
        for line in ev.lines:
            assert line.sku in catalogue.index and float(line.unit_price) == catalogue.at[line.sku, "unit_price"]
            assert line.category == catalogue.at[line.sku, "category"]
    kinds = Counter(e.kind for e in events)
    assert 100 < kinds["return"] < 300  # ~20% asked, only of purchases at least a day old
    purchases = {}
    for ev in events:
        if ev.kind == "purchase":
            purchases.setdefault(ev.customer_id, []).append(ev)
        else:  # a return undoes part of an earlier purchase of the same customer, a day or more before
            earlier = [p for p in purchases.get(ev.customer_id, [])
                       if ev.occurred_at - p.occurred_at >= timedelta(days=1)
                       and ev.lines[0].sku in {ln.sku for ln in p.lines}]
            assert earlier
    known = set(history.external_ids)
    new = {e.customer_id for e in events if e.customer_id not in known}
    assert 0 < sum(e.customer_id in new for e in events) < 120
    # customers with more purchases per day of history are picked more often (BG/NBD posterior rate)
    counts = Counter(e.customer_id for e in events if e.customer_id in known)
    picked = np.array([counts.get(c, 0) for c in history.external_ids])
    assert np.corrcoef(sim.rate, picked)[0, 1] > 0.3


def test_the_command_writes_rate_times_duration_events(live_db, stream):
    call_command("simulate_stream", "--rate", "40", "--duration", "1", "--seed", "2",
                 "--customers", ",".join(live_db.high_risk[:3]))
    entries = stream.redis.xrange(stream.key)
    assert len(entries) == 40
    customers = {decode(fields["event"]).customer_id for _, fields in entries}
    assert customers <= set(live_db.high_risk[:3])


def test_the_commands_need_redis(settings):
    settings.REDIS_URL = ""
    for command in ("simulate_stream", "consume_stream"):
        with pytest.raises(CommandError, match="REDIS_URL"):
            call_command(command)
