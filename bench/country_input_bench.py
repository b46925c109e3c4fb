"""Does the customer's country help the models? Churn AUC and uplift Qini with and without it.

    .venv/bin/python bench/country_input_bench.py --customers 6000 --seeds 3

On the portal's generated data (rfm_portal/customers/generator.py), per seed:

* churn: the out-of-time backtest of ``churn.pipeline`` (features at cut-off − 2H, labels in the next H days;
  evaluated on features at cut-off − H, labels in the last H days), logistic and LightGBM, with the canonical
  features and with the canonical features + one-hot country (countries with ≥ 1 % of customers);
* uplift: ``uplift.pipeline.train_uplift`` on the generated randomised campaign (features as of the send
  date), T-learner and causal forest, Qini on the same stratified holdout, with and without one-hot country.

Prints each figure and the mean difference (with − without). The result decides the MODELS_USE_COUNTRY
default documented on the Limitations page and in docs/operations.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sklearn.metrics import roc_auc_score  # noqa: E402

from churn.pipeline import ChurnConfig, make_challenger, make_logistic, make_training_set  # noqa: E402
from rfm_portal.customers.features import FEATURE_COLUMNS, build_features  # noqa: E402
from rfm_portal.customers.generator import generate  # noqa: E402
from uplift.pipeline import UpliftConfig, train_uplift  # noqa: E402


def frames(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    data = generate(n, seed=seed)
    t = data.transactions
    tx = pd.DataFrame({
        "customer_id": t["customer_id"].astype(str), "invoice": t["invoice"].astype(str),
        "invoiced_at": pd.to_datetime(t["invoiced_at"], utc=True),
        "amount": t["quantity"].astype(float) * t["unit_price"].astype(float),
        "quantity": t["quantity"].astype(int),
        "is_return": (t["quantity"] < 0) | t["invoice"].astype(str).str.startswith("C"),
        "category": t["category"].astype(str),
    })
    customers = (t.groupby("customer_id", as_index=False)["country"].first()
                 .assign(customer_id=lambda d: d["customer_id"].astype(str)))
    cutoff = tx["invoiced_at"].max().normalize() + pd.Timedelta(days=1)  # the generator's cut-off: end + 1 day
    return tx, customers, data.campaigns, cutoff


def with_country(X: pd.DataFrame, countries: list[str]) -> tuple[pd.DataFrame, list[str]]:
    cols = []
    X = X.copy()
    for c in countries:
        name = f"country={c}"
        X[name] = (X["country"] == c).astype(float)
        cols.append(name)
    return X, cols


def churn_auc(tx, customers, cutoff, seed) -> dict[str, float]:
    cfg = ChurnConfig()
    H = cfg.horizon_days
    train = make_training_set(tx, customers, cutoff - pd.Timedelta(days=H), H)
    hold = make_training_set(tx, customers, cutoff, H)
    share = customers["country"].value_counts(normalize=True)
    countries = sorted(share[share >= 0.01].index)
    out = {}
    for use_country in (False, True):
        Xtr, Xho, feats = train.X, hold.X, list(FEATURE_COLUMNS)
        if use_country:
            Xtr, extra = with_country(Xtr, countries)
            Xho, _ = with_country(Xho, countries)
            feats = feats + extra
        for kind, model in (("logistic", make_logistic(feats, cfg)), ("lightgbm", make_challenger(cfg, feats))):
            model.fit(Xtr[feats].to_numpy(float), train.y.to_numpy())
            p = model.predict_proba(Xho[feats].to_numpy(float))[:, 1]
            out[f"churn {kind} AUC {'with' if use_country else 'without'} country"] = roc_auc_score(hold.y, p)
    return out


def uplift_qini(tx, customers, campaigns, seed) -> dict[str, float]:
    camp = campaigns.assign(customer_id=campaigns["customer_id"].astype(str))
    sent = pd.to_datetime(camp["sent_at"], utc=True).min()
    X = build_features(tx, sent, customers)
    frame = X.join(camp.set_index("customer_id")[["treated", "converted", "revenue"]], how="inner")
    frame["treated"] = frame["treated"].astype(bool)
    frame["converted"] = frame["converted"].astype(bool)
    share = customers["country"].value_counts(normalize=True)
    countries = sorted(share[share >= 0.01].index)
    out = {}
    for use_country in (False, True):
        f, feats = frame, list(FEATURE_COLUMNS)
        if use_country:
            f, extra = with_country(frame, countries)
            feats = feats + extra
        result = train_uplift(f.reset_index(drop=True), UpliftConfig(random_state=seed), features=feats)
        for learner in result.models:
            out[f"uplift {learner} Qini {'with' if use_country else 'without'} country"] = \
                result.evaluation[learner]["qini"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=6000)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    rows: dict[str, list[float]] = {}
    for seed in range(1, args.seeds + 1):
        tx, customers, campaigns, cutoff = frames(args.customers, seed)
        figures = {**churn_auc(tx, customers, cutoff, seed), **uplift_qini(tx, customers, campaigns, seed)}
        print(f"seed {seed}: {customers['country'].nunique()} countries")
        for name, value in figures.items():
            rows.setdefault(name, []).append(value)
            print(f"  {name:<50} {value:.4f}")
    print(f"\nmean over {args.seeds} seeds, {args.customers} customers each (with − without):")
    for name in sorted(rows):
        if " with country" in name:
            base = name.replace(" with country", " without country")
            diff = np.array(rows[name]) - np.array(rows[base])
            print(f"  {name.replace(' with country', ''):<40} without {np.mean(rows[base]):.4f}  "
                  f"with {np.mean(rows[name]):.4f}  diff {diff.mean():+.4f} (min {diff.min():+.4f}, "
                  f"max {diff.max():+.4f})")


if __name__ == "__main__":
    main()
