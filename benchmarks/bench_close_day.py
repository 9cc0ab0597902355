"""`runoff close-day` on N open loans, on SQLite and PostgreSQL: seconds per close.

    .venv/bin/python benchmarks/bench_close_day.py                         # 1,000,000 loans, SQLite (+ PG if set)
    .venv/bin/python benchmarks/bench_close_day.py --loans 50000 --postgres postgresql://postgres@127.0.0.1/test

Reference: issue 2's goal, close-day on 1,000,000 open loans in under 30 s on each database.

A book of ``--loans`` 12-month equal-installment loans drawn over the eleven months before the close
is bulk-loaded into a fresh ledger (the ledger's bulk loader: COPY on PostgreSQL; not timed); about
``--delinquent`` of them (5 %) have 1 to 6 installments unpaid (1 to 180 days past due, a third of
them partly paid), the others are paid up to date. Then, timed: the first close (DPD, buckets and
penalty for every overdue installment, one journal entry per delinquent loan), the next day's close,
a catch-up close over 7 days, and a rerun of the last day (nothing to do). PostgreSQL runs when
``--postgres URL`` or RUNOFF_TEST_POSTGRES_URL is given, in a fresh schema dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from runoff.app.close_day import close_day
from runoff.app.context import AppContext, build_context
from runoff.config import Settings
from runoff.servicing.product import parse_product
from runoff.store.ledger.bulk import load_book
from runoff.store.ledger.database import create_ledger_engine, upgrade_to_head
from throwaway_schema import postgres_schema  # the script's folder is on sys.path

CLOSE = date(2025, 6, 30)
TERM = 12
PRODUCT = parse_product(
    {
        "id": "bench-ei-18",
        "method": "equal-installment",
        "annual_rate": "0.18",
        "terms": [TERM],
        "penalty": {"base": "overdue-principal", "daily_rate": "0.0005", "cap_rate_of_principal": "0.24"},
    },
    source="bench",
)


def book(n: int, delinquent: float, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Loans and installments frames for the bulk loader: paid up to date, ``delinquent`` of them behind."""
    rng = np.random.default_rng(seed)
    months_back = rng.integers(1, TERM, n)  # drawn 1..11 months before the close month
    day = rng.integers(1, 29, n)
    start = (np.datetime64(CLOSE, "M") - months_back).astype("datetime64[D]") + (day - 1)
    principal = rng.integers(500, 20_000, n) * 100
    ids = np.char.add("L", np.char.zfill(np.arange(n).astype(str), 8))

    # Installments: equal principal in fen (last absorbs), interest 1.5 % a month on the balance before.
    k = np.arange(1, TERM + 1)
    per = principal // TERM
    p_due = np.repeat(per[:, None], TERM, axis=1)
    p_due[:, -1] = principal - per * (TERM - 1)
    balance_before = principal[:, None] - np.cumsum(p_due, axis=1) + p_due
    i_due = (balance_before * 15 + 500) // 1000
    start_month = start.astype("datetime64[M]")
    due = (start_month[:, None] + k[None, :]).astype("datetime64[D]") + (
        start - start.astype("datetime64[M]").astype("datetime64[D]")
    )[:, None]
    close = np.datetime64(CLOSE)
    fell_due = due < close
    late = rng.random(n) < delinquent
    # Loans that pay have also paid what falls due in the benchmark's days (paid on time: never overdue).
    paid_mask = np.where(late[:, None], fell_due, due < close + 10)
    late_rows = np.flatnonzero(late)
    due_count = fell_due.sum(axis=1)
    behind = np.zeros(n, dtype=np.int64)
    behind[late_rows] = np.minimum(rng.integers(1, 7, late_rows.size), due_count[late_rows])
    paid_mask[late_rows] &= k[None, :] <= (due_count - behind)[late_rows, None]
    p_paid = np.where(paid_mask, p_due, 0)
    i_paid = np.where(paid_mask, i_due, 0)
    partly = np.flatnonzero(late & (behind > 0) & (rng.random(n) < 1 / 3))
    first_unpaid = due_count[partly] - behind[partly]  # index of the oldest unpaid installment
    i_paid[partly, first_unpaid] = i_due[partly, first_unpaid]
    p_paid[partly, first_unpaid] = p_due[partly, first_unpaid] // 2

    loans = pl.DataFrame(
        {
            "id": ids,
            "product_id": PRODUCT.id,
            "principal_fen": principal,
            "start_date": start,
            "term": np.full(n, TERM),
        }
    ).with_columns(pl.col("start_date").cast(pl.Date))
    installments = pl.DataFrame(
        {
            "loan_id": np.repeat(ids, TERM),
            "number": np.tile(k, n),
            "due_date": due.ravel(),
            "principal_due_fen": p_due.ravel(),
            "interest_due_fen": i_due.ravel(),
            "fee_due_fen": np.zeros(n * TERM, dtype=np.int64),
            "principal_paid_fen": p_paid.ravel(),
            "interest_paid_fen": i_paid.ravel(),
        }
    ).with_columns(pl.col("due_date").cast(pl.Date))
    return loans, installments


