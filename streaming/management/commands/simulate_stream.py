"""manage.py simulate_stream --rate R --duration S [--customers ID,ID…]: purchases and returns to the stream."""

from __future__ import annotations

import time

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from streaming.backends import add_events, get_stream
from streaming.producer import Simulator, load_history, restrict


class Command(BaseCommand):
    help = "Write simulated purchase and return events (consistent with the sample generator) to the event stream."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rate", type=float, default=10.0, help="events per second")
        parser.add_argument("--duration", type=float, default=60.0, help="seconds to run")
        parser.add_argument("--customers", default="", help="comma-separated external ids: only these customers")
        parser.add_argument("--sample-customers", type=int, default=0, help="only N random existing customers")
        parser.add_argument("--new-share", type=float, default=None,
                            help="share of events from new customers (default 0.03; 0 with --customers)")
        parser.add_argument("--return-rate", type=float, default=None, help="default: the generator's (0.02)")
        parser.add_argument("--speed", type=float, default=3600.0, help="simulated seconds per real second")
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args, rate: float, duration: float, customers: str, sample_customers: int,
               new_share: float | None, return_rate: float | None, speed: float, seed: int | None, **options) -> None:
        if not 0 < rate <= 100_000 or not 0 < duration <= 7 * 86400:
            raise CommandError("--rate must be in (0, 100000] and --duration in (0, 604800] seconds")
        if not settings.REDIS_URL:
            raise CommandError("simulate_stream writes to Redis: set REDIS_URL. Without it the stream lives inside "
                               "`make run`'s process, which already simulates a gentle stream of events.")
        history, clock_start = load_history()
        ids = [c.strip() for c in customers.split(",") if c.strip()]
        if ids:
            history = restrict(history, ids)
            missing = len(set(ids)) - len(history.external_ids)
            if missing:
                self.stderr.write(f"{missing} of the given customers have no purchase yet and are left out.")
        elif sample_customers:
            rng = np.random.default_rng(seed)
            pick = rng.choice(history.external_ids, size=min(sample_customers, len(history.external_ids)),
                              replace=False)
            history = restrict(history, list(pick))
        share = new_share if new_share is not None else (0.0 if ids or sample_customers else 0.03)
        sim = Simulator(history, clock_start, speed=speed, new_share=share, return_rate=return_rate, seed=seed)
        stream = get_stream()
        self.stdout.write(f"Run {sim.run}: {rate:g} events/s for {duration:g} s over {len(history.external_ids):,} "
                          f"customers (+{share:.0%} new), clock from {clock_start:%Y-%m-%d %H:%M} at {speed:g}×.")
        sent = 0
        start = time.monotonic()
        tick = min(0.05, 1.0 / rate)
        while (elapsed := time.monotonic() - start) < duration:
            due = min(int(rate * elapsed) + 1, int(rate * duration)) - sent  # events whose time has come
            if due > 0:
                add_events(stream, sim.events(due))
                sent += due
            time.sleep(tick)
        rest = int(rate * duration) - sent  # the last sleep may overshoot the end: what was due is still sent
        if rest > 0:
            add_events(stream, sim.events(rest))
            sent += rest
        self.stdout.write(f"Sent {sent:,} events in {time.monotonic() - start:.1f} s.")
