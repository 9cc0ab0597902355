"""Month-end performance snapshots from the ledger (月末表现快照): the book's ``performance`` table after go-live.

Before go-live the month ends are the book's own (the generator's; an imported tape brings loans and their
positions on the tape's date, not month ends); once the wind-down runs on the ledger, :func:`snapshot_month_end` appends one row per loan for each month end, read from the ledger with a
handful of set-based statements (never a query per loan) and written to the ``performance`` partition that
holds the loan, under the book's own ids, so the risk functions read the ledger's months together with the
book's earlier ones.

Every row is the loan's state at the end of ``as_of`` as the ledger knows it now, whenever the snapshot
runs (what was posted with a later value date is taken back out); how each column is read, and how it
matches the generator's definition, is in :mod:`runoff.store.ledger.month_end`.

Every column comes from the ledger; only the customer id and the partition come from the book's ``loans``
table (the ledger keys loans by the book id written as text, :mod:`runoff.portfolio.tape.ids`). A ledger
loan that is not in the book (opened with ``runoff loan open`` under a text id) gets no row and is
counted in the result, never dropped silently.

**Refusals.** A date that is not the last day of its month (unless ``any_day``); a day the daily close
has not been run for (penalties are accrued to the close, so the month's penalty and overdue amounts
stand on it); a month the book's own rows (generated or imported) already hold, or one before them.

**Idempotent.** The months written from the ledger are listed in ``data/performance/ledger-months.json``
(kept in the table's folder, so regenerating the book drops it with the table). Running a month again
replaces that month's rows, partition by partition; a month holds one snapshot date (an ``any_day``
snapshot is replaced by the month's own end later). One snapshot at a time per workspace.

:func:`snapshot_after_close` is what ``runoff close-day`` runs after the close of a month's last day.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from sqlalchemy import Connection, func, select

from runoff.errors import Conflict, InvalidInput, NotFound, RunoffError
from runoff.money import from_minor
from runoff.portfolio.schemas import BUCKETS, LOAN_STATUSES, PERFORMANCE
from runoff.store.ledger.models import ledger_closes
from runoff.store.ledger.month_end import LEDGER_COLUMNS, ledger_month_end, month_end_of
from runoff.store.workspace import MARKER, Workspace

if TYPE_CHECKING:
    from runoff.app.context import AppContext

__all__ = [
    "LEDGER_COLUMNS",
    "AfterClose",
    "MonthEndResult",
    "ledger_month_end",
    "ledger_months",
    "month_end_of",
    "snapshot_after_close",
    "snapshot_month_end",
]

TABLE = "performance"
MONTHS_FILE = "ledger-months.json"
"""The ledger's months of the performance table, beside its partitions (``data/performance/``)."""
LOCK_FILE = ".month-end.lock"
"""Held (``data/.month-end.lock``) while a snapshot checks, reads and writes."""


def _month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


# --- the use case: append the month to the workspace's performance table --------------------------------------------


@dataclass(frozen=True, slots=True)
class MonthEndResult:
    """What a snapshot wrote: rows for the month, what it replaced, the ledger loans the book does not hold."""

    as_of: date
    close_id: int
    rows: int
    replaced_rows: int
    partitions: tuple[int, ...]
    by_status: dict[str, int]
    by_bucket: dict[str, dict[str, int]]  # bucket → loans, principal_fen
    not_in_book: int
    not_in_book_sample: tuple[str, ...]
    seconds: float = 0.0
    seconds_by_step: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "month": _month_key(self.as_of),
            "close_id": self.close_id,
            "rows": self.rows,
            "replaced_rows": self.replaced_rows,
            "partitions": list(self.partitions),
            "by_status": self.by_status,
            "by_bucket": {
                b: {"loans": v["loans"], "principal": str(from_minor(v["principal_fen"]))}
                for b, v in self.by_bucket.items()
            },
            "not_in_book": self.not_in_book,
            "not_in_book_sample": list(self.not_in_book_sample),
            "seconds": round(self.seconds, 3),
            "seconds_by_step": {k: round(v, 3) for k, v in self.seconds_by_step.items()},
        }


def ledger_months(workspace: Workspace) -> dict[str, dict[str, Any]]:
    """The months of the performance table written from the ledger (``YYYY-MM`` → what the snapshot recorded)."""
    path = _months_path(workspace)
    if not path.is_file():
        return {}
    months: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8")).get("months", {})
    return months


def _months_path(workspace: Workspace) -> Path:
    return workspace.table_dir(TABLE) / MONTHS_FILE


