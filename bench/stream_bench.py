"""End-to-end streaming benchmark: producer → Redis Stream → consumer(s) → PostgreSQL → websocket.

Everything on 127.0.0.1, in the caller's own database and Redis namespace (DATABASE_URL,
REDIS_URL, CHANNELS_PREFIX; the database needs imported transactions and active churn and CLTV
models, e.g. `manage.py setup_demo` once). For each consumer count and each target rate:

1. a fresh stream (its own keys, ``--partitions`` partition streams), the portal served on a loopback
   port (``manage.py serve``, i.e. uvicorn as in production, or ``--server daphne``), and one
   logged-in websocket client on /ws/live/;
2. ``N`` consumer processes (``manage.py consume_stream``), each owning its share of the partitions;
3. the simulator (``streaming.producer``, the same as ``simulate_stream``) XADDs events at the
   target rate for ``--duration`` seconds, in pipelined chunks every 20 ms;
4. ``STREAM_SHARP_RISE=-1`` makes every re-scored event a feed item (the worst case for the feed,
   and it lets every event be timed): latency = websocket receive time − the XADD time in the
   entry id (same machine clock). Also timed from the database: XADD → the applying transaction's
   start (``now()`` of the batch's transaction).

CPU per event (from /proc, user + system): the consumers, the web server, and PostgreSQL's backends
serving this database (the consumers' connections), so the cost of an event can be added up.

Sustained rate = events applied / (last commit − first XADD); "kept up" when the consumers
finished within 2 s of the producer. Capacity (``--backlog N``, first): N events queued before the
consumers start, rate = N / (last commit − first commit). Rows written by the run are deleted afterwards.

    .venv/bin/python bench/stream_bench.py [--consumers 1 2] [--rates 250 500 1000 2000] [--duration 20]
        [--partitions 6] [--batch 250] [--server uvicorn|daphne]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rfm_portal.settings")
os.environ.setdefault("DEBUG", "1")
PYTHON = str(ROOT / ".venv" / "bin" / "python")


def free_port(low: int, high: int) -> int:
    for port in range(low, high):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


def wait_port(port: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"port {port} did not open")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_backends() -> list[int]:
    """Process ids of the PostgreSQL backends connected to this database, except this process's own."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND backend_type = 'client backend'")
        return [pid for (pid,) in cur.fetchall()]


