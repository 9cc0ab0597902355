"""Use cases of the assessment (事前评估): read the book from the workspace, compute, write outputs and the report.

Whole-book work runs as per-partition functions plus merges on :func:`runoff.store.executors.run_partitions`
(in this process, or on Dask with a scheduler address). Each partition is read once (only the columns the
analytics need), segments are joined on once, and every metric's partial sums come out of the same pass.
The per-partition functions are module-level so Dask workers can import them.

Outputs go to ``data/risk/*.parquet`` (tables a notebook or the web app reads back), the report to
``reports/assessment.html``; alerts to ``data/risk/alerts.parquet`` with their lifecycle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from runoff.errors import InvalidInput, NotFound
from runoff.risk.delinquency import (
    DEFAULT_DIMENSIONS,
    SEGMENTS,
    book_as_of,
    check_dimensions,
    delinquency_partition,
    merge_delinquency,
    overdue_rates,
    prepare_book,
)
from runoff.risk.roll_rates import (
    concentration,
    concentration_partition,
    flow_rates,
    merge_concentration,
    merge_transitions,
    roll_rates,
    segment_concentration,
    transition_partition,
)
from runoff.risk.vintage import (
    first_payment_default,
    merge_vintages,
    vintage_curves,
    vintage_partition,
)
from runoff.store.executors import run_partitions
from runoff.store.workspace import Workspace

Progress = Callable[[int, int], None]

METRICS: tuple[str, ...] = ("delinquency", "vintages", "transitions", "concentration")
"""The whole-book analytics one pass computes (any subset)."""

RISK_DIR = "risk"
REPORT_FILE = "assessment.html"
TOP_N = 100


# --- the analytics pass --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnalyticsTask:
    """One partition of an analytics pass, as sent to a worker."""

    root: str
    partition: int
    as_of: date
    dimensions: tuple[str, ...]
    metrics: tuple[str, ...] = METRICS
    top_n: int = TOP_N


def _scan_if_present(workspace: Workspace, table: str, partition: int) -> pl.LazyFrame | None:
    return workspace.scan(table, partition) if workspace.partition_path(table, partition).is_file() else None


def analytics_partition_task(task: AnalyticsTask) -> dict[str, Any]:
    """Partial sums of every requested metric for one partition (performance read once)."""
    workspace = Workspace(Path(task.root))
    loans = _scan_if_present(workspace, "loans", task.partition)
    customers = _scan_if_present(workspace, "customers", task.partition)
    book = prepare_book(
        workspace.scan("performance", task.partition),
        loans=loans,
        customers=customers,
        dimensions=task.dimensions,
        as_of=task.as_of,
    )
    out: dict[str, Any] = {}
    if "delinquency" in task.metrics:
        out["delinquency"] = delinquency_partition(book)
    if "vintages" in task.metrics:
        if loans is None:
            raise NotFound(
                f"table `loans` partition {task.partition} is not in {workspace.data_dir}; vintage curves need "
                "each loan's vintage and principal"
            )
        out["vintages"] = vintage_partition(book, loans)
    if "transitions" in task.metrics:
        out["transitions"] = transition_partition(book)
    if "concentration" in task.metrics:
        out["concentration"] = concentration_partition(book, top_n=task.top_n)
    return out


@dataclass(frozen=True, slots=True)
class BookAnalytics:
    """The book's merged sums (counts and fen) per metric; every ratio is computed from these."""

    as_of: date
    dimensions: tuple[str, ...]
    delinquency_sums: pl.DataFrame | None = None
    vintage_sums: dict[str, pl.DataFrame] | None = None
    transition_counts: pl.DataFrame | None = None
    concentration_sums: dict[str, pl.DataFrame] | None = None

    def overdue_rates(self) -> pl.DataFrame:
        return overdue_rates(_needed(self.delinquency_sums, "delinquency"))

    def vintage_curves(self) -> pl.DataFrame:
        return vintage_curves(_needed(self.vintage_sums, "vintages"), as_of=self.as_of)

    def first_payment_default(self) -> pl.DataFrame:
        return first_payment_default(_needed(self.vintage_sums, "vintages"), as_of=self.as_of)

    def roll_rates(self) -> pl.DataFrame:
        return roll_rates(_needed(self.transition_counts, "transitions"))

    def flow_rates(self) -> pl.DataFrame:
        return flow_rates(_needed(self.transition_counts, "transitions"))

    def concentration(self) -> pl.DataFrame:
        return concentration(_needed(self.concentration_sums, "concentration"))

    def segment_concentration(self) -> pl.DataFrame:
        return segment_concentration(self.overdue_rates(), as_of=self.as_of)


