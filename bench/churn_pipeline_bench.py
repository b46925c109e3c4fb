"""Batch churn scoring with explanations at scale: features → probabilities → SHAP top contributions.

    .venv/bin/python bench/churn_pipeline_bench.py --customers 1000000

Generates a seeded synthetic population with a planted BG/NBD-like purchase + dropout process
(``tests/churn/conftest.py``), trains both churn models on a customer subsample (the
out-of-time backtest of ``churn.pipeline.train_churn``), then times, for *all* customers:

* ``build_features`` as of the cut-off (the shared feature definition), with string id columns
  and again with categorical ones (what a DB reader can hand over cheaply),
* ``predict_proba`` + risk bands, for the logistic baseline and the LightGBM challenger,
* SHAP for every customer (LinearExplainer / TreeExplainer) and the vectorised top-k,
* the additivity check (base value + Σ SHAP = log-odds) on every row.

It prints one line per stage (seconds, customers per second) and the holdout AUCs beside the
truth's own ceiling.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from churn.explain import shap_explain, top_contributions  # noqa: E402
from churn.pipeline import ChurnConfig, make_training_set, train_churn  # noqa: E402
from rfm_portal.customers.features import build_features  # noqa: E402
from tests.churn.conftest import simulate_dropout_population  # noqa: E402


class Timer:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, int]] = []

    def run(self, label: str, n: int, fn, *args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        dt = time.perf_counter() - t0
        self.rows.append((label, dt, n))
        rate = f"{n / dt:>12,.0f} customers/s" if n else ""
        print(f"  {label:<48} {dt:8.2f} s {rate}", flush=True)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--train-customers", type=int, default=100_000,
                        help="customers whose history trains the models (the rest are only scored)")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1, help="LightGBM threads (training and TreeSHAP)")
    args = parser.parse_args()

    timer = Timer()
    print(f"churn pipeline bench: {args.customers:,} customers, seed {args.seed}, {args.threads} LightGBM threads")
    data = timer.run("simulate transactions (not a pipeline stage)", 0, simulate_dropout_population,
                     n_customers=args.customers, seed=args.seed)
    tx, customers = data.transactions, data.customers
    print(f"  -> {len(tx):,} transaction rows")

    ids = set(customers["customer_id"].iloc[: args.train_customers])
    train_tx = tx[tx["customer_id"].isin(ids)]
    cfg = ChurnConfig(n_jobs=args.threads)
    result = timer.run(f"train_churn (backtest, {len(ids):,} customers)", 0, train_churn,
                       train_tx, customers, data.cutoff, cfg)
    holdout = make_training_set(train_tx, customers, data.cutoff, cfg.horizon_days)
    truth = data.true_no_purchase_proba(holdout.feature_cutoff, cfg.horizon_days).reindex(holdout.X.index)
    from sklearn.metrics import roc_auc_score

    ceiling = roc_auc_score(holdout.y, truth)
    for name, m in result.metrics.items():
        print(f"  holdout {name:<9} ROC-AUC {m['roc_auc']:.4f}  PR-AUC {m['pr_auc']:.4f}  Brier {m['brier']:.4f}")
    print(f"  truth ceiling ROC-AUC {ceiling:.4f} (true P(no purchase in H)); champion: {result.champion}")

    X = timer.run("build_features (all customers, as of cut-off)", args.customers, build_features,
                  tx, data.cutoff, customers)
    cat_tx = tx.assign(**{c: tx[c].astype("category") for c in ("customer_id", "invoice", "category")})
    X_cat = timer.run("build_features (categorical id columns)", args.customers, build_features,
                      cat_tx, data.cutoff, customers)
    assert X_cat.equals(X)
    del cat_tx, X_cat
    n = len(X)
    for kind, bundle in result.holdout_models.items():
        print(f" [{kind}]")
        p = timer.run("predict_proba", n, bundle.predict_proba, X)
        timer.run("risk bands", n, bundle.bands.assign, p)
        expl = timer.run("SHAP (all features, every customer)", n, shap_explain, bundle, X)
        idx, _vals = timer.run(f"top-{args.top_k} contributions (vectorised)", n, top_contributions, expl, args.top_k)
        err = float(np.max(np.abs(expl.output() - bundle.decision_function(X))))
        top = pd.Series(np.asarray(expl.feature_names)[idx[:, 0]]).value_counts(normalize=True).head(3)
        print(f"  additivity max |base + ΣSHAP − log-odds| = {err:.2e}; top driver shares: "
              + ", ".join(f"{k} {v:.0%}" for k, v in top.items()))
        del expl
    total = sum(dt for label, dt, _ in timer.rows if not label.startswith("simulate"))
    print(f"total (excluding simulation): {total:.1f} s")


if __name__ == "__main__":
    main()
