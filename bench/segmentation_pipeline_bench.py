"""Benchmark of the pure Segmentation pipeline: "pandas groupby in memory".

Generates a synthetic transaction log in memory with numpy (default 1,000,000 customers and
about 20,000,000 invoice lines), then times each stage of ``segmentation.pipeline``:
RFM via pandas groupby, quintile scores + named segments, the K-Means transform, the k-search
(k = 2–10, silhouette on a 10,000-row sample), the final clustering with names, and the
statistics behind the charts. Prints wall time and the process's peak resident memory after
each stage. The PostgreSQL side of the comparison lives with the services.

Run from the repository root::

    .venv/bin/python bench/segmentation_pipeline_bench.py                      # 1M / ~20M
    .venv/bin/python bench/segmentation_pipeline_bench.py --customers 100000   # quicker
    .venv/bin/python bench/segmentation_pipeline_bench.py --compare-minibatch  # + MiniBatchKMeans at chosen k
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from segmentation.pipeline import (
    RFMTransform,
    cluster_rfm,
    group_stats,
    migration_matrix,
    pareto_curve,
    pareto_share_at,
    rf_grid,
    rfm_table,
    score_rfm,
)

HORIZON_DAYS = 730
START = pd.Timestamp("2024-01-01", tz="UTC")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(n_customers: int, lines_per_customer: float, seed: int) -> pd.DataFrame:
    """A vectorised synthetic retail log with heterogeneous customers.

    Per customer: a purchase rate (gamma), a first day (uniform over two years), a lifetime
    (exponential, mean one year) and a typical basket value (lognormal). Invoices fall
    uniformly in the active window; each invoice has 1 + Poisson(1.5) lines; 3 % of lines are
    returns (negative amounts, ``is_return`` true).
    """
    rng = np.random.default_rng(seed)
    lines_per_invoice = 2.5
    invoices_mean = lines_per_customer / lines_per_invoice
    rate = rng.gamma(shape=1.2, scale=(invoices_mean - 1) / 1.2, size=n_customers)
    n_inv = 1 + rng.poisson(rate)
    first = rng.uniform(0, HORIZON_DAYS - 1, n_customers)
    last = np.minimum(first + rng.exponential(365.0, n_customers), HORIZON_DAYS - 1e-3)
    basket = rng.lognormal(3.5, 0.7, n_customers)

    inv_customer = np.repeat(np.arange(n_customers, dtype=np.int64), n_inv)
    inv_day = first[inv_customer] + rng.random(inv_customer.size) * (last - first)[inv_customer]
    n_lines = 1 + rng.poisson(lines_per_invoice - 1, inv_customer.size)
    line_invoice = np.repeat(np.arange(inv_customer.size, dtype=np.int64), n_lines)
    del n_lines
    line_customer = inv_customer[line_invoice]
    line_ns = (inv_day[line_invoice] * 86_400e9).astype(np.int64) + START.value
    del inv_day, inv_customer
    amount = basket[line_customer] / lines_per_invoice * rng.lognormal(0.0, 0.5, line_invoice.size)
    is_return = rng.random(line_invoice.size) < 0.03
    amount[is_return] *= -1.0
    return pd.DataFrame(
        {
            "customer_id": line_customer + 10_000_000,
            "invoice": line_invoice,
            "invoiced_at": pd.to_datetime(line_ns, unit="ns", utc=True),
            "amount": amount,
            "is_return": is_return,
        }
    )


def stage(name: str, fn: Callable[[], Any], results: list[tuple[str, float, float]]) -> Any:
    """Run one stage; print wall time, CPU time of this process (all threads) and peak RSS.

    CPU time is printed because wall time is inflated when other work shares the machine.
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    value = fn()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    results.append((name, seconds, peak_rss_mb()))
    print(f"{name:<46} wall {seconds:8.2f} s  cpu {cpu:8.2f} s  peak RSS {peak_rss_mb():7.0f} MiB", flush=True)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--lines-per-customer", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--compare-minibatch",
        action="store_true",
        help="also time MiniBatchKMeans at the chosen k (why it is not used)",
    )
    args = parser.parse_args()

    print(f"segmentation pipeline bench: {args.customers:,} customers, ~{args.lines_per_customer:g} lines each")
    print(f"numpy {np.__version__}, pandas {pd.__version__}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    results: list[tuple[str, float, float]] = []

    tx = stage(
        "generate transactions (numpy)", lambda: generate(args.customers, args.lines_per_customer, args.seed), results
    )
    print(
        f"  {len(tx):,} lines, {tx['invoice'].nunique():,} invoices, "
        f"{tx.memory_usage(deep=True).sum() / 2**20:,.0f} MiB"
    )

    rfm = stage("rfm_table (pandas + numpy, in memory)", lambda: rfm_table(tx), results)
    print(f"  {len(rfm):,} customers with a purchase, cut-off {rfm.attrs['cutoff'].date()}")
    scored = stage("score_rfm (quintiles + named segments)", lambda: score_rfm(rfm), results)
    print("  " + ", ".join(f"{k}: {v:,}" for k, v in scored["segment"].value_counts(sort=False).items()))

    stage("RFMTransform fit + transform", lambda: RFMTransform.fit(rfm).transform(rfm), results)
    clustering = stage("cluster_rfm (k-search 2-10 + final)", lambda: cluster_rfm(rfm, random_state=0), results)
    search = clustering.search
    assert search is not None
    print(f"  algorithm {search.algorithm}, silhouette sample {search.sample_size:,}")
    print(search.table().to_string(index=False, float_format=lambda v: f"{v:,.4f}"))
    print(f"  {clustering.explanation}")
    cols = ["name", "customers", "revenue_share", "median_recency_days", "median_frequency", "median_monetary"]
    print(clustering.profiles[cols].to_string(float_format=lambda v: f"{v:,.3f}"))

    def stats() -> None:
        group_stats(scored, scored["segment"])
        group_stats(rfm, clustering.labels)
        curve = pareto_curve(rfm["monetary"])
        print(f"  top 20% of customers bring {pareto_share_at(curve, 0.2):.1%} of revenue")
        rf_grid(scored)

    stage("group_stats + pareto_curve + rf_grid", stats, results)

    def migration() -> None:
        before = pd.Series(scored["segment"].to_numpy(), index=scored["customer_id"].to_numpy())
        later = score_rfm(rfm_table(tx, cutoff=rfm.attrs["cutoff"] - pd.Timedelta(days=90)))
        after = pd.Series(later["segment"].to_numpy(), index=later["customer_id"].to_numpy())
        matrix = migration_matrix(after, before)
        print(f"  migration (cut-off −90 days → now) over {int(matrix.to_numpy().sum()):,} customers")

    stage("migration_matrix (incl. 2nd rfm_table+score)", migration, results)

    if args.compare_minibatch:
        from sklearn.cluster import MiniBatchKMeans

        x = RFMTransform.fit(rfm).transform(rfm)
        k = clustering.k
        chosen_inertia = search.inertia[list(search.k_values).index(k)]
        for batch in (4096, 65_536):

            def minibatch(batch: int = batch) -> MiniBatchKMeans:
                return MiniBatchKMeans(n_clusters=k, n_init=3, batch_size=batch, random_state=0).fit(x)

            model = stage(f"MiniBatchKMeans k={k} batch={batch} (comparison)", minibatch, results)
            print(
                f"  inertia MiniBatch {model.inertia_:,.0f} vs {search.algorithm} {chosen_inertia:,.0f} "
                f"({model.inertia_ / chosen_inertia - 1:+.2%})"
            )

    total = sum(s for name, s, _ in results if not name.startswith(("generate", "MiniBatch")))
    print(
        f"pipeline total (excluding data generation and comparisons): {total:.1f} s; peak RSS {peak_rss_mb():,.0f} MiB"
    )


if __name__ == "__main__":
    main()
