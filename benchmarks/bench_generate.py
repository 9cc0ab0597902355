"""Synthetic book generation: loans per second and peak memory, written to a workspace as Parquet.

    .venv/bin/python benchmarks/bench_generate.py --loans 1000000        # about a minute here
    .venv/bin/python benchmarks/bench_generate.py --loans 10000000       # the 8 GB figure; takes long
    .venv/bin/python benchmarks/bench_generate.py --loans 20000 --keep DIR

Reference: the issue's budget, 10,000,000 loans × 24 months within 8 GB of memory. The number of
customers is set from the book's average of about 0.275 loans a customer a month; the loans actually
generated are printed. Peak memory is the process's maximum resident set (getrusage).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from runoff.app.book import generate_book
from runoff.portfolio.generator import BookConfig
from runoff.store.workspace import Workspace

LOANS_PER_CUSTOMER_MONTH = 0.275


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loans", type=int, default=1_000_000, help="loans to aim for (default 1,000,000)")
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scheduler", default=None, help="Dask scheduler address (default: in-process)")
    parser.add_argument("--keep", type=Path, default=None, help="write into this workspace instead of a temporary one")
    args = parser.parse_args()

    customers = max(1, round(args.loans / (LOANS_PER_CUSTOMER_MONTH * args.months)))
    config = BookConfig(customers=customers, months=args.months, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
        workspace = Workspace.init(args.keep or Path(tmp) / "ws")
        started = time.perf_counter()
        result = generate_book(
            workspace,
            config,
            scheduler=args.scheduler,
            progress=lambda done, total: print(
                f"  partition {done}/{total}  {time.perf_counter() - started:7.1f}s  peak {_peak_rss_mb():,.0f} MB",
                flush=True,
            ),
        )
        elapsed = time.perf_counter() - started
        size = sum(p.stat().st_size for p in workspace.data_dir.rglob("*.parquet"))
    t = result.totals
    loans = t["loans_rows"]
    print(f"customers            {customers:,}  ({result.partitions} partitions)")
    print(f"loans                {loans:,}  × {args.months} months")
    print(
        f"rows                 installments {t['installments_rows']:,}, payments {t['payments_rows']:,}, performance {t['performance_rows']:,}"
    )
    print(f"wall time            {elapsed:,.1f} s (generation, Parquet writing and the calibration scan)")
    print(f"loans per second     {loans / elapsed:,.0f}")
    print(f"peak memory (RSS)    {_peak_rss_mb():,.0f} MB  (budget: 8,192 MB for 10M loans × 24 months)")
    print(f"parquet on disk      {size / 2**20:,.0f} MB")
    print(f"90+ ratio (last 12)  {result.calibration['m4plus_ratio']['ratio']:.2%}")


if __name__ == "__main__":
    main()
