"""`runoff close-day --as-of DATE` (日终批处理) and `runoff repost --loan ID --from DATE` (回溯重算).

``close-day`` shows a progress bar per step on stderr (reposts, then aging and penalties) and prints
what the close did; ``--json`` prints one object (see :meth:`runoff.app.close_day.CloseDayResult.to_dict`).
``repost`` redoes one loan's allocations and penalties from a value date, touching no other loan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from runoff.app.close_day import CloseDayResult, close_day, repost_loan
from runoff.app.context import AppContext
from runoff.app.month_end import AfterClose, month_end_of, snapshot_after_close
from runoff.cli.ledger import ActorOption, WorkspaceOption, actor_name, ledger_context, parse_date
from runoff.cli.month_end import reading, render_after_close
from runoff.cli.output import JsonOption, emit, err_console
from runoff.store.ledger.daily_close import DEFAULT_CHUNK

_STEPS = {"repost": "reposting backdated loans", "age": "DPD, buckets and penalties"}


@contextmanager
def _progress(*, quiet: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A Rich progress bar per close step on stderr (none with --json or when stderr is not a terminal)."""
    if quiet or not err_console.is_terminal:
        yield None
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    tasks: dict[str, TaskID] = {}

    def update(step: str, done: int, total: int) -> None:
        if step not in tasks:
            tasks[step] = bar.add_task(_STEPS.get(step, step), total=total)
        bar.update(tasks[step], completed=done, total=total)

    with bar:
        yield update


def _render_close(result: CloseDayResult, console: Console) -> None:
    data = result.to_dict()
    head = Table(title=f"close-day {data['as_of']}", show_header=False)
    if result.already_closed:
        head.add_row("already closed", f"close #{result.close_id}: nothing changed")
    head.add_row("previous close", data["previous_as_of"] or "(none)")
    head.add_row("loans reposted", f"{result.reposted:,}")
    head.add_row("credit applied", f"{data['credit_applied']} on {result.credit_loans:,} loans")
    head.add_row("loans overdue", f"{result.delinquent_loans:,}")
    head.add_row("penalty accrued", f"{data['penalty_accrued']} on {result.loans_charged:,} loans")
    head.add_row("loans back to current", f"{result.cured_loans:,}")
    head.add_row("journal entries", f"{result.entries:,}")
    head.add_row("seconds", f"{result.seconds:.2f}")
    console.print(head)
    buckets = Table(title="Open loans by bucket")
    for col in ("bucket", "loans", "principal"):
        buckets.add_column(col, justify="left" if col == "bucket" else "right")
    for bucket, row in data["by_bucket"].items():
        buckets.add_row(bucket, f"{row['loans']:,}", row["principal"])
    console.print(buckets)


def _month_end(ctx: AppContext, day: date, *, skip: bool, quiet: bool) -> AfterClose | None:
    """The month end's snapshot after its close (None on other days). Automatic, so no month goes missing from
    the performance table because a flag was forgotten; ``--no-snapshot`` leaves it to ``runoff snapshot``."""
    if day != month_end_of(day):
        return None
    if skip:
        return AfterClose("skipped", reason=f"--no-snapshot (write it with `runoff snapshot --as-of {day}`)")
    with reading(quiet=quiet, as_of=day.isoformat()):
        return snapshot_after_close(ctx, as_of=day)


def register(app: typer.Typer) -> None:
    """Add ``close-day`` and ``repost`` to ``app``."""

    @app.command("close-day")
    def close_day_command(
        as_of: str = typer.Option(..., "--as-of", help="Day to close (YYYY-MM-DD).", show_default=False),
        allow_backwards: bool = typer.Option(
            False, "--allow-backwards", help="Close a day before the last close (recomputes DPD and buckets only)."
        ),
        chunk_size: int = typer.Option(DEFAULT_CHUNK, "--chunk-size", min=1, help="Loans per set-based page."),
        no_snapshot: bool = typer.Option(
            False,
            "--no-snapshot",
            help="On a month end, leave the workspace's performance table alone (`runoff snapshot` writes it later).",
        ),
        workspace: Path | None = WorkspaceOption,
        actor: str | None = ActorOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Daily close: DPD, buckets and penalty interest for every open loan, set-based; reposts backdated loans.

        On the last day of a month, when the workspace holds a book, the month end is then appended to its
        performance table (月末表现快照, as `runoff snapshot`); exit 1 when the close is done but that failed.
        """
        day = parse_date(as_of, field="as-of")
        with ledger_context(workspace) as ctx:
            with _progress(quiet=as_json) as progress:
                result = close_day(
                    as_of=day,
                    actor=actor_name(actor),
                    uow=ctx.uow(),
                    allow_backwards=allow_backwards,
                    chunk_size=chunk_size,
                    progress=progress,
                )
            after = _month_end(ctx, day, skip=no_snapshot, quiet=as_json)

        def render(console: Console) -> None:
            _render_close(result, console)
            if after is not None:
                render_after_close(after, console)

        emit({**result.to_dict(), "snapshot": after.to_dict() if after else None}, as_json=as_json, render=render)
        if after is not None and after.status == "failed":
            err_console.print(
                f"[red]error[/red] {after.error.code if after.error else 'month_end.failed'}: the close of {day} is "
                f"done; its month-end snapshot failed: {after.reason}; run `runoff snapshot --as-of {day}` once fixed",
                markup=True,
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(code=1)

    @app.command("repost")
    def repost_command(
        loan: str = typer.Option(..., "--loan", help="Loan id.", show_default=False),
        from_date: str | None = typer.Option(
            None, "--from", help="Value date to repost from (default: the date its backdated payment flagged)."
        ),
        workspace: Path | None = WorkspaceOption,
        actor: str | None = ActorOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Repost one loan: re-allocate its payments and re-accrue penalties from a value date (回溯重算)."""
        start = parse_date(from_date, field="from") if from_date else None
        with ledger_context(workspace) as ctx:
            result = repost_loan(loan, from_date=start, actor=actor_name(actor), uow=ctx.uow())
        data = result.to_dict()

        def render(console: Console) -> None:
            console.print(
                f"loan {result.loan_id} reposted from {data['reposted_from']} to {data['as_of']}: "
                f"{result.allocations_reversed} allocations reversed, {result.allocations_posted} posted, "
                f"{result.entries_posted} journal entries; penalty {data['penalty_before']} → {data['penalty_after']}"
                + (" (loan closed)" if result.closed else ""),
                highlight=False,
            )

        emit(data, as_json=as_json, render=render)
