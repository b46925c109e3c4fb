"""Benchmark of the Lookalikes capability: training, FAISS at 1M vectors, and POST /similar_customers.

Three parts (default: all; choose with --parts train,index,service):

* ``train``: ``pipeline.train_customer2vec`` on generated data (``generator.generate``) at 20k and 100k
  customers with the settings' defaults (32 dims, 15 epochs, 5 negatives, 1 thread), plus index/map
  build and the taste check against the generator's truth (purity@10, RFM-only baseline).
* ``index``: 1,000,000 L2-normalised vectors of dimension 32 (clustered random: 2,000 Gaussian
  centres, like customer tastes), exact (``IndexFlatIP``), HNSW (M=32, efConstruction=80) and IVF-Flat
  (nlist=1,024, k-means on 102,400 of the vectors); build time, and for ``--queries`` single-vector
  queries (k=10, one query per call, one FAISS thread) p50/p99 latency and recall@10 against exact
  search, at several efSearch / nprobe.
* ``service``: a scratch PostgreSQL database (default ``rfm_bench_lookalike``), the committed sample
  (3,000 customers) imported and trained through the service, then ``manage.py serve`` (DEBUG=1,
  daphne) on a free loopback port and, over one keep-alive connection, ``--single`` calls of
  ``{"customer_id": …, "k": 10}``, and 20 calls each of a 1,000-id seed audience (k=1,000) and a
  5-product cold start (k=10); p50/p99.

    .venv/bin/python bench/embeddings_bench.py [--parts train,index,service] [--vectors 1000000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYTHON = str(ROOT / ".venv" / "bin" / "python")


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return 1000 * s[min(len(s) - 1, round(q * (len(s) - 1)))]


# --- training ------------------------------------------------------------------------------------


def bench_train(sizes: list[int]) -> None:
    import pandas as pd

    from embeddings import pipeline
    from rfm_portal.customers.generator import generate

    for n in sizes:
        t0 = time.perf_counter()
        data = generate(n, seed=42)
        t = data.transactions[data.transactions["quantity"] > 0]
        frame = pd.DataFrame({"customer_id": t["customer_id"].astype(str), "invoice": t["invoice"].astype(str),
                              "product_id": t["sku"], "category": t["category"],
                              "invoiced_at": pd.to_datetime(t["invoiced_at"]),
                              "amount": t["quantity"] * t["unit_price"]})
        gen_s = time.perf_counter() - t0
        config = pipeline.EmbeddingConfig(map_method="pca")
        baskets = pipeline.encode_baskets(frame)
        trained = pipeline.train_customer2vec(baskets, config)
        import dataclasses

        coded = dataclasses.replace(baskets, customer_ids=np.arange(len(baskets.customer_ids)),
                                    product_ids=np.arange(len(baskets.product_ids)))
        t1 = time.perf_counter()
        bundle, metrics = pipeline.build_bundle(coded, trained, config, external_ids=baskets.customer_ids,
                                                skus=baskets.product_ids, product_names=baskets.product_ids)
        build_s = time.perf_counter() - t1
        truth = data.truth.assign(customer_id=data.truth["customer_id"].astype(str)).set_index("customer_id")
        labels = truth.loc[baskets.customer_ids, "taste_cluster"].to_numpy()
        rfm = pipeline.rfm_features(frame).loc[baskets.customer_ids].to_numpy(dtype=np.float32)
        sample = np.sort(np.random.default_rng(0).choice(len(labels), 2000, replace=False))
        purity = pipeline.knn_labels_purity(bundle.vectors, labels, 10, sample)
        purity_rfm = pipeline.euclidean_knn_purity(rfm, labels, 10, sample)
        holdout = np.mean([pipeline.seed_holdout_recall(bundle.vectors, labels, c, seed=1) for c in range(6)])
        holdout_rfm = np.mean([pipeline.seed_holdout_recall(rfm, labels, c, seed=1, metric="euclidean")
                               for c in range(6)])
        print(f"train n={n:,}: {len(baskets.lines):,} purchase lines, {trained.n_basket_pairs:,} basket pairs; "
              f"generate {gen_s:.1f} s; train {trained.seconds:.1f} s ({config.epochs} epochs, "
              f"{trained.seconds / config.epochs:.2f} s/epoch, {config.threads} thread); index+map "
              f"{build_s:.1f} s ({metrics['index_kind']}, recall@10 {metrics['index_recall_at_10']:.3f}); "
              f"purity@10 {purity:.3f} (RFM {purity_rfm:.3f}, chance 0.167); seed-holdout recall "
              f"{holdout:.3f} (RFM {holdout_rfm:.3f})", flush=True)


# --- FAISS at scale ---------------------------------------------------------------------------------


def bench_index(n: int, n_queries: int, dim: int = 32) -> None:
    import faiss

    from embeddings import pipeline

    faiss.omp_set_num_threads(2)  # builds use both cores; queries below are timed on one
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2000, dim)).astype(np.float32)
    x = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        x[start:start + m] = centres[rng.integers(0, len(centres), m)] + 0.7 * rng.normal(size=(m, dim))
    x = pipeline.normalise(x)
    queries = pipeline.normalise(x[rng.choice(n, n_queries, replace=False)] + 0.05 * rng.normal(size=(n_queries, dim)))
    print(f"index: {n:,} vectors × {dim} dims, {n_queries:,} single-vector queries, k=10", flush=True)

    def timed_queries(index) -> tuple[list[float], np.ndarray]:
        faiss.omp_set_num_threads(1)
        times, found = [], np.empty((n_queries, 10), dtype=np.int64)
        for i in range(n_queries):
            t0 = time.perf_counter()
            _, ids = index.search(queries[i:i + 1], 10)
            times.append(time.perf_counter() - t0)
            found[i] = ids[0]
        faiss.omp_set_num_threads(2)
        return times, found

    t0 = time.perf_counter()
    exact = pipeline.build_index(x, "exact")
    build = time.perf_counter() - t0
    times, truth = timed_queries(exact)
    print(f"  exact: build {build:.1f} s; query p50 {pct(times, .5):.2f} ms p99 {pct(times, .99):.2f} ms; "
          f"recall@10 1.000", flush=True)

    def recall(found: np.ndarray) -> float:
        return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth.tolist(), found.tolist(),
                                                                          strict=True)]))

    for kind, efforts, label, extra in (("hnsw", (16, 32, 64, 128), "efSearch", {}),
                                        ("ivf", (8, 16, 32, 64), "nprobe", {"nlist": 1024})):
        t0 = time.perf_counter()
        index = pipeline.build_index(x, kind, hnsw_m=32, ef_construction=80, **extra)
        build = time.perf_counter() - t0
        print(f"  {kind}: build {build:.1f} s", flush=True)
        for effort in efforts:
            pipeline.set_search_effort(index, effort)
            times, found = timed_queries(index)
            print(f"    {label}={effort}: p50 {pct(times, .5):.3f} ms p99 {pct(times, .99):.3f} ms "
                  f"recall@10 {recall(found):.3f}", flush=True)
        del index


# --- the endpoint -------------------------------------------------------------------------------------


def free_port() -> int:
    for port in range(18510, 18599):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port in 18510-18598")


def wait_for(port: int, timeout: float = 90.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


class Client:
    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        self.headers = {"Content-Type": "application/json", **headers}

    def post(self, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        data = json.dumps(body).encode()
        for attempt in (1, 2):
            t0 = time.perf_counter()
            try:
                self.conn.request("POST", "/similar_customers", body=data, headers=self.headers)
                resp = self.conn.getresponse()
                payload = resp.read()
                break
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                self.conn.close()
                if attempt == 2:
                    raise
        elapsed = time.perf_counter() - t0
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {payload[:300]!r}")
        return elapsed, json.loads(payload)


def bench_service(database_url: str, db_name: str, single: int) -> None:
    import psycopg

    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}"')
        conn.execute(f'CREATE DATABASE "{db_name}"')
    url = database_url.rsplit("/", 1)[0] + f"/{db_name}"
    var = tempfile.mkdtemp(prefix="lookalike_bench_")
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "1", "RFM_VAR_DIR": var, "REDIS_URL": "",
           "DJANGO_SETTINGS_MODULE": "rfm_portal.settings", "EMBEDDINGS_MAP_METHOD": "pca"}
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    from embeddings import services
    from rfm_portal.accounts import services as account_services
    from rfm_portal.customers.models import Customer
    from rfm_portal.customers.services import import_transactions

    call_command("migrate", verbosity=0)
    job = import_transactions(ROOT / "data" / "sample.csv")
    t0 = time.perf_counter()
    mv = services.train_embeddings_model(truth_path=str(ROOT / "data" / "sample_truth.csv"))
    taste = mv.metrics["taste_check"]
    print(f"service: imported {job.rows_inserted:,} rows; train_embeddings_model {time.perf_counter() - t0:.1f} s "
          f"(v{mv.version}, {mv.metrics['n_customers']:,} customers; purity@10 {taste['purity_at_10']:.3f} vs RFM "
          f"{taste['purity_at_10_rfm']:.3f}; seed-holdout recall {taste['holdout_recall_mean']:.3f} vs RFM "
          f"{taste['holdout_recall_mean_rfm']:.3f})", flush=True)
    raw_key = account_services.api_key_create(name="bench").raw_key
    ids = list(Customer.objects.order_by("pk").values_list("external_id", flat=True))
    skus = ["GA-001", "GA-004", "HK-002", "GA-010", "HK-007"]
    port = free_port()
    proc = subprocess.Popen([PYTHON, "manage.py", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(port)
        client = Client(port, {"Authorization": f"Api-Key {raw_key}"})
        for i in range(5):
            client.post({"customer_id": ids[i], "k": 10})
        times = [client.post({"customer_id": ids[i % len(ids)], "k": 10})[0] for i in range(single)]
        print(f"  customer_id, k=10: {single} calls p50 {pct(times, .5):.1f} ms p99 {pct(times, .99):.1f} ms",
              flush=True)
        rng = np.random.default_rng(0)
        times = []
        for _ in range(20):
            seed = [ids[i] for i in rng.choice(len(ids), 1000, replace=False)]
            elapsed, body = client.post({"customer_ids": seed, "k": 1000, "exclude_seed": True})
            times.append(elapsed)
        print(f"  1,000-id seed audience, k=1,000 ({body['count']} results): p50 {pct(times, .5):.1f} ms "
              f"p99 {pct(times, .99):.1f} ms", flush=True)
        times = [client.post({"products": skus, "k": 10})[0] for _ in range(20)]
        print(f"  cold start from 5 products, k=10: p50 {pct(times, .5):.1f} ms p99 {pct(times, .99):.1f} ms",
              flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="train,index,service")
    parser.add_argument("--sizes", default="20000,100000", help="customers for the training part")
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--single", type=int, default=300)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--db-name", default="rfm_bench_lookalike")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if "train" in parts:
        bench_train([int(s) for s in args.sizes.split(",")])
    if "index" in parts:
        bench_index(args.vectors, args.queries)
    if "service" in parts:
        bench_service(args.database_url, args.db_name, args.single)


if __name__ == "__main__":
    main()