def _write_months(workspace: Workspace, months: dict[str, dict[str, Any]]) -> None:
    path = _months_path(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    body = {"table": TABLE, "source": "ledger", "months": dict(sorted(months.items()))}
    tmp.write_text(json.dumps(body, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _book_index(workspace: Workspace) -> pl.DataFrame:
    """Every loan of the book with its customer and the partition that holds it."""
    parts = workspace.partitions("loans")
    if not parts:
        raise NotFound(
            f"no book in {workspace.data_dir}: the snapshot appends to the book's performance table and takes each "
            "loan's customer and partition from its loans table; run `runoff generate` or `runoff import` first",
            code="month_end.no_book",
        )
    return pl.concat(
        [
            workspace.scan("loans", p)
            .select(pl.col("loan_id").cast(pl.Int64), pl.col("customer_id").cast(pl.Int64))
            .with_columns(pl.lit(p, pl.Int64).alias("partition"))
            .collect()
            for p in parts
        ]
    )


def _months_by_partition(workspace: Workspace) -> dict[int, set[str]]:
    """The months (``YYYY-MM``) each performance partition holds rows for."""
    out: dict[int, set[str]] = {}
    for p in workspace.partitions(TABLE):
        ends = workspace.scan(TABLE, p).select(pl.col("month_end").unique()).collect().get_column("month_end")
        out[p] = {_month_key(d) for d in ends.to_list() if d is not None}
    return out


def _check_month(as_of: date, *, any_day: bool, held: dict[int, set[str]], from_ledger: set[str]) -> None:
    if not any_day and as_of != month_end_of(as_of):
        raise InvalidInput(
            f"`as_of`: {as_of.isoformat()} is not a month end; expected the last day of its month "
            f"({month_end_of(as_of).isoformat()}), or say any day will do (--any-day)",
            field="as_of",
            code="month_end.not_month_end",
        )
    book_months = set().union(*held.values()) - from_ledger if held else set()
    month = _month_key(as_of)
    if month in book_months:
        raise Conflict(
            f"`as_of`: the performance table already holds the book's own rows for {month} (generated or "
            f"imported); month ends from the ledger follow the book's last month, {max(book_months)}",
            field="as_of",
            code="month_end.book_month",
        )
    later = sorted(m for m in book_months if m > month)
    if later:
        raise Conflict(
            f"`as_of`: {month} is before the book's own months (up to {later[-1]}); month ends from the ledger "
            "follow the book's last month",
            field="as_of",
            code="month_end.book_month",
        )


def _close_of(conn: Connection, as_of: date) -> int:
    """The id of the finished daily close of ``as_of``; refused, naming the close that is missing, otherwise."""
    c = ledger_closes
    found = conn.execute(
        select(c.c.id).where(c.c.status == "done", c.c.as_of == as_of).order_by(c.c.id.desc()).limit(1)
    ).scalar()
    if found is not None:
        return int(found)
    last = conn.execute(select(func.max(c.c.as_of)).where(c.c.status == "done")).scalar()
    raise Conflict(
        f"`as_of`: the daily close of {as_of.isoformat()} has not been run (last close: "
        f"{last.isoformat() if last else 'none yet'}); the month end stands on that close's DPD and penalty — "
        f"run `runoff close-day --as-of {as_of.isoformat()}` first",
        field="as_of",
        code="month_end.close_missing",
        details={"missing_close": as_of.isoformat(), "last_close": last.isoformat() if last else None},
    )


def snapshot_month_end(workspace: Workspace, ctx: AppContext, *, as_of: date, any_day: bool = False) -> MonthEndResult:
    """Append the ledger's month end ``as_of`` to the workspace's ``performance`` table (see the module docstring).

    Refused, before anything is read from the ledger, for a day that is not a month end (unless ``any_day``) and
    for a month the book's own rows hold or precede; then for a day the daily close has not been run for. Running
    it again for the same month replaces that month's rows. One snapshot at a time per workspace.
    """
    with _snapshot_lock(workspace):
        return _snapshot(workspace, ctx, as_of=as_of, any_day=any_day)


def _snapshot_lock(workspace: Workspace) -> contextlib.AbstractContextManager[None]:
    """One snapshot at a time per workspace (the close's hook and ``runoff snapshot`` may meet)."""
    busy = Conflict(
        f"another month-end snapshot is writing the performance table of {workspace.root}; wait for it to finish",
        code="month_end.busy",
    )
    return workspace.exclusive(workspace.data_dir / LOCK_FILE, busy)


def _snapshot(workspace: Workspace, ctx: AppContext, *, as_of: date, any_day: bool) -> MonthEndResult:
    started = time.perf_counter()
    steps: dict[str, float] = {}
    held = _months_by_partition(workspace)
    months = ledger_months(workspace)
    _check_month(as_of, any_day=any_day, held=held, from_ledger=set(months))
    index = _book_index(workspace)
    steps["book"] = time.perf_counter() - started

    with ctx.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            close_id = _close_of(conn, as_of)
            rows, reads = ledger_month_end(conn, as_of)
    steps |= {f"read_{k}": v for k, v in reads.items()}

    clock = time.perf_counter()
    keyed = rows.with_columns(pl.col("ledger_id").cast(pl.Int64, strict=False).alias("loan_id"))
    matched = keyed.join(index, on="loan_id", how="inner")
    missing = keyed.join(index, on="loan_id", how="anti").get_column("ledger_id")
    new = matched.select("partition", *PERFORMANCE.names)
    month = _month_key(as_of)
    touched = sorted(set(new.get_column("partition").unique().to_list()) | {p for p, m in held.items() if month in m})
    months[month] = {"as_of": as_of.isoformat(), "status": "writing", "close_id": close_id}
    _write_months(workspace, months)
    replaced = 0
    first, last = as_of.replace(day=1), month_end_of(as_of)
    for p in touched:
        mine = new.filter(pl.col("partition") == p).drop("partition")
        if workspace.partition_path(TABLE, p).is_file():
            old = workspace.read_partition(TABLE, p)
            in_month = old.get_column("month_end").is_between(first, last)
            replaced += int(in_month.sum())
            mine = pl.concat([PERFORMANCE.conform(old.filter(~in_month)), PERFORMANCE.conform(mine)])
        workspace.write_partition(TABLE, p, mine.sort("loan_id", "month_end"))
    steps["write"] = time.perf_counter() - clock

    by_bucket = new.group_by("bucket").agg(
        pl.len().alias("loans"), pl.col("principal_balance_fen").sum().alias("principal_fen")
    )
    counts = {str(r["bucket"]): r for r in by_bucket.iter_rows(named=True)}
    statuses = dict(new.group_by("status").len().iter_rows())
    result = MonthEndResult(
        as_of=as_of,
        close_id=close_id,
        rows=new.height,
        replaced_rows=replaced,
        partitions=tuple(sorted(set(new.get_column("partition").to_list()))),
        by_status={s: int(statuses[s]) for s in LOAN_STATUSES if s in statuses},
        by_bucket={
            b: {"loans": int(counts[b]["loans"]), "principal_fen": int(counts[b]["principal_fen"])}
            for b in BUCKETS
            if b in counts
        },
        not_in_book=missing.len(),
        not_in_book_sample=tuple(missing.head(5).to_list()),
        seconds=time.perf_counter() - started,
        seconds_by_step=steps,
    )
    months[month] = {
        "as_of": as_of.isoformat(),
        "status": "done",
        "close_id": close_id,
        "rows": result.rows,
        "not_in_book": result.not_in_book,
        "partitions": list(result.partitions),
        "written_at": ctx.clock().isoformat(),
    }
    _write_months(workspace, months)
    return result


# --- after the daily close of a month end ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AfterClose:
    """What the month-end close did about the snapshot: ``written``, ``skipped`` (and why) or ``failed`` (and why)."""

    status: str
    reason: str | None = None
    result: MonthEndResult | None = None
    error: RunoffError | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.reason is not None:
            out["reason"] = self.reason
        if self.result is not None:
            out |= self.result.to_dict()
        if self.error is not None:
            out["error"] = self.error.to_dict()
        return out


def snapshot_after_close(ctx: AppContext, *, as_of: date) -> AfterClose | None:
    """The month end's snapshot after its daily close, into the context's workspace; None when ``as_of`` is not one.

    Skipped when the workspace folder is not a workspace, holds no book, or the month is the book's own (the
    go-live month: the ledger was loaded from it). A refusal or a file error is returned, not raised: the close
    itself is done and committed; ``runoff snapshot --as-of`` writes the month once the cause is fixed.
    """
    if as_of != month_end_of(as_of):
        return None
    root = Path(ctx.settings.workspace)
    if not (root / MARKER).is_file():
        return AfterClose("skipped", reason=f"{root} is not a workspace (no {MARKER}): no performance table to extend")
    workspace = Workspace(root)
    if not workspace.has_table("loans"):
        return AfterClose("skipped", reason=f"the workspace {root} holds no book (no loans table)")
    try:
        return AfterClose("written", result=snapshot_month_end(workspace, ctx, as_of=as_of))
    except RunoffError as exc:
        if exc.code == "month_end.book_month":
            return AfterClose("skipped", reason=exc.message)
        return AfterClose("failed", reason=exc.message, error=exc)
    except OSError as exc:
        error = RunoffError(f"cannot write the month end to {workspace.table_dir(TABLE)}: {exc}", code="month_end.io")
        return AfterClose("failed", reason=error.message, error=error)
