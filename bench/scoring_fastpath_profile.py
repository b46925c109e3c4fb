"""CPU per single-row scoring call, in process, without an HTTP server: Django's path, the fast path, FastAPI.

The three ASGI applications the load bench (bench/serving_load_bench.py) serves, called directly and one after
the other on one event loop with the same request bytes: the portal's Django handler alone
(``SyncChainASGIHandler``: middleware, DRF, one thread hop), the portal's HTTP application (the scoring fast
path in front of it, rfm_portal.serving.fastpath) and the bench's minimal FastAPI scorer on the same
artifacts. CPU time is the process's (all threads), so it holds on a busy machine; the HTTP server's own
cost (uvicorn, httptools), the same for every app, is not in it. Then cProfile of the fast path: what is left.

Same scratch setup as the load bench (sample import, churn + CLTV trained, an API key) in a database of its
own, dropped afterwards; production-like settings (DEBUG off) and the per-process caches on with a long
interval, i.e. the steady state between two cache refreshes.

    .venv/bin/python bench/scoring_fastpath_profile.py [--calls 2000] [--database rfm_serve_profile]
"""

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from serving_load_bench import drop_database, make_fastapi_app, prepare  # noqa: E402


def request_parts(path: str, body: dict[str, Any], key: str | None) -> tuple[dict, bytes]:
    raw = json.dumps(body).encode()
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
               (b"content-length", str(len(raw)).encode())]
    if key:
        headers.append((b"authorization", f"Api-Key {key}".encode()))
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": headers, "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000),
             "state": {}}
    return scope, raw


async def call(app: Any, scope: dict, raw: bytes) -> tuple[int, bytes]:
    sent = False
    out: dict[str, Any] = {"body": b""}

    async def receive() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await asyncio.Event().wait()  # the client stays connected
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        else:
            out["body"] += message.get("body", b"")

    await app(dict(scope), receive, send)
    return out["status"], out["body"]


async def cpu_per_call(app: Any, scope: dict, raw: bytes, calls: int) -> tuple[float, bytes]:
    for _ in range(min(100, calls)):
        status, body = await call(app, scope, raw)
        assert status == 200, (status, body[:300])
    cpu0 = time.process_time()
    for _ in range(calls):
        await call(app, scope, raw)
    return 1e6 * (time.process_time() - cpu0) / calls, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="rfm_serve_profile")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--profile-calls", type=int, default=3000)
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args()
    print(f"load average before: {Path('/proc/loadavg').read_text().strip()}", flush=True)
    _, _, key, artifacts, churn_body, cltv_body = prepare(args.database, 12)
    try:
        run(args, key, artifacts, churn_body, cltv_body)
    finally:
        from django.db import connections

        connections.close_all()
        connections["default"].close_pool()
        if not args.keep_database:
            drop_database(args.database)
    print(f"load average after: {Path('/proc/loadavg').read_text().strip()}", flush=True)


def run(args: argparse.Namespace, key: str, artifacts: dict[str, str], churn_body: dict, cltv_body: dict) -> None:
    from django.conf import settings

    settings.DEBUG = False
    settings.API_KEY_CACHE_SECONDS = 3600
    settings.ACTIVE_MODEL_RECHECK_SECONDS = 3600
    os.environ.update(artifacts)
    from rfm_portal.serving.asgi import SyncChainASGIHandler
    from rfm_portal.serving.fastpath import ScoringFastPath

    django_app = SyncChainASGIHandler()
    fast = ScoringFastPath(django_app)
    fastapi = make_fastapi_app()
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    cases = [("/predict_churn", churn_body), ("/predict_cltv", cltv_body)]
    print(f"\nCPU µs per call ({args.calls} calls each, after 100 warm-up calls; load average "
          f"{os.getloadavg()[0]:.1f})")
    print(f"{'endpoint':16s} {'Django path':>12s} {'fast path':>12s} {'FastAPI':>12s} {'fast/FastAPI':>13s}"
          f" {'Django/FastAPI':>15s}")
    for path, body in cases:
        scope, raw = request_parts(path, body, key)
        plain_scope, _ = request_parts(path, body, None)
        dj, dj_body = loop.run_until_complete(cpu_per_call(django_app, scope, raw, args.calls))
        answered = fast.answered
        fp, fp_body = loop.run_until_complete(cpu_per_call(fast, scope, raw, args.calls))
        assert fast.answered - answered >= args.calls, "the fast path did not answer"
        assert fp_body == dj_body, "the fast path's body differs from Django's"
        fa, _ = loop.run_until_complete(cpu_per_call(fastapi, plain_scope, raw, args.calls))
        print(f"{path:16s} {dj:12.0f} {fp:12.0f} {fa:12.0f} {fp / fa:13.2f} {dj / fa:15.2f}", flush=True)
    for path, body in cases:
        scope, raw = request_parts(path, body, key)
        profiler = cProfile.Profile()

        async def many(n: int = args.profile_calls, scope: dict = scope, raw: bytes = raw) -> None:
            for _ in range(n):
                await call(fast, scope, raw)

        profiler.enable()
        loop.run_until_complete(many())
        profiler.disable()
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text).strip_dirs().sort_stats("cumulative")
        stats.print_stats(28)
        print(f"\ncProfile of the fast path, {path}, {args.profile_calls} calls (cumulative):")
        print("\n".join(line for line in text.getvalue().splitlines()[6:] if line.strip()))
    loop.close()


if __name__ == "__main__":
    main()
