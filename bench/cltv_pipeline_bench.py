"""Bench: CLTV fit + score for synthetic customers (default 1,000,000).

Customers are drawn from the BG/NBD + Gamma-Gamma generative process (``cltv.simulation``) with
first purchases spread over two years and recency/T in whole days (as a summary built from dated
transactions has them), unit = weeks. Timed:

* BG/NBD fit on the unique (x, t_x, T) rows with counts as weights (``fit_transaction_model``)
  vs lifetimes' plain per-customer fit on the same data (``--plain-n`` customers; 0 = skip);
* Gamma-Gamma fit; closed-form scoring (P(alive), 30/90/365-day purchases, AOV, CLV);
* the posterior CLV simulation (``--draws`` per customer) → P10/P50/P90.

Run: ``.venv/bin/python bench/cltv_pipeline_bench.py [--n 1000000] [--plain-n 1000000] [--draws 200]``
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lifetimes import BetaGeoFitter

from cltv import pipeline as P
from cltv.simulation import simulate_population, simulate_spend

TRUTH_WEEKS = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
GG_TRUTH = {"p": 6.0, "q": 4.0, "v": 15.0}


def synthetic_summary(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t_days = rng.integers(1, 730, n)
    draws = simulate_population("bgnbd", TRUTH_WEEKS, t_days / 7.0, rng)
    rec_days = np.minimum(np.round(draws["recency"] * 7.0), t_days)
    _, monetary = simulate_spend(GG_TRUTH, draws["frequency"], rng)
    return pd.DataFrame(
        {
            "frequency": draws["frequency"],
            "recency": rec_days / 7.0,
            "T": t_days / 7.0,
            "monetary_value": np.round(monetary, 2),
            "first_purchase": np.datetime64("2026-01-01") - t_days.astype("timedelta64[D]"),
        }
    )


def timed(label: str, fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    seconds = time.perf_counter() - t0
    print(f"{label:<58s} {seconds:8.2f} s")
    return out, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--plain-n", type=int, default=1_000_000, help="customers for the plain lifetimes fit")
    parser.add_argument("--draws", type=int, default=200)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    summary, _ = timed(f"generate {args.n:,} synthetic customers", synthetic_summary, args.n)
    x, tx, T, m = (summary[c].to_numpy() for c in ("frequency", "recency", "T", "monetary_value"))

    fit, t_weighted = timed("BG/NBD fit, unique rows + weights (ours)", P.fit_transaction_model, x, tx, T, "bgnbd")
    print(f"  unique (x, t_x, T) rows: {fit.n_unique:,} of {fit.n_customers:,} ({fit.n_customers / fit.n_unique:.1f}x)")
    print(
        "  params:", {k: round(v, 4) for k, v in fit.params.items()}, "truth:", TRUTH_WEEKS, "penalizer:", fit.penalizer
    )

    if args.plain_n:
        k = min(args.plain_n, args.n)
        plain, t_plain = timed(
            f"BG/NBD fit, plain lifetimes on {k:,} customers", lambda: BetaGeoFitter().fit(x[:k], tx[:k], T[:k])
        )
        if k < args.n:
            sub, t_sub = timed(
                f"BG/NBD fit, unique rows on the same {k:,}", P.fit_transaction_model, x[:k], tx[:k], T[:k]
            )
            print(
                f"  speed-up on {k:,}: {t_plain / t_sub:.1f}x; max |Δparam|/param = "
                f"{max(abs(sub.params[p] / plain.params_[p] - 1) for p in sub.params):.2e}"
            )
        else:
            print(
                f"  speed-up: {t_plain / t_weighted:.1f}x; max |Δparam|/param = "
                f"{max(abs(fit.params[p] / plain.params_[p] - 1) for p in fit.params):.2e}"
            )

    gg, _ = timed("Gamma-Gamma fit (repeat buyers, unique rows)", P.fit_gamma_gamma, x, m)
    print(
        "  params:",
        {k: round(v, 3) for k, v in gg.params.items()},
        "truth:",
        GG_TRUTH,
        f"corr(x, m) = {gg.extra['frequency_monetary_corr']:.3f}",
    )

    bundle = P.CLTVModelBundle(
        model="bgnbd",
        params=fit.params,
        unit="W",
        gamma_gamma=gg.params,
        penalizers={"transactions": fit.penalizer, "gamma_gamma": gg.penalizer},
        n_draws=args.draws,
    )
    _closed, t_closed = timed(
        "closed-form scores (P(alive), 3 horizons, AOV, CLV)", P.score_frame, bundle, summary, with_uncertainty=False
    )
    print(f"  throughput: {args.n / t_closed:,.0f} customers/s")
    (scores, cohorts), t_sim = timed(
        f"full scores + {args.draws}-draw simulation + monthly cohorts", P.score_with_cohorts, bundle, summary
    )
    print(
        f"  throughput: {args.n / t_sim:,.0f} customers/s; simulated mean / closed form = "
        f"{scores['clv_sim_mean'].sum() / scores['clv'].sum():.4f}"
    )
    print(
        f"  cohorts: {len(cohorts)}; total CLV {scores['clv'].sum():,.0f} "
        f"(P10 {cohorts['p10'].sum():,.0f} .. P90 {cohorts['p90'].sum():,.0f} summed over cohort bands)"
    )


if __name__ == "__main__":
    main()
