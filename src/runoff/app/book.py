"""Use cases of the book: create a workspace, generate a synthetic book into it, summarise what it holds.

Each whole-book job is a per-partition function plus a merge, run by :func:`runoff.store.executors.run_partitions`
in this process or on a Dask cluster. The per-partition functions are module-level so Dask workers can import them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from sqlalchemy import Connection, func, select

from runoff.errors import Conflict, NotFound
from runoff.portfolio import generator
from runoff.portfolio.calibration import Calibration, calibration_partition, merge_calibration
from runoff.portfolio.generator import BookConfig, book_truth, product_catalogue
from runoff.portfolio.positions import open_positions
from runoff.portfolio.schemas import TABLES
from runoff.portfolio.summary import BookSummary, PartialSummary, merge_summaries, summarise_partition
from runoff.store.executors import run_partitions
from runoff.store.ledger.bulk import load_book
from runoff.store.ledger.models import loans as ledger_loans
from runoff.store.workspace import Workspace

if TYPE_CHECKING:
    from runoff.app.context import AppContext

BOOK_FILE = "book.json"
TRUTH_DIR = "truth"

Progress = Callable[[int, int], None]

BOOK_REGION = "CN"
"""The synthetic book's customers live in mainland China; the ledger's region is an ISO 3166 code (city tier is not a region)."""


def init_workspace(path: Path | str) -> Workspace:
    """``runoff init DIR``: create the workspace folders and runoff.toml (the ledger creates ledger.db)."""
    return Workspace.init(path)


# --- generate ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GenerateTask:
    """One partition of a generation job, as sent to a worker."""

    root: str
    config: BookConfig
    partition: int


def generate_partition_task(task: GenerateTask) -> dict[str, int]:
    """Generate one partition and write its six tables; returns row counts and amounts (fen)."""
    workspace = Workspace(Path(task.root))
    frames = generator.generate_partition(task.config, task.partition)
    out = {f"{name}_rows": frame.height for name, frame in frames.items()}
    out["principal_fen"] = int(frames["loans"].get_column("principal_fen").sum())
    for name, frame in frames.items():
        workspace.write_partition(name, task.partition, frame)
    return out


def _add_counts(parts: Sequence[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in parts:
        for key, value in part.items():
            total[key] = total.get(key, 0) + value
    return total


@dataclass(frozen=True, slots=True)
class GenerateResult:
    config: BookConfig
    partitions: int
    totals: dict[str, int]
    truth_files: list[str]
    calibration: dict[str, dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.model_dump(mode="json"),
            "partitions": self.partitions,
            "totals": self.totals,
            "truth_files": self.truth_files,
            "calibration": self.calibration,
        }


def generate_book(
    workspace: Workspace, config: BookConfig, *, scheduler: str | None = None, progress: Progress | None = None
) -> GenerateResult:
    """``runoff generate``: replace the workspace's book with a synthetic one and save its true parameters."""
    for table in TABLES:
        workspace.clear_table(table)
    (workspace.data_dir / BOOK_FILE).unlink(missing_ok=True)
    truth = book_truth(config)
    truth_files = [
        str(workspace.write_frame(f"{TRUTH_DIR}/transitions.parquet", truth.transitions_frame())),
        str(workspace.write_frame(f"{TRUTH_DIR}/macro.parquet", truth.macro_frame())),
        str(workspace.write_json(f"{TRUTH_DIR}/parameters.json", truth.as_dict())),
        str(
            workspace.write_json(f"{TRUTH_DIR}/products.json", [p.model_dump(mode="json") for p in product_catalogue()])
        ),
    ]
    tasks = [GenerateTask(str(workspace.root.resolve()), config, p) for p in range(config.n_partitions)]
    totals = run_partitions(generate_partition_task, tasks, _add_counts, scheduler=scheduler, progress=progress)
    calibration = book_calibration(workspace, scheduler=scheduler)
    result = GenerateResult(
        config=config,
        partitions=len(tasks),
        totals=totals,
        truth_files=truth_files,
        calibration=calibration.figures(),
    )
    workspace.write_json(BOOK_FILE, {"source": "generated", **result.as_dict()})
    return result


# --- info ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InfoTask:
    root: str
    partition: int


def info_partition_task(task: InfoTask) -> PartialSummary:
    """Partial summary of one partition, read with lazy Parquet scans."""
    workspace = Workspace(Path(task.root))
    present = {t: workspace.partition_path(t, task.partition).is_file() for t in TABLES}
    counts = {
        t: int(workspace.scan(t, task.partition).select(pl.len()).collect().item())
        for t, here in present.items()
        if here
    }
    loans = workspace.scan("loans", task.partition) if present["loans"] else None
    performance = workspace.scan("performance", task.partition) if present["performance"] else None
    return summarise_partition(loans=loans, performance=performance, row_counts=counts)


def book_info(workspace: Workspace, *, scheduler: str | None = None, progress: Progress | None = None) -> BookSummary:
    """``runoff info``: counts, balances by bucket, product and vintage, and the date range."""
    partitions = sorted(set().union(*(workspace.partitions(t) for t in TABLES)))
    tasks = [InfoTask(str(workspace.root.resolve()), p) for p in partitions]
    return run_partitions(info_partition_task, tasks, merge_summaries, scheduler=scheduler, progress=progress)


