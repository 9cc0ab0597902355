"""Scorecard training on 1,000,000 rows × 20 features against optbinning's default workflow, same data, same run.

    .venv/bin/python benchmarks/bench_scorecard.py                  # 1,000,000 training rows (the figure)
    .venv/bin/python benchmarks/bench_scorecard.py --rows 100000    # a quick look while developing
    .venv/bin/python benchmarks/bench_scorecard.py --skip-optbinning --skip-lightgbm

Reference (issue 4, shared/research/credit-models.md §1.4): optbinning's ``BinningProcess`` fit on 1M × 20
took 23–36 s here for the binning alone. Goal: runoff's :class:`~runoff.risk.pd.scorecard.Scorecard` at least
3× faster than optbinning's default workflow (``BinningProcess`` with its defaults → WOE → logistic
regression) with a holdout AUC within 0.005 of it. Also times LightGBM (:class:`~runoff.risk.pd.gbm.GradientBoostedPD`)
on the same rows.

``--book CUSTOMERS`` instead trains both models on a generated book (24 months; development 18 months before
the end, out of time 12 months before the end, the 12 months after it as the outcome window) and prints their
out-of-time AUC and KS — the issue's figure for the book.

The data are synthetic with the structure of a behaviour-score sample: a latent risk drives delinquency
counts (zero-inflated), worst DPD, a payment ratio, utilization, income (lognormal), debt service, tenure,
and two categorical codes; three features are noise, one is U-shaped (age), and some carry missing values.
The bad rate is about 6 %. Holdout rows (a quarter of the training size) come from the same process.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np
import numpy.typing as npt
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

FEATURES = (
    "worst_dpd_12m", "delinquent_months_12m", "late_payments_12m", "times_30dpd_12m", "payment_ratio_6m",
    "utilization", "income_yuan", "debt_service_ratio", "balance_yuan", "tenure_months", "active_loans",
    "loans_opened_6m", "age", "city_tier_rank", "channel_code", "bureau_inquiries", "noise_1", "noise_2",
    "noise_3", "months_since_first_loan",
)  # fmt: skip
TRENDS = {
    "worst_dpd_12m": "ascending", "delinquent_months_12m": "ascending", "late_payments_12m": "ascending",
    "times_30dpd_12m": "ascending", "payment_ratio_6m": "descending", "utilization": "ascending",
    "income_yuan": "descending", "debt_service_ratio": "ascending", "tenure_months": "descending",
    "bureau_inquiries": "ascending", "months_since_first_loan": "descending",
}  # fmt: skip
CATEGORICAL = ("channel_code",)


def synthetic_sample(n: int, seed: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """``n`` rows × 20 features and a 0/1 target (1 = bad) from one latent risk factor plus noise."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)  # latent risk, higher = riskier
    zc = z + rng.normal(scale=0.8, size=n)  # what behaviour shows of it
    X = np.empty((n, len(FEATURES)), dtype=np.float64)
    late_rate = np.exp(-2.0 + 0.9 * zc)
    X[:, 0] = np.where(rng.random(n) < expit(-2.2 + 1.2 * zc), rng.gamma(1.5, 25.0, n).round(), 0.0)
    X[:, 1] = np.minimum(rng.poisson(late_rate * 3.0), 12)
    X[:, 2] = rng.poisson(late_rate * 2.0)
    X[:, 3] = rng.poisson(np.exp(-3.5 + 1.1 * zc))
    X[:, 4] = np.clip(1.0 - 0.15 * np.maximum(zc, 0) + rng.normal(0, 0.12, n), 0, 1.6)
    X[:, 5] = np.clip(expit(-0.3 + 0.7 * zc + rng.normal(0, 0.8, n)), 0, 1.2)
    X[:, 6] = np.round(np.exp(8.7 - 0.15 * z + rng.normal(0, 0.5, n)), 0)
    X[:, 7] = np.clip(rng.gamma(2.0, 0.06, n) * np.exp(0.2 * zc), 0, 3)
    X[:, 8] = np.round(rng.lognormal(8.0, 0.9, n) * np.exp(0.1 * zc), 2)
    X[:, 9] = np.floor(rng.gamma(2.0, 10.0, n) * np.exp(-0.15 * z))
    X[:, 10] = 1 + rng.poisson(1.2 + 0.2 * np.maximum(zc, 0))
    X[:, 11] = rng.poisson(0.8 * np.exp(0.15 * zc))
    X[:, 12] = np.clip(np.round(rng.normal(31, 8, n)), 18, 65)
    X[:, 13] = rng.integers(0, 5, n)
    X[:, 14] = rng.choice(5, size=n, p=[0.45, 0.25, 0.10, 0.12, 0.08])
    X[:, 15] = rng.poisson(np.exp(0.2 + 0.3 * zc))
    X[:, 16:19] = rng.normal(size=(n, 3))
    X[:, 19] = np.floor(rng.uniform(0, 36, n))
    # missing values: utilization without a limit on file, payment ratio without anything due yet
    X[rng.random(n) < 0.05, 5] = np.nan
    X[rng.random(n) < 0.08, 4] = np.nan
    age_effect = 0.004 * (X[:, 12] - 33.0) ** 2 - 0.3
    channel_effect = np.array([0.0, 0.1, -0.2, 0.3, 0.4])[X[:, 14].astype(np.int64)]
    logit = -3.4 + 1.1 * z + age_effect + channel_effect + 0.05 * (X[:, 13] - 2)
    y = (rng.random(n) < expit(logit)).astype(np.int64)
    return X, y


