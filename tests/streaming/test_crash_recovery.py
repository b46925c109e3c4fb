"""SIGKILL a consumer process in the middle of a batch, restart: every event applied exactly once."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from rfm_portal.customers.models import Transaction
from streaming.events import encode
from streaming.models import RiskChange, StreamEvent
from streaming.producer import Simulator, load_history

from .conftest import stream_env

SCRIPT = Path(__file__).with_name("crashing_consumer.py")
N_EVENTS = 300


def start(name: str, mode: str, env: dict[str, str]) -> tuple[subprocess.Popen, queue.Queue]:
    proc = subprocess.Popen([sys.executable, str(SCRIPT), name, mode], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    return proc, lines


def wait_for(lines: queue.Queue, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if text in lines.get(timeout=0.5):
                return
        except queue.Empty:
            continue
    raise AssertionError(f"no {text!r} within {timeout} s")


def test_sigkill_mid_batch_then_restart_applies_every_event_exactly_once(live_db, stream, settings):
    history, clock_start = load_history()
    sim = Simulator(history, clock_start, seed=3, return_rate=0.15, new_share=0.05)
    events = sim.events(N_EVENTS)
    stream.add([encode(ev) for ev in events])
    # A killed consumer stays a member until MEMBER_TTL_MS passes without its heartbeat (10 s by default): the
    # consumer of step 3 stands by until then. A short TTL (with a faster heartbeat) takes it over sooner.
    env = stream_env(settings.STREAM, live_db.artifact_root, STREAM_BATCH="20", STREAM_CLAIM_IDLE_MS="500",
                     STREAM_CLAIM_EVERY_S="0.2", STREAM_HEARTBEAT_S="0.2", STREAM_MEMBER_TTL_MS="1500")
    procs = []
    try:
        # 1. killed while a batch is written but not committed
        proc, lines = start("worker-1", "slow", env)
        procs.append(proc)
        deadline = time.monotonic() + 150  # a consumer process loads Django and the models first: slow under load
        while StreamEvent.objects.count() < 40 and time.monotonic() < deadline:
            time.sleep(0.1)
        wait_for(lines, "in-transaction", 30)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        committed = StreamEvent.objects.count()
        assert 40 <= committed < N_EVENTS and stream.stats().pending == 20  # the killed batch: delivered, unacked

        # 2. the same consumer restarts, finishes its pending batch, then dies after a commit, before the ack
        proc, lines = start("worker-1", "die-after-commit", env)
        procs.append(proc)
        assert proc.wait(180) == -signal.SIGKILL
        assert stream.stats().pending == 20  # committed but never acknowledged

        # 3. another consumer claims the dead one's entries after the idle time and drains the stream
        proc, lines = start("worker-2", "drain", env)
        procs.append(proc)
        assert proc.wait(120) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)

    stats = stream.stats()
    assert (stats.lag, stats.pending, stats.dead_letters) == (0, 0, 0)
    applied = Counter(StreamEvent.objects.values_list("event_id", flat=True))
    assert set(applied) == {ev.event_id for ev in events} and max(applied.values()) == 1  # none lost, none twice
    assert RiskChange.objects.count() == N_EVENTS  # one risk change per event, never two
    assert Counter(RiskChange.objects.values_list("event_id", flat=True)).most_common(1)[0][1] == 1
    lines_by_invoice = Counter(Transaction.objects.filter(import_job__isnull=True).values_list("invoice", flat=True))
    assert lines_by_invoice == Counter({ev.invoice: len(ev.lines) for ev in events})  # no double transaction