def book_metadata(workspace: Workspace) -> dict[str, Any] | None:
    """What data/book.json says about the book (its source and generation settings), if present."""
    path = workspace.data_dir / BOOK_FILE
    return workspace.read_json(BOOK_FILE) if path.is_file() else None


def calibration_partition_task(task: InfoTask) -> pl.DataFrame:
    """Delinquency sums of one partition (D1, 30-day cure, roll to 30 DPD, 90+ balance) by month end."""
    workspace = Workspace(Path(task.root))
    return calibration_partition(
        workspace.scan("performance", task.partition), workspace.scan("payments", task.partition)
    )


def book_calibration(workspace: Workspace, *, scheduler: str | None = None) -> Calibration:
    """The book's delinquency figures beside the published ranges it is calibrated to."""
    tasks = [InfoTask(str(workspace.root.resolve()), p) for p in workspace.partitions("performance")]
    return run_partitions(calibration_partition_task, tasks, merge_calibration, scheduler=scheduler)


# --- ledger --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LedgerLoadResult:
    """What went into the ledger: open loans at ``as_of`` with their customers and credit lines."""

    as_of: date
    customers: int
    accounts: int
    loans: int
    installments: int
    journal_entries: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of,
            "customers": self.customers,
            "accounts": self.accounts,
            "loans": self.loans,
            "installments": self.installments,
            "journal_entries": self.journal_entries,
            "seconds": round(self.seconds, 2),
        }


def load_ledger(
    workspace: Workspace, ctx: AppContext, *, actor: str = "generate", progress: Progress | None = None
) -> LedgerLoadResult:
    """Put the book's current positions (open loans at the last month end) into the ledger, in one transaction.

    Partition by partition: positions are rebuilt from the tables (:func:`runoff.portfolio.positions.open_positions`)
    and written with the ledger's bulk path. A ledger that already holds loans is refused, so a book is never
    loaded twice.
    """
    partitions = workspace.partitions("loans")
    if not partitions:
        raise NotFound(f"no book in {workspace.data_dir}; run `runoff generate` first")
    as_of = workspace.scan("performance").select(pl.col("month_end").max()).collect().item()
    started = time.perf_counter()
    totals = dict.fromkeys(("customers", "accounts", "loans", "installments", "journal_entries"), 0)
    with ctx.uow() as uow:
        conn = uow.connection
        _refuse_a_second_book(conn)
        products = list(product_catalogue())
        for k, p in enumerate(partitions, start=1):
            loans, inst = open_positions(
                loans=workspace.scan("loans", p),
                installments=workspace.scan("installments", p),
                payments=workspace.scan("payments", p),
                performance=workspace.scan("performance", p),
                as_of=as_of,
            )
            customers = workspace.read_partition("customers", p)
            accounts = workspace.read_partition("accounts", p)
            result = load_book(
                conn,
                loans_df=_ledger_loans(loans),
                installments_df=_ledger_installments(inst),
                products=products,  # registering again finds the stored version
                customers_df=customers.select(
                    pl.col("customer_id").cast(pl.String).alias("id"), pl.lit(BOOK_REGION).alias("region")
                ),
                accounts_df=accounts.select(
                    pl.col("account_id").cast(pl.String).alias("id"),
                    pl.col("customer_id").cast(pl.String),
                    "credit_limit_fen",
                    "status",
                    "opened_on",
                ),
                as_of=as_of,
                actor=actor,
                now=uow.now(),
            )
            totals["customers"] += result.customers
            totals["accounts"] += result.accounts
            totals["loans"] += result.loans
            totals["installments"] += result.installments
            totals["journal_entries"] += result.journal_entries
            if progress is not None:
                progress(k, len(partitions))
        uow.commit()
    return LedgerLoadResult(as_of=as_of, seconds=time.perf_counter() - started, **totals)


def ensure_ledger_empty(ctx: AppContext) -> None:
    """Refuse early (before generating) when the ledger already holds loans."""
    with ctx.uow(write=False) as uow:
        _refuse_a_second_book(uow.connection)


def _refuse_a_second_book(conn: Connection) -> None:
    held = conn.execute(select(func.count()).select_from(ledger_loans)).scalar_one()
    if held:
        raise Conflict(
            f"the ledger already holds {held:,} loans; load a generated book into a fresh workspace "
            "(runoff init NEW_DIR, then runoff generate ... --load-ledger)"
        )


def _ledger_loans(loans: pl.DataFrame) -> pl.DataFrame:
    return loans.select(
        pl.col("loan_id").cast(pl.String).alias("id"),
        pl.col("customer_id").cast(pl.String),
        pl.col("account_id").cast(pl.String),
        "product_id",
        "principal_fen",
        pl.col("originated_on").alias("start_date"),
        pl.col("term_months").cast(pl.Int32).alias("term"),
    )


def _ledger_installments(inst: pl.DataFrame) -> pl.DataFrame:
    return inst.select(
        pl.col("loan_id").cast(pl.String),
        pl.col("number").cast(pl.Int32),
        pl.col("due_on").alias("due_date"),
        pl.col("principal_fen").alias("principal_due_fen"),
        pl.col("interest_fen").alias("interest_due_fen"),
        pl.col("fee_fen").alias("fee_due_fen"),
        "principal_paid_fen",
        "interest_paid_fen",
        "fee_paid_fen",
        "interest_waived_fen",
        "fee_waived_fen",
        "penalty_accrued_fen",
        "penalty_paid_fen",
    )
