"""Payment posting throughput on the ledger: SQLite and PostgreSQL, one by one and batched, single process.

    .venv/bin/python benchmarks/bench_payments.py                       # SQLite (+ PostgreSQL if RUNOFF_TEST_POSTGRES_URL)
    .venv/bin/python benchmarks/bench_payments.py --postgres postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python benchmarks/bench_payments.py --loans 2000 --single 200 --batched 2000   # a quick run

Each run bulk-loads a fresh book of 12-month 18 % equal-installment loans (SQLite: a temporary
file; PostgreSQL: a throwaway schema), then posts each loan's first installment on its due date:
``--single`` payments through ``post_payment`` (one transaction each) and ``--batched`` through
``post_payments`` (one transaction per ``--chunk``; on PostgreSQL a second connection overlaps the
next chunk with the commit of the last, and another ``--batched`` payments measure one connection
alone). Every payment is a real allocation, journal
entry, installment and loan update and audit record; ``ledger verify`` runs at the end.
Goal (issue 2): at least 2,000 payments/s batched on PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import polars as pl

from runoff.app.context import build_context
from runoff.app.ledger_check import verify_ledger
from runoff.app.payments import PaymentRequest, post_payment, post_payments
from runoff.config import Settings
from runoff.money import from_minor
from runoff.servicing.product import parse_product
from runoff.servicing.vectorized import build_schedules, rate_units
from runoff.store.ledger.bulk import load_book
from runoff.store.ledger.database import create_ledger_engine, upgrade_to_head
from throwaway_schema import postgres_schema  # the script's folder is on sys.path

PRODUCT = parse_product(
    {"id": "bench-ei-18", "method": "equal-installment", "annual_rate": "0.18", "terms": [12]}, source="bench"
)
AS_OF = date(2024, 1, 1)


@dataclass(frozen=True)
class Row:
    database: str
    mode: str
    payments: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.payments / self.seconds if self.seconds else float("inf")


def book(n: int, seed: int = 11) -> tuple[pl.DataFrame, pl.DataFrame, list[PaymentRequest]]:
    """``n`` loans drawn in December 2023, nothing paid; one payment per loan: its first installment, on time."""
    rng = np.random.default_rng(seed)
    principal = rng.integers(1_000, 50_000, n) * 100
    start = np.datetime64("2023-12-01") + rng.integers(0, 28, n).astype("timedelta64[D]")
    arrays = build_schedules(
        "equal-installment", principal_fen=principal, term=12, annual_rate_units=rate_units("0.18"), start_date=start
    )
    ids = np.array([f"P{k:07d}" for k in range(n)])
    mask = arrays.mask
    loan_idx, period = np.nonzero(mask)
    installments = pl.DataFrame(
        {
            "loan_id": ids[loan_idx],
            "number": period + 1,
            "due_date": arrays.due_date[mask],
            "principal_due_fen": arrays.principal_fen[mask],
            "interest_due_fen": arrays.interest_fen[mask],
            "fee_due_fen": arrays.fee_fen[mask],
        }
    )
    loans = pl.DataFrame(
        {"id": ids, "product_id": PRODUCT.id, "principal_fen": principal, "start_date": start, "term": 12}
    )
    first_total = arrays.total_fen[:, 0]
    first_due = arrays.due_date[:, 0].astype(object)
    payments = [
        PaymentRequest(str(ids[k]), from_minor(int(first_total[k])), first_due[k], f"bench-{k}") for k in range(n)
    ]
    order = rng.permutation(n)
    return loans, installments, [payments[k] for k in order]


def run(
    url: str, label: str, *, loans: int, single: int, batched: int, chunk: int, one_connection: bool = True
) -> list[Row]:
    engine = create_ledger_engine(url)
    upgrade_to_head(engine)
    engine.dispose()
    ctx = build_context(Settings(database_url=url), clock=lambda: datetime.now(UTC))
    loan_frame, inst, payments = book(max(loans, single + 2 * batched))
    t = time.perf_counter()
    with ctx.uow() as uow:
        load_book(
            uow.connection,
            loans_df=loan_frame,
            installments_df=inst,
            products=[PRODUCT],
            as_of=AS_OF,
            actor="bench",
            now=uow.now(),
        )
        uow.commit()
    load_s = time.perf_counter() - t
    rows = [Row(label, f"bulk load ({loan_frame.height} loans)", loan_frame.height, load_s)]

    one_by_one = payments[:single]
    t = time.perf_counter()
    for p in one_by_one:
        post_payment(
            p.loan_id,
            p.amount,
            value_date=p.value_date,
            idempotency_key=p.idempotency_key,
            actor="bench",
            uow=ctx.uow(),
        )
    rows.append(Row(label, "one by one", len(one_by_one), time.perf_counter() - t))

    batch = payments[single : single + batched]
    t = time.perf_counter()
    outcomes = post_payments(batch, actor="bench", uow=ctx.uow(), chunk_size=chunk)
    rows.append(Row(label, f"batched (chunks of {chunk})", len(batch), time.perf_counter() - t))
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise SystemExit(f"{len(failed)} batched payments refused, first: {failed[0].error}")
    if one_connection and label == "PostgreSQL":
        second = payments[single + batched : single + 2 * batched]
        t = time.perf_counter()
        outcomes = post_payments(second, actor="bench", uow=ctx.uow(), chunk_size=chunk, overlap=False)
        rows.append(Row(label, "batched, one connection", len(second), time.perf_counter() - t))
        assert all(o.ok for o in outcomes)

    t = time.perf_counter()
    replayed = post_payments(batch, actor="bench", uow=ctx.uow(), chunk_size=chunk)
    assert all(o.result is not None and o.result.replayed for o in replayed)
    rows.append(Row(label, "batched replay (same keys)", len(batch), time.perf_counter() - t))

    t = time.perf_counter()
    report = verify_ledger(uow=ctx.uow(write=False))
    rows.append(
        Row(label, f"ledger verify ({'clean' if report.ok else 'NOT CLEAN'})", report.loans, time.perf_counter() - t)
    )
    ctx.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loans", type=int, default=25_000, help="loans in the book (at least single + 2 × batched)")
    parser.add_argument("--single", type=int, default=1_000, help="payments posted one by one")
    parser.add_argument("--batched", type=int, default=10_000, help="payments posted in batches")
    parser.add_argument("--chunk", type=int, default=1_000, help="payments per batch transaction")
    parser.add_argument("--postgres", default=os.environ.get("RUNOFF_TEST_POSTGRES_URL"), help="PostgreSQL URL")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()

    rows: list[Row] = []
    sizes = dict(loans=args.loans, single=args.single, batched=args.batched, chunk=args.chunk)
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as folder:
            rows += run(f"sqlite:///{folder}/ledger.db", "SQLite", **sizes)
    if args.postgres:
        with postgres_schema(args.postgres) as url:
            rows += run(url, "PostgreSQL", **sizes)

    print(f"\n{'database':<11} {'mode':<34} {'rows':>8} {'seconds':>9} {'per second':>11}")
    for r in rows:
        print(f"{r.database:<11} {r.mode:<34} {r.payments:>8} {r.seconds:>9.2f} {r.per_second:>11,.0f}")
    pg_batched = [r for r in rows if r.database == "PostgreSQL" and r.mode.startswith("batched (")]
    if pg_batched:
        verdict = "meets" if pg_batched[0].per_second >= 2000 else "misses"
        print(f"\nPostgreSQL batched: {pg_batched[0].per_second:,.0f} payments/s ({verdict} the goal of 2,000/s)")


if __name__ == "__main__":
    main()