def _peak_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def run_runoff(
    X: npt.NDArray[np.float64], y: npt.NDArray[np.int64], Xh: npt.NDArray[np.float64]
) -> tuple[float, npt.NDArray[np.float64], object]:
    from runoff.risk.pd.scorecard import Scorecard

    started, cpu = time.perf_counter(), time.process_time()
    model = Scorecard(
        monotonic_trends={FEATURES.index(k): v for k, v in TRENDS.items()},
        categorical_features=[FEATURES.index(c) for c in CATEGORICAL],
        random_state=0,
    ).fit(X, y)
    elapsed = time.perf_counter() - started
    print(f"  (runoff CPU {time.process_time() - cpu:.2f} s)")
    return elapsed, model.predict_proba(Xh)[:, 1], model


def run_optbinning(
    X: npt.NDArray[np.float64], y: npt.NDArray[np.int64], Xh: npt.NDArray[np.float64], n_jobs: int
) -> tuple[float, float, npt.NDArray[np.float64]]:
    """optbinning's default workflow: BinningProcess (defaults: CART pre-binning, CP solver) → WOE → LR."""
    from optbinning import BinningProcess

    names = list(FEATURES)
    started, cpu = time.perf_counter(), time.process_time()
    process = BinningProcess(variable_names=names, categorical_variables=list(CATEGORICAL), n_jobs=n_jobs)
    process.fit(X, y)
    binning_s = time.perf_counter() - started
    W = process.transform(X, metric="woe")
    lr = LogisticRegression(max_iter=1000).fit(np.asarray(W), y)
    total = time.perf_counter() - started
    print(f"  (optbinning CPU {time.process_time() - cpu:.2f} s)")
    ph = lr.predict_proba(np.asarray(process.transform(Xh, metric="woe")))[:, 1]
    return total, binning_s, ph


def run_lightgbm(
    X: npt.NDArray[np.float64], y: npt.NDArray[np.int64], Xh: npt.NDArray[np.float64]
) -> tuple[float, npt.NDArray[np.float64]]:
    from runoff.risk.pd.gbm import GradientBoostedPD

    constraints = {FEATURES.index(k): (1 if v == "ascending" else -1) for k, v in TRENDS.items()}
    started = time.perf_counter()
    # one thread, like optbinning's n_jobs=1: on a shared two-core machine OpenMP's second thread mostly waits
    # (300k rows: 6.7 s with one thread, 47 s with two under a load of 8)
    model = GradientBoostedPD(
        monotone_constraints=constraints,
        categorical_features=[FEATURES.index(c) for c in CATEGORICAL],
        random_state=0,
        n_jobs=1,
    ).fit(X, y)
    elapsed = time.perf_counter() - started
    return elapsed, model.predict_proba(Xh)[:, 1]


