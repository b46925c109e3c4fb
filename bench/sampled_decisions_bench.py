"""Do the sampled searches decide what the full ones decide? Segmentation's k and CLTV's model choice.

    .venv/bin/python bench/sampled_decisions_bench.py [--sizes 100000 300000] [--seeds 1 2 3]

For each size and seed, generated data (``customers.generator.generate``, continuous acquisition):

- segmentation: ``search_k`` on the standardised RFM matrix fitting every candidate k on all rows
  versus on ``pipeline.SEARCH_SAMPLE`` rows (the product's default above that size): chosen k,
  silhouette at the chosen k, seconds;
- CLTV: ``compare_models`` (BG/NBD, MBG/NBD, Pareto/NBD, weekly unit, the product's calibration
  split) on every customer versus on ``CLTVConfig().comparison_sample`` customers: chosen model,
  each model's holdout RMSE, seconds.

Pure pipeline code, no database. Prints one line per run and the load average.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from cltv import pipeline as cltv  # noqa: E402
from cltv.summary import calibration_and_holdout  # noqa: E402
from rfm_portal.customers.generator import GeneratorParams, generate  # noqa: E402
from segmentation import pipeline as seg  # noqa: E402


def _load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def _timed(fn):
    began = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--skip", choices=["segmentation", "cltv"], default=None)
    args = parser.parse_args()
    config = cltv.CLTVConfig()
    print(f"search sample {seg.SEARCH_SAMPLE:,} rows; CLTV comparison sample {config.comparison_sample:,} customers; "
          f"load average {Path('/proc/loadavg').read_text().strip()}", flush=True)
    for n in args.sizes:
        for seed in args.seeds:
            data = generate(n, seed, params=GeneratorParams(acquisition_share=1.0))
            tx = data.transactions
            tx = pd.DataFrame({
                "customer_id": tx["customer_id"], "invoice": tx["invoice"],
                "invoiced_at": pd.to_datetime(tx["invoiced_at"]).dt.tz_localize("UTC"),
                "amount": tx["quantity"] * tx["unit_price"], "is_return": tx["invoice"].str.startswith("C"),
            })
            if args.skip != "segmentation":
                rfm = seg.rfm_table(tx)
                x = seg.RFMTransform.fit(rfm).transform(rfm)
                full, t_full = _timed(lambda x=x: seg.search_k(x, search_sample=len(x)))
                part, t_part = _timed(lambda x=x: seg.search_k(x))
                at = list(full.k_values).index(full.chosen_k)
                print(f"segmentation n={n:,} seed={seed}: k all rows {full.chosen_k} ({t_full:.1f} s, silhouette "
                      f"{full.silhouette[at]:.3f}) | k on {part.fit_rows:,} rows {part.chosen_k} ({t_part:.1f} s, "
                      f"silhouette {part.silhouette[list(part.k_values).index(part.chosen_k)]:.3f}) | "
                      f"same: {full.chosen_k == part.chosen_k} | load {_load()}", flush=True)
            if args.skip != "cltv":
                daily = tx.assign(invoiced_at=tx["invoiced_at"].dt.tz_localize(None).dt.normalize())
                dates = daily["invoiced_at"]
                obs_end = dates.max().normalize()
                cal_end = cltv.default_calibration_end(dates, obs_end, config.holdout_fraction)
                cal = calibration_and_holdout(daily, cal_end, obs_end, unit=config.unit, customer_col="customer_id",
                                              date_col="invoiced_at", amount_col="amount", returns=config.returns)
                full, t_full = _timed(lambda cal=cal: cltv.compare_models(cal))
                rows = cltv.comparison_rows(cal, config.comparison_sample, config.seed)
                part, t_part = _timed(lambda rows=rows: cltv.compare_models(rows))
                rmse = {m: f"{a:.4f}/{b:.4f}" for m, a, b in zip(
                    full.table["model"], full.table["rmse"], part.table["rmse"], strict=True)}
                print(f"cltv n={len(cal):,} seed={seed}: chosen all {full.chosen} ({t_full:.1f} s) | chosen on "
                      f"{len(rows):,} {part.chosen} ({t_part:.1f} s) | same: {full.chosen == part.chosen} | "
                      f"RMSE all/sample {rmse} | load {_load()}", flush=True)


if __name__ == "__main__":
    main()
