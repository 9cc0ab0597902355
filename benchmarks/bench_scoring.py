"""Scoring 10,000,000 customers with a fitted scorecard and a fitted LightGBM: PD, points and reason codes.

    .venv/bin/python benchmarks/bench_scoring.py                       # 10,000,000 customers (the figure)
    .venv/bin/python benchmarks/bench_scoring.py --customers 1000000   # a quick look

Goal (issue 4): scoring 10,000,000 customers in under 30 s. CPU seconds are printed beside wall time: the
machine is shared, and wall time under someone else's load says little. Both models are trained on 200,000 rows of the
synthetic sample of ``bench_scorecard.py``; the customers to score come from the same process (a Polars
frame of 20 Float64 columns, built before the clock starts). Timed: :meth:`PDModel.score_frame`, which
encodes the columns, computes PD and points, and (with reasons) the top three reason codes, 1,000,000 rows
at a time. LightGBM's reason codes (TreeSHAP) are timed on a sample and extrapolated, as they cost far more
than its predictions.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scorecard import CATEGORICAL, FEATURES, TRENDS, synthetic_sample
from runoff.risk.pd.model import fit_pd_model

CHUNK = 1_000_000


def _peak_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _frame(X: np.ndarray, start_id: int) -> pl.DataFrame:
    cols = {name: X[:, j] for j, name in enumerate(FEATURES)}
    return pl.DataFrame({"customer_id": np.arange(start_id, start_id + X.shape[0]), **cols})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=10_000_000)
    parser.add_argument("--train-rows", type=int, default=200_000)
    parser.add_argument("--shap-sample", type=int, default=100_000, help="rows for LightGBM reason-code timing")
    args = parser.parse_args()

    X, y = synthetic_sample(args.train_rows, 0)
    train = _frame(X, 0).with_columns(pl.Series("bad", y))
    started = time.perf_counter()
    models = {
        "scorecard": fit_pd_model(train, kind="scorecard", features=FEATURES, trends=TRENDS, categorical=CATEGORICAL),
        "lightgbm": fit_pd_model(train, kind="lightgbm", features=FEATURES, trends=TRENDS, categorical=CATEGORICAL),
    }
    print(f"trained both models on {args.train_rows:,} rows in {time.perf_counter() - started:.1f} s")

    parts = []
    for k, start in enumerate(range(0, args.customers, CHUNK)):
        n = min(CHUNK, args.customers - start)
        parts.append(_frame(synthetic_sample(n, 100 + k)[0], start + 1))
    customers = pl.concat(parts)
    del parts
    print(
        f"customers            {customers.height:,} × {len(FEATURES)} features ({customers.estimated_size() / 2**30:.2f} GiB)"
    )

    for name, model in models.items():
        for top in (0, 3) if name == "scorecard" else (0,):
            started, cpu = time.perf_counter(), time.process_time()
            scored = model.score_frame(customers, top=top)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            label = f"{name} PD + points" + (" + 3 reasons" if top else "")
            print(f"{label:34s} {elapsed:7.2f} s wall  {cpu:7.2f} s CPU   {customers.height / elapsed / 1e6:5.2f} M/s   "
                  f"mean PD {scored.get_column('pd').mean():.4f}")  # fmt: skip
            del scored
    sample = customers.head(args.shap_sample)
    started = time.perf_counter()
    models["lightgbm"].score_frame(sample, top=3)
    elapsed = time.perf_counter() - started
    print(f"{'lightgbm PD + points + 3 reasons':34s} {elapsed:7.2f} s on {sample.height:,} rows "
          f"→ {elapsed * customers.height / sample.height:,.0f} s for all (TreeSHAP)")  # fmt: skip
    print("goal                 under 30 s for 10,000,000 customers")
    print(f"peak memory          {_peak_mb():,.0f} MB")


if __name__ == "__main__":
    main()