def run_book(customers: int, seed: int, workspace_dir: str | None) -> None:
    """Generate a book (or reuse ``workspace_dir``'s) and print both models' out-of-time AUC and KS."""
    import tempfile
    from datetime import UTC, datetime
    from pathlib import Path

    from runoff.app.book import generate_book
    from runoff.app.models import train_from_book
    from runoff.portfolio.generator import BookConfig
    from runoff.store.workspace import Workspace

    tmp = tempfile.TemporaryDirectory(prefix="bench-book-")
    root = Path(workspace_dir) if workspace_dir else Path(tmp.name) / "ws"
    workspace = Workspace.init(root)
    if not workspace.has_table("performance"):
        started = time.perf_counter()
        generate_book(workspace, BookConfig(customers=customers, months=24, seed=seed))
        print(
            f"book                 {customers:,} customers × 24 months generated in {time.perf_counter() - started:.0f} s"
        )
    now = datetime.now(UTC)
    for kind in ("scorecard", "lightgbm"):
        started = time.perf_counter()
        result = train_from_book(workspace, now=now, kind=kind, seed=seed)
        elapsed = time.perf_counter() - started
        window = result.record.data_window
        for sample in ("holdout", "out_of_time"):
            m = result.record.metrics[sample]
            print(f"{kind:10s} {sample:12s} AUC {m['auc']:.4f}  KS {m['ks']:.4f}  Gini {m['gini']:.4f}  "
                  f"n {m['count']:,} bads {m['bads']:,}  PSI {m.get('score_psi', float('nan')):.3f}")  # fmt: skip
        print(f"{kind:10s} development {window['development_observation']}, out of time "
              f"{window['out_of_time_observation']}; trained and validated in {elapsed:.0f} s "
              f"(features of both dates included)")  # fmt: skip
    tmp.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="training rows (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=1, help="optbinning BinningProcess n_jobs (default 1)")
    parser.add_argument("--skip-optbinning", action="store_true")
    parser.add_argument("--skip-lightgbm", action="store_true")
    parser.add_argument("--book", type=int, default=0, help="customers of a generated book for the OOT figures")
    parser.add_argument("--workspace", default=None, help="with --book: reuse (or keep) this workspace")
    args = parser.parse_args()
    if args.book:
        run_book(args.book, args.seed, args.workspace)
        return

    X, y = synthetic_sample(args.rows, args.seed)
    Xh, yh = synthetic_sample(max(args.rows // 4, 10_000), args.seed + 1)
    print(f"data                 {args.rows:,} rows × {X.shape[1]} features, bad rate {y.mean():.2%}; "
          f"holdout {yh.size:,} rows; {os.cpu_count()} CPUs")  # fmt: skip
    # warm the imports so neither side pays them inside its timing
    import lightgbm  # noqa: F401
    import optbinning  # noqa: F401

    t_ours, p_ours, model = run_runoff(X, y, Xh)
    auc_ours = roc_auc_score(yh, p_ours)
    print(f"runoff Scorecard     {t_ours:7.2f} s   holdout AUC {auc_ours:.4f}   "
          f"features kept {len(model.selected_)}/{X.shape[1]}")  # type: ignore[attr-defined]  # fmt: skip
    if not args.skip_optbinning:
        t_opt, t_bin, p_opt = run_optbinning(X, y, Xh, args.n_jobs)
        auc_opt = roc_auc_score(yh, p_opt)
        print(f"optbinning default   {t_opt:7.2f} s   holdout AUC {auc_opt:.4f}   (binning alone {t_bin:.2f} s, "
              f"n_jobs={args.n_jobs})")  # fmt: skip
        print(f"speed-up             {t_opt / t_ours:7.2f} ×   (goal ≥ 3×)")
        print(f"AUC difference       {auc_ours - auc_opt:+.4f}    (goal within ±0.005)")
    if not args.skip_lightgbm:
        t_gbm, p_gbm = run_lightgbm(X, y, Xh)
        print(f"LightGBM (monotone)  {t_gbm:7.2f} s   holdout AUC {roc_auc_score(yh, p_gbm):.4f}")
    print(f"peak memory          {_peak_mb():,.0f} MB")


if __name__ == "__main__":
    main()
