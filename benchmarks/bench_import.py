"""Loan-tape import (导入借据明细) against Polars' own read_csv → write_parquet on the same file.

Writes a ``--rows`` row CSV tape with Chinese headers (the columns of ``examples/mappings/cn_loan_tape.yaml``:
yuan amounts, percent rates, dates in two formats, Chinese methods and statuses) with 1 % bad rows, then
prints the best-of-``--repeat`` wall time of:

* the floor: ``pl.read_csv(file)`` (type inference) → ``write_parquet``, nothing checked;
* ``runoff import``'s use case (:func:`runoff.app.tape_import.import_tapes`) into a fresh workspace: hash the
  file, read, convert, run every check, write the loans, positions and quarantine partitions through
  staging, the manifest last (the ledger load is not part of this figure);

and their ratio. Goal (issue 3): within 2× of the floor at 1,000,000 rows. With ``--with-ledger`` it also
times one import that loads the open loans into the workspace's SQLite ledger through the bulk path.

    .venv/bin/python benchmarks/bench_import.py --rows 100000
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from runoff.app.context import build_context
from runoff.app.tape_import import import_tapes, ledger_position_loader
from runoff.config import Settings
from runoff.portfolio.tape import load_mapping, tape_in_source_columns
from runoff.store.workspace import Workspace

MAPPING_FILE = Path(__file__).parents[1] / "examples" / "mappings" / "cn_loan_tape.yaml"
AS_OF = date(2024, 12, 31)


def best_of(repeat: int, run: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - t0)
    return best, result


def synthetic_tape(rows: int, seed: int) -> pl.DataFrame:
    """A tape in runoff's fields: a consistent book on AS_OF, 1 % of rows broken in rotating ways."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2023-01-01")
    originated = start + rng.integers(0, 700, rows).astype("timedelta64[D]")
    term = rng.choice([3, 6, 12, 24], rows)
    method = rng.choice(
        ["equal-installment", "equal-principal", "flat-fee", "interest-only"], rows, p=[0.3, 0.1, 0.55, 0.05]
    )
    flat = method == "flat-fee"
    principal = rng.integers(10_000, 5_000_000, rows)
    balance = (principal * rng.random(rows)).astype(np.int64)
    dpd = np.where(rng.random(rows) < 0.06, rng.integers(1, 90, rows), 0)
    age = (np.datetime64(AS_OF) - originated).astype(np.int64)
    dpd = np.minimum(dpd, age)
    status = np.where(dpd > 0, "overdue", np.where(balance == 0, "paid-off", "current"))
    tape = pl.DataFrame(
        {
            "loan_id": np.arange(1, rows + 1, dtype=np.int64) + 10_000_000,
            "customer_id": rng.integers(1, max(2, rows // 3), rows),
            "account_id": None,
            "product_id": None,
            "method": method,
            "term_months": term,
            "annual_rate": np.where(flat, np.nan, rng.choice([0.12, 0.15, 0.18, 0.21, 0.24], rows)),
            "fee_rate": np.where(flat, rng.choice([0.005, 0.006, 0.007, 0.0075, 0.008], rows), np.nan),
            "principal_fen": principal,
            "originated_on": originated,
            "first_due_on": None,
            "maturity_on": None,
            "status": status,
            "closed_on": None,
            "principal_balance_fen": balance,
            "dpd": dpd,
            "oldest_unpaid_due_on": None,
            "as_of": np.full(rows, np.datetime64(AS_OF)),
        },
        strict=False,
    ).with_columns(
        pl.col("originated_on").cast(pl.Date),
        pl.col("as_of").cast(pl.Date),
        pl.col("annual_rate").fill_nan(None),
        pl.col("fee_rate").fill_nan(None),
        pl.col("originated_on").cast(pl.Date).dt.offset_by("1mo").alias("first_due_on"),
        pl.col("originated_on")
        .cast(pl.Date)
        .dt.offset_by(pl.format("{}mo", pl.col("term_months")))
        .alias("maturity_on"),
        pl.col("customer_id").alias("account_id"),
    )
    return tape


def break_rows(text: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Spoil 1 % of the rows, each in one of six ways (text, range, date, balance, DPD, duplicate id)."""
    rng = np.random.default_rng(seed + 1)
    n = text.height
    bad = rng.choice(n, max(1, n // 100), replace=False)
    kind = np.full(n, -1)
    kind[bad] = np.arange(bad.size) % 6
    k = pl.Series("__kind", kind)
    c = pl.col
    return (
        text.with_columns(k)
        .with_columns(
            pl.when(c("__kind") == 0).then(c("本金") + "x").otherwise(c("本金")).alias("本金"),
            pl.when(c("__kind") == 1).then(pl.lit("0")).otherwise(c("期数")).alias("期数"),
            pl.when(c("__kind") == 2).then(pl.lit("2022/01/01")).otherwise(c("到期日")).alias("到期日"),
            pl.when(c("__kind") == 3).then("9" + c("本金")).otherwise(c("剩余本金")).alias("剩余本金"),
            pl.when(c("__kind") == 4).then(pl.lit("9999")).otherwise(c("逾期天数")).alias("逾期天数"),
            pl.when(c("__kind") == 5).then(c("借据号").first()).otherwise(c("借据号")).alias("借据号"),
        )
        .drop("__kind")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--with-ledger", action="store_true", help="also time an import into the SQLite ledger")
    args = parser.parse_args()

    mapping = load_mapping(MAPPING_FILE)
    tmp = Path(tempfile.mkdtemp(prefix="bench_import_"))
    try:
        t0 = time.perf_counter()
        tape = synthetic_tape(args.rows, args.seed)
        text = break_rows(tape_in_source_columns(tape, mapping), args.seed)
        path = tmp / "借据明细.csv"
        text.write_csv(path)
        size_mb = path.stat().st_size / 1e6
        print(
            f"tape: {args.rows:,} rows, {size_mb:,.1f} MB CSV, {len(text.columns)} columns (built in {time.perf_counter() - t0:.1f} s)"
        )

        def floor_inferred() -> int:
            # Type inference over the whole file: the default 100 rows would stop at the first bad amount.
            frame = pl.read_csv(path, infer_schema_length=None)
            frame.write_parquet(tmp / "floor.parquet")
            return frame.height

        def floor_text() -> int:
            frame = pl.read_csv(path, infer_schema=False)
            frame.write_parquet(tmp / "floor_text.parquet")
            return frame.height

        runs = iter(range(args.repeat))

        def runoff_import() -> Any:
            root = tmp / f"ws{next(runs)}"
            workspace = Workspace.init(root)
            outcome = import_tapes([path], workspace=workspace, mapping=mapping, imported_at=datetime.now(UTC))
            return outcome

        inferred_s, floor_rows = best_of(args.repeat, floor_inferred)
        text_s, _ = best_of(args.repeat, floor_text)
        ours_s, outcome = best_of(args.repeat, runoff_import)
        assert floor_rows == outcome.read == outcome.loaded + outcome.quarantined
        floor_s = min(inferred_s, text_s)
        print(
            f"floor: pl.read_csv (types inferred) → write_parquet  {inferred_s:7.2f} s  ({args.rows / inferred_s:11,.0f} rows/s)"
        )
        print(
            f"floor: pl.read_csv (all text) → write_parquet        {text_s:7.2f} s  ({args.rows / text_s:11,.0f} rows/s)"
        )
        print(
            f"runoff import: hash, read, convert, check, stage, commit {ours_s:7.2f} s  ({args.rows / ours_s:11,.0f} rows/s)"
        )
        print(f"ratio: {ours_s / floor_s:.2f}× the faster floor (goal: ≤ 2×)")
        print(
            f"read {outcome.read:,} = loaded {outcome.loaded:,} + quarantined {outcome.quarantined:,}; "
            f"reasons: {outcome.reasons()}"
        )
        if args.with_ledger:
            workspace = Workspace.init(tmp / "ws-ledger")
            with build_context(Settings(workspace=workspace.root)) as ctx:
                t0 = time.perf_counter()
                done = import_tapes(
                    [path],
                    workspace=workspace,
                    mapping=mapping,
                    loader=ledger_position_loader(ctx),
                    imported_at=datetime.now(UTC),
                )
                ledger_s = time.perf_counter() - t0
            print(
                f"runoff import + SQLite ledger bulk load of the open loans: {ledger_s:7.2f} s (ledger: {done.ledger})"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