def cpu_total(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass  # a backend that ended (its last figures are lost: the total is a lower bound)
    return total


def run_once(*args, **kwargs) -> dict:
    """One measurement; its consumer processes are stopped whatever happens."""
    procs: list[subprocess.Popen] = []
    try:
        return _run_once(procs, *args, **kwargs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


def _run_once(procs: list, n_consumers: int, rate: float, duration: float, port: int, session: str, batch: int,
              partitions: int, backlog: int = 0, server_pid: int | None = None) -> dict:
    import websocket
    from django.db.models import Max, Min

    from rfm_portal.customers.models import Customer, Transaction
    from streaming.backends import RedisStream, add_events, entry_ms
    from streaming.models import LiveRisk, RiskChange, StreamEvent
    from streaming.producer import Simulator, load_history

    tag = uuid.uuid4().hex[:8]
    keys = {"STREAM_KEY": f"bench:{tag}:events", "STREAM_DEAD_LETTER_KEY": f"bench:{tag}:dead",
            "STREAM_GROUP": "bench", "STREAM_SHARP_RISE": "-1", "STREAM_FEED_MAX_ITEMS": "1000000",
            "STREAM_BATCH": str(batch), "STREAM_PARTITIONS": str(partitions)}
    # consumers run as in production: DEBUG off (no per-query logging), so they need a key
    env = {**os.environ, **keys, "DEBUG": "0", "SECRET_KEY": os.environ.get("SECRET_KEY") or uuid.uuid4().hex * 2}
    stream = RedisStream(os.environ["REDIS_URL"], keys["STREAM_KEY"], "bench", keys["STREAM_DEAD_LETTER_KEY"],
                         partitions)
    stream.ensure_group()
    base_customers = set(Customer.objects.values_list("pk", flat=True))
    history, clock_start = load_history()
    sim = Simulator(history, clock_start, seed=7)
    if backlog:  # capacity: the whole backlog is in the stream before any consumer starts
        for start in range(0, backlog, 1000):
            add_events(stream, sim.events(min(1000, backlog - start)))
    procs += [subprocess.Popen([PYTHON, "manage.py", "consume_stream", "--consumer", f"bench-{i}"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(n_consumers)]
    latencies: list[float] = []
    received = threading.Event()
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws/live/", cookie=f"sessionid={session}",
                                     origin=f"http://127.0.0.1:{port}", timeout=2)
    ws.recv()  # the snapshot

    def listen() -> None:
        while not received.is_set():
            try:
                opcode, raw = ws.recv_data()
            except websocket.WebSocketTimeoutException:
                continue
            except Exception as error:
                print(f"websocket closed: {error!r}", file=sys.stderr)
                return
            now = time.time() * 1000
            if opcode != websocket.ABNF.OPCODE_TEXT:
                print(f"websocket frame {opcode}: {raw[:200]!r}", file=sys.stderr)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    return
                continue
            for alert in json.loads(raw).get("alerts", []):
                if alert.get("entry_id"):
                    latencies.append(now - entry_ms(alert["entry_id"]))

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    if not backlog:  # consumers join the group once their models are loaded (a slow start is not latency)
        joined = time.monotonic() + 300  # loading Django and the models is slow on a busy machine
        while len(stream.live_members()) < n_consumers:
            if time.monotonic() > joined:
                raise RuntimeError("consumers did not start")
            time.sleep(0.2)
    load_before = os.getloadavg()[0]
    cpu_before = [cpu_seconds(p.pid) for p in procs]
    pg_pids = postgres_backends()
    pg_before = cpu_total(pg_pids)
    server_before = cpu_seconds(server_pid) if server_pid else 0.0
    sent, start = backlog, time.monotonic()
    first_ms = None
    while not backlog and (elapsed := time.monotonic() - start) < duration:
        due = min(int(rate * elapsed) + 1, int(rate * duration)) - sent
        if due > 0:
            ids = add_events(stream, sim.events(due))
            first_ms = first_ms or entry_ms(ids[0])
            sent += due
        time.sleep(0.02)
    produced_s = time.monotonic() - start
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        s = stream.stats()
        if s.lag == 0 and s.pending == 0:
            break
        time.sleep(0.2)
    drained_after = time.monotonic() - start - produced_s
    time.sleep(0.5)
    received.set()
    ws.close()
    consumer_cpu = sum(cpu_seconds(p.pid) for p in procs) - sum(cpu_before)
    pg_cpu = cpu_total(pg_pids) - pg_before
    server_cpu = cpu_seconds(server_pid) - server_before if server_pid else float("nan")
    load_after = os.getloadavg()[0]
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(30)
    stats = stream.stats()
    runs = StreamEvent.objects.filter(consumer__startswith="bench-", stream_entry_id__gte="")
    agg = runs.aggregate(first=Min("processed_at"), last=Max("processed_at"))
    applied = runs.count()
    commit_lat = np.array([p.timestamp() * 1000 - entry_ms(e) for e, p in runs.values_list("stream_entry_id",
                                                                                           "processed_at")])
    if backlog:  # consumer capacity: from the first commit to the last
        span = (agg["last"] - agg["first"]).total_seconds() * 1000 if applied > 1 else float("nan")
    else:
        span = agg["last"].timestamp() * 1000 - first_ms if applied else float("nan")
    lat = np.array(latencies)
    result = {
        "consumers": n_consumers, "target_rate": rate, "backlog": backlog, "sent": sent, "applied": applied,
        "feed_items": len(lat), "dead_letters": stats.dead_letters,
        "sustained_eps": applied / (span / 1000) if applied else 0.0, "kept_up": drained_after <= 2.0,
        "drain_after_s": round(drained_after, 1), "produced_s": round(produced_s, 1),
        "ws_p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
        "ws_p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
        "commit_p50_ms": float(np.percentile(commit_lat, 50)) if len(commit_lat) else None,
        "commit_p99_ms": float(np.percentile(commit_lat, 99)) if len(commit_lat) else None,
        "consumer_cpu_ms_per_event": 1000 * consumer_cpu / applied if applied else None,
        "server_cpu_ms_per_event": 1000 * server_cpu / applied if applied else None,
        "postgres_cpu_ms_per_event": 1000 * pg_cpu / applied if applied else None,
        "partitions": partitions, "batch": batch,
        "load_avg_1m": [round(load_before, 1), round(load_after, 1)],
    }
    # clean up what the run wrote, so runs stay comparable
    RiskChange.objects.all().delete()
    LiveRisk.objects.all().delete()
    StreamEvent.objects.all().delete()
    Transaction.objects.filter(import_job__isnull=True).delete()
    Customer.objects.exclude(pk__in=base_customers).delete()
    stream.delete()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--consumers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rates", type=float, nargs="+", default=[250, 500, 1000, 2000])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--backlog", type=int, default=5000,
                        help="first measure capacity: drain this many queued events (0: skip)")
    parser.add_argument("--partitions", type=int, default=6, help="partition streams (STREAM_PARTITIONS)")
    parser.add_argument("--server", choices=["uvicorn", "daphne"], default="uvicorn",
                        help="websocket server: manage.py serve (uvicorn, as in production) or daphne")
    parser.add_argument("--port-range", default="19300-19399")
    args = parser.parse_args()
    for name in ("DATABASE_URL", "REDIS_URL"):
        if not os.environ.get(name):
            sys.exit(f"set {name} (your own database and Redis db)")

    import django

    django.setup()
    from django.contrib.sessions.backends.db import SessionStore

    from rfm_portal.accounts.models import User

    user, _ = User.objects.get_or_create(username="stream-bench", defaults={"role": User.Role.ANALYST})
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    low, high = (int(x) for x in args.port_range.split("-"))
    port = free_port(low, high + 1)
    (ROOT / "var").mkdir(exist_ok=True)
    server_log = open(ROOT / "var" / f"stream_bench_{args.server}.log", "w")
    if args.server == "daphne":
        command = [str(ROOT / ".venv" / "bin" / "daphne"), "-b", "127.0.0.1", "-p", str(port),
                   "rfm_portal.asgi:application"]
    else:
        command = [PYTHON, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    server = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ), stdout=server_log, stderr=subprocess.STDOUT)
    results = []
    try:
        wait_port(port)
        for n in args.consumers:
            if args.backlog:
                r = run_once(n, 0, 0, port, session.session_key, args.batch, args.partitions, backlog=args.backlog,
                             server_pid=server.pid)
                results.append(r)
                print(json.dumps(r), flush=True)
            for rate in args.rates:
                r = run_once(n, rate, args.duration, port, session.session_key, args.batch, args.partitions,
                             server_pid=server.pid)
                results.append(r)
                print(json.dumps(r), flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        session.delete()
    print(f"\npartitions {args.partitions}, batch ≤ {args.batch}, server {args.server}")
    print("\n| consumers | target events/s | sustained events/s | kept up | XADD→websocket p50 / p99 | "
          "XADD→apply p50 / p99 | CPU / event: consumers, PostgreSQL, web | load avg (1 min) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        ws = f"{r['ws_p50_ms']:.0f} / {r['ws_p99_ms']:.0f} ms" if r["ws_p50_ms"] is not None else "–"
        cm = f"{r['commit_p50_ms']:.0f} / {r['commit_p99_ms']:.0f} ms" if r["commit_p50_ms"] is not None else "–"
        target = f"backlog of {r['backlog']:,}" if r["backlog"] else f"{r['target_rate']:.0f}"
        cpu = " / ".join(f"{r[k] if r[k] is not None else float('nan'):.2f}" for k in
                         ("consumer_cpu_ms_per_event", "postgres_cpu_ms_per_event", "server_cpu_ms_per_event"))
        print(f"| {r['consumers']} | {target} | {r['sustained_eps']:.0f} | "
              f"{'yes' if r['kept_up'] else 'no (+' + str(r['drain_after_s']) + ' s)'} | {ws} | {cm} | "
              f"{cpu} ms | {r['load_avg_1m'][0]:.1f} → {r['load_avg_1m'][1]:.1f} |")

if __name__ == "__main__":
    main()
