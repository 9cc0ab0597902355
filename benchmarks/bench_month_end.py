"""`runoff snapshot` (月末表现快照) on the 1M-loan ledger of bench_close_day.py, on SQLite and PostgreSQL: seconds a month end.

    .venv/bin/python benchmarks/bench_month_end.py                         # 1,000,000 loans, SQLite (+ PG if set)
    .venv/bin/python benchmarks/bench_month_end.py --loans 50000 --postgres postgresql://postgres@127.0.0.1/test

Reference: the month end must take seconds, not minutes, on 1,000,000 loans (the daily close of the same book
takes 8–10 s). The book is bench_close_day.py's (12-month equal-installment loans drawn over the eleven months
before 2025-06-30, 5 % of them 1 to 6 installments behind), its ids made the book's integer ids, with a
workspace holding its loans table and ``--history`` months of the book's own month ends before June in
partitions of 200,000 loans (the snapshot rewrites each partition it appends to). Not timed: building the book,
the bulk load and the close of 2025-06-30. Timed: the snapshot of 2025-06-30 (read from the ledger, then written),
by step, and its rerun (the month replaced).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from bench_close_day import CLOSE, PRODUCT, book, context  # the script's folder is on sys.path
from runoff.app.close_day import close_day
from runoff.app.month_end import snapshot_month_end
from runoff.portfolio.schemas import LOANS, PERFORMANCE
from runoff.store.ledger.bulk import load_book
from runoff.store.workspace import Workspace
from throwaway_schema import postgres_schema

PARTITION = 200_000


def numbered(loans: pl.DataFrame, installments: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The bench book under the book's integer ids written as text, as the ledger holds a generated book's."""
    to_id = (pl.col("id").str.slice(1).cast(pl.Int64) + 1).cast(pl.String)
    loans = loans.with_columns(to_id)
    installments = installments.with_columns(
        (pl.col("loan_id").str.slice(1).cast(pl.Int64) + 1).cast(pl.String).alias("loan_id")
    )
    return loans, installments


def write_workspace(root: Path, loans: pl.DataFrame, history: int) -> Workspace:
    """The book's loans table and ``history`` month ends before June (placeholder figures), in 200k partitions."""
    ws = Workspace.init(root)
    ids = loans.get_column("id").cast(pl.Int64)
    frame = pl.DataFrame(
        {
            "loan_id": ids,
            "account_id": ids,
            "customer_id": ids,
            "product_id": PRODUCT.id,
            "method": PRODUCT.method.value,
            "term_months": np.full(loans.height, 12, dtype=np.int16),
            "annual_rate": 0.18,
            "fee_rate": pl.Series([None] * loans.height, dtype=pl.Float64),
            "principal_fen": loans.get_column("principal_fen"),
            "originated_on": loans.get_column("start_date"),
            "first_due_on": loans.get_column("start_date").dt.offset_by("1mo"),
            "maturity_on": loans.get_column("start_date").dt.offset_by("12mo"),
            "vintage": loans.get_column("start_date").dt.strftime("%Y-%m"),
            "status": "active",
            "closed_on": pl.Series([None] * loans.height, dtype=pl.Date),
        }
    )
    month_ends = [date(2025, 6, 1) - timedelta(days=1)]
    for _ in range(history - 1):
        month_ends.append(month_ends[-1].replace(day=1) - timedelta(days=1))
    for part, start in enumerate(range(0, loans.height, PARTITION)):
        mine = frame.slice(start, PARTITION)
        ws.write_partition("loans", part, LOANS.conform(mine))
        rows = (
            mine.select("loan_id", "customer_id", "originated_on", "principal_fen")
            .join(pl.DataFrame({"month_end": month_ends}), how="cross")
            .filter(pl.col("month_end") >= pl.col("originated_on"))
            .with_columns(
                (
                    (pl.col("month_end").dt.year() - pl.col("originated_on").dt.year()) * 12
                    + pl.col("month_end").dt.month().cast(pl.Int32)
                    - pl.col("originated_on").dt.month().cast(pl.Int32)
                ).alias("mob"),
                pl.lit("active").alias("status"),
                pl.lit("current").alias("bucket"),
                pl.col("principal_fen").alias("principal_balance_fen"),
                pl.lit(6, pl.Int16).alias("installments_remaining"),
            )
        )
        for name in PERFORMANCE.names:
            if name not in rows.columns:
                rows = rows.with_columns(pl.lit(0).alias(name))
        ws.write_partition("performance", part, PERFORMANCE.conform(rows.sort("loan_id", "month_end")))
    return ws


def run(name: str, url: str, folder: Path, loans: pl.DataFrame, installments: pl.DataFrame, history: int) -> None:
    ws = write_workspace(folder / f"ws-{name}", loans, history)
    ctx = context(url, ws.root)
    try:
        started = time.perf_counter()
        with ctx.uow() as uow:
            load_book(
                uow.connection,
                loans_df=loans,
                installments_df=installments,
                products=[PRODUCT],
                as_of=CLOSE - timedelta(days=1),
                actor="bench",
                now=uow.now(),
            )
            uow.commit()
        closed = close_day(as_of=CLOSE, actor="bench", uow=ctx.uow())
        rows = ws.scan("performance").select(pl.len()).collect().item()
        print(
            f"{name}: loaded {loans.height:,} loans and closed {CLOSE} ({closed.seconds:.1f} s) in "
            f"{time.perf_counter() - started:.1f} s; the book holds {rows:,} month-end rows (not timed)"
        )
        for label in ("snapshot", "rerun (month replaced)"):
            result = snapshot_month_end(ws, ctx, as_of=CLOSE)
            steps = ", ".join(f"{k} {v:.2f}" for k, v in result.seconds_by_step.items() if v >= 0.01)
            print(
                f"{name}: {label} of {CLOSE}: {result.seconds:6.2f} s  [{result.rows:,} rows, "
                f"{result.replaced_rows:,} replaced, {result.by_bucket.get('M4+', {}).get('loans', 0):,} in M4+]"
            )
            print(f"{' ' * len(name)}  by step: {steps}")
    finally:
        ctx.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loans", type=int, default=1_000_000)
    parser.add_argument("--delinquent", type=float, default=0.05, help="share of loans behind (default 0.05)")
    parser.add_argument("--history", type=int, default=6, help="month ends of the book's own before June")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--postgres", default=os.environ.get("RUNOFF_TEST_POSTGRES_URL"), help="PostgreSQL URL")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    args = parser.parse_args()

    started = time.perf_counter()
    loans, installments = numbered(*book(args.loans, args.delinquent, args.seed))
    print(f"book of {args.loans:,} loans built in {time.perf_counter() - started:.1f} s; goal: seconds, not minutes")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not args.no_sqlite:
            run("sqlite", f"sqlite:///{folder / 'ledger.db'}", folder, loans, installments, args.history)
        if args.postgres:
            with postgres_schema(args.postgres) as url:
                run("postgresql", url, folder, loans, installments, args.history)


if __name__ == "__main__":
    main()
