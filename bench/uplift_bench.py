"""Benchmark of the uplift capability: training per stage at 20k and 100k campaign customers, truth recovery,
IHDP, and ``POST /uplift_score`` latency (single record and a 10,000-record batch).

1. Pure pipeline (no database): generate customers with continuous acquisition (≈ 75 % of them are in the
   campaign), build features as of ``sent_at`` (``build_features_at``), ``train_uplift`` with the default
   config (both learners, 200 trees, 20 bootstrap refits, 30 % held out), then score every customer as of
   the end of the data with the champion. Wall time per stage; the champion's held-out Qini as a share of the
   oracle's (ranking by ``true_uplift``), correlation with ``true_uplift`` and the share of true sleeping dogs
   (``true_uplift`` < 0) not recommended for contact.
2. IHDP surface B (econml's bundled covariates), draws 0–5: √PEHE and ATE error of both learners
   (``--sizes --skip-api`` runs this part alone).
3. API: a scratch PostgreSQL database (default ``rfm_bench_uplift``; ``DATABASE_URL`` names the server),
   migrated; the 20k champion registered and promoted as the active ``uplift`` version; Django's in-process
   test client with a logged-in analyst (no HTTP server: the view, DRF validation, model lookup and scoring)
   times one payload record (p50/p95 over ``--single`` calls) and a 10,000-record payload (median of
   ``--repeats``).

    .venv/bin/python bench/uplift_bench.py [--sizes 20000 100000] [--single 200] [--repeats 3] [--skip-api]
    .venv/bin/python bench/uplift_bench.py --sizes --skip-api     # IHDP only
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rfm_portal.customers.features import build_features  # noqa: E402
from rfm_portal.customers.generator import GeneratorParams, generate  # noqa: E402
from uplift.pipeline import UpliftConfig, ihdp_benchmark, oracle_share, train_uplift  # noqa: E402
from uplift.synthetic import campaign_frame, transactions_frame  # noqa: E402


def pipeline_run(campaign_customers: int, seed: int = 2024) -> tuple[object, dict]:
    n = round(campaign_customers / 0.75)
    out: dict = {"campaign_target": campaign_customers, "customers": n}
    t0 = time.perf_counter()
    data = generate(n, seed, params=GeneratorParams(acquisition_share=1.0))
    out["generate_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    frame, truth = campaign_frame(data)
    out["features_at_send_s"] = time.perf_counter() - t0
    out["campaign_customers"] = len(frame)
    t0 = time.perf_counter()
    result = train_uplift(frame, UpliftConfig())
    out["train_s"] = time.perf_counter() - t0
    out["stages"] = {k: round(v, 2) for k, v in result.timings.items()}
    model = result.models[result.champion]
    out["champion"] = result.champion
    ho = frame.loc[result.holdout_index]
    held = model.score(ho)
    out["oracle_share"] = oracle_share(ho["converted"].to_numpy(), ho["treated"].to_numpy(),
                                       held["uplift"].to_numpy(), truth.loc[result.holdout_index].to_numpy())
    out["qini"] = {k: round(result.evaluation[k]["qini"], 5) for k in
                   (*result.models, "most_likely_buyers", "highest_churn_risk", "random")}
    s = model.score(frame)
    out["corr_true_uplift"] = float(np.corrcoef(s["uplift"], truth)[0, 1])
    dogs = truth < 0
    out["sleeping_dogs"] = int(dogs.sum())
    out["sleeping_dogs_not_contacted"] = float((s.loc[dogs, "recommendation"] != "contact").mean())
    # the challenger on the same truth, for comparison
    other = [k for k in result.models if k != result.champion]
    if other:
        so = result.models[other[0]].score(frame)
        out["challenger_corr_true_uplift"] = float(np.corrcoef(so["uplift"], truth)[0, 1])
    tx = transactions_frame(data)
    cutoff = pd.Timestamp(data.meta["cutoff"], tz="UTC")
    t0 = time.perf_counter()
    X = build_features(tx, cutoff)
    out["features_now_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = model.score(X)
    out["score_all_s"] = time.perf_counter() - t0
    out["scored"] = len(scores)
    out["groups"] = scores["group"].value_counts().to_dict()
    return model, out


def api_run(model: object, single: int, repeats: int) -> dict:
    db = os.environ.get("UPLIFT_BENCH_DB", "rfm_bench_uplift")
    server = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres").rsplit("/", 1)[0]
    import subprocess

    subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", db], check=True)
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", db], check=True)
    os.environ["DATABASE_URL"] = f"{server}/{db}"
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rfm_portal.settings")
    import tempfile

    os.environ["ARTIFACT_ROOT"] = tempfile.mkdtemp(prefix="uplift_bench_")
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from rfm_portal.accounts.models import User
    from rfm_portal.customers.features import features_to_payload
    from rfm_portal.mlops.services import complete_model_version, promote, start_model_version, write_artifact

    call_command("migrate", verbosity=0)
    mv = start_model_version("uplift", {"bench": True})
    model.metrics = {**model.metrics, "registry": {"kind": "uplift", "version": mv.version, "id": mv.pk}}
    path, _ = write_artifact("uplift", mv.version, model)
    promote(complete_model_version(mv, {"learner": model.learner}, path))
    user = User.objects.create_user("bench", "b@example.com", "pw-bench-123", role=User.Role.ANALYST)
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    data = generate(14_000, 99, params=GeneratorParams(acquisition_share=1.0))
    X = build_features(transactions_frame(data), pd.Timestamp(data.meta["cutoff"], tz="UTC"))
    records = features_to_payload(X.head(10_000))
    for r in records:
        r.pop("country", None)
    import json

    def post(payload: dict) -> float:
        body = json.dumps(payload)
        t0 = time.perf_counter()
        r = client.post("/uplift_score", body, content_type="application/json")
        elapsed = time.perf_counter() - t0
        assert r.status_code == 200, r.content[:300]
        return elapsed

    post({"features": records[0]})  # warm: loads the artifact once
    lat = [post({"features": records[i % len(records)]}) for i in range(single)]
    batch = [post({"features": records}) for _ in range(repeats)]
    subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", db], check=False)
    return {"single_p50_ms": 1000 * statistics.median(lat), "single_p95_ms": 1000 * float(np.quantile(lat, 0.95)),
            "batch_10k_median_s": statistics.median(batch), "batch_rows_per_s": 10_000 / statistics.median(batch),
            "records": len(records), "learner": model.learner}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[20_000, 100_000])  # none: skip stage 1
    parser.add_argument("--single", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-api", action="store_true")
    parser.add_argument("--ihdp-draws", type=int, nargs="*", default=list(range(6)))
    args = parser.parse_args()
    first_model = None
    for size in args.sizes:
        model, out = pipeline_run(size)
        first_model = first_model or model
        print(f"[pipeline {size:,}] " + ", ".join(f"{k}={round(v, 3) if isinstance(v, float) else v}"
                                                   for k, v in out.items()), flush=True)
    t0 = time.perf_counter()
    rows = [ihdp_benchmark(seed) for seed in args.ihdp_draws]
    for kind in ("causal_forest", "t_learner"):
        pehe = [r[kind]["sqrt_pehe"] for r in rows]
        ate = [r[kind]["ate_error"] for r in rows]
        print(f"[ihdp {kind}] sqrt_pehe mean={np.mean(pehe):.3f} per draw={np.round(pehe, 2).tolist()} "
              f"ate_error mean={np.mean(ate):.3f} per draw={np.round(ate, 2).tolist()}", flush=True)
    print(f"[ihdp] draws {args.ihdp_draws} in {time.perf_counter() - t0:.1f} s; load average "
          f"{open('/proc/loadavg').read().split()[0]}", flush=True)
    if not args.skip_api and first_model is not None:
        print("[api] " + ", ".join(f"{k}={round(v, 3) if isinstance(v, float) else v}"
                                   for k, v in api_run(first_model, args.single, args.repeats).items()), flush=True)


if __name__ == "__main__":
    main()