def context(url: str, folder: Path) -> AppContext:
    engine = create_ledger_engine(url)
    upgrade_to_head(engine)
    engine.dispose()
    clock = datetime.now  # the benchmark's own wall clock for created_at columns
    return build_context(Settings(workspace=folder, database_url=url), clock=lambda: clock(UTC))


def run(name: str, url: str, folder: Path, loans: pl.DataFrame, installments: pl.DataFrame, chunk: int) -> None:
    ctx = context(url, folder)
    try:
        started = time.perf_counter()
        with ctx.uow() as uow:
            loaded = load_book(
                uow.connection,
                loans_df=loans,
                installments_df=installments,
                products=[PRODUCT],
                as_of=CLOSE - timedelta(days=1),
                actor="bench",
                now=uow.now(),
            )
            uow.commit()
        print(f"{name}: loaded {loaded.loans:,} loans, {loaded.installments:,} installments in "
              f"{time.perf_counter() - started:.1f} s (not timed below)")  # fmt: skip
        for label, day in (
            ("first close", CLOSE),
            ("next day", CLOSE + timedelta(days=1)),
            ("catch-up of 7 days", CLOSE + timedelta(days=8)),
        ):
            result = close_day(as_of=day, actor="bench", uow=ctx.uow(), chunk_size=chunk)
            print(
                f"{name}: close-day {day} ({label}): {result.seconds:6.2f} s  "
                f"[{result.delinquent_loans:,} loans overdue, {result.loans_charged:,} charged "
                f"{result.penalty_fen / 100:,.2f} of penalty, {result.cured_loans:,} cured]"
            )
            steps = ", ".join(f"{k} {v:.2f}" for k, v in result.seconds_by_step.items() if v >= 0.01)
            print(f"{' ' * len(name)}  by step: {steps}")
        again = time.perf_counter()
        rerun = close_day(as_of=CLOSE + timedelta(days=8), actor="bench", uow=ctx.uow())
        print(
            f"{name}: rerun of the same day: {time.perf_counter() - again:.2f} s (already closed: {rerun.already_closed})"
        )
    finally:
        ctx.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loans", type=int, default=1_000_000)
    parser.add_argument("--delinquent", type=float, default=0.05, help="share of loans behind (default 0.05)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-size", type=int, default=20_000)
    parser.add_argument("--postgres", default=os.environ.get("RUNOFF_TEST_POSTGRES_URL"), help="PostgreSQL URL")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    args = parser.parse_args()

    started = time.perf_counter()
    loans, installments = book(args.loans, args.delinquent, args.seed)
    print(f"book of {args.loans:,} loans built in {time.perf_counter() - started:.1f} s; goal: each close under 30 s")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not args.no_sqlite:
            run("sqlite", f"sqlite:///{folder / 'ledger.db'}", folder, loans, installments, args.chunk_size)
        if args.postgres:
            with postgres_schema(args.postgres) as url:
                run("postgresql", url, folder, loans, installments, args.chunk_size)


if __name__ == "__main__":
    main()