def _needed(value: Any, metric: str) -> Any:
    if value is None:
        raise InvalidInput(f"`metrics`: {metric} was not computed in this pass; include it in `metrics`")
    return value


def merge_analytics(
    parts: Sequence[dict[str, Any]], *, as_of: date, dimensions: tuple[str, ...], top_n: int = TOP_N
) -> BookAnalytics:
    """Add the partitions' partial sums, metric by metric."""

    def of(key: str) -> list[Any]:
        return [p[key] for p in parts if key in p]

    present = set().union(*(p.keys() for p in parts)) if parts else set()
    return BookAnalytics(
        as_of=as_of,
        dimensions=dimensions,
        delinquency_sums=merge_delinquency(of("delinquency")) if "delinquency" in present else None,
        vintage_sums=merge_vintages(of("vintages")) if "vintages" in present else None,
        transition_counts=merge_transitions(of("transitions")) if "transitions" in present else None,
        concentration_sums=merge_concentration(of("concentration"), top_n=top_n)
        if "concentration" in present
        else None,
    )


@dataclass(frozen=True, slots=True)
class _Merger:
    """A picklable merge (Dask-friendly) with the pass's parameters bound."""

    as_of: date
    dimensions: tuple[str, ...]
    top_n: int

    def __call__(self, parts: Sequence[dict[str, Any]]) -> BookAnalytics:
        return merge_analytics(parts, as_of=self.as_of, dimensions=self.dimensions, top_n=self.top_n)


def performance_partitions(workspace: Workspace) -> list[int]:
    """The partitions of the performance table; a clear error when the book is not there."""
    parts = workspace.partitions("performance")
    if not parts:
        raise NotFound(
            f"table `performance` is not in {workspace.data_dir}; run `runoff generate` or `runoff import` first",
            code="risk.no_book",
        )
    return parts


def resolve_as_of(workspace: Workspace, as_of: date | None) -> date:
    """The month end the assessment stands on: the last snapshot on or before ``as_of`` (default: the last)."""
    performance_partitions(workspace)
    return book_as_of(workspace.scan("performance"), as_of)


def book_analytics(
    workspace: Workspace,
    *,
    as_of: date | None = None,
    dimensions: Sequence[str] = DEFAULT_DIMENSIONS,
    metrics: Sequence[str] = METRICS,
    scheduler: str | None = None,
    progress: Progress | None = None,
    top_n: int = TOP_N,
) -> BookAnalytics:
    """One pass over the book: every requested metric's sums, merged across partitions."""
    dims = check_dimensions(dimensions)
    for m in metrics:
        if m not in METRICS:
            raise InvalidInput(
                f"`metrics`: {m!r} is not a metric; expected any of {', '.join(METRICS)}", field="metrics"
            )
    when = resolve_as_of(workspace, as_of)
    root = str(workspace.root.resolve())
    tasks = [AnalyticsTask(root, p, when, dims, tuple(metrics), top_n) for p in performance_partitions(workspace)]
    return run_partitions(
        analytics_partition_task, tasks, _Merger(when, dims, top_n), scheduler=scheduler, progress=progress
    )


def segment_names() -> list[str]:
    """The segment dimensions a user can pick (``--by``)."""
    return list(SEGMENTS)
