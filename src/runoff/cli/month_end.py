"""`runoff snapshot --as-of DATE`: append the ledger's month end to the workspace's performance table (月末表现快照).

The daily close of a month end writes the snapshot by itself (``runoff close-day``, unless ``--no-snapshot``);
this command writes it on its own: for a month whose close ran with ``--no-snapshot`` or whose snapshot failed,
or again after a backdated posting changed the month (the month's rows are replaced, never duplicated).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from runoff.app.month_end import AfterClose, MonthEndResult, snapshot_month_end
from runoff.cli.ledger import WorkspaceOption, ledger_context, parse_date
from runoff.cli.output import JsonOption, emit, err_console
from runoff.store.workspace import Workspace


@contextmanager
def reading(*, quiet: bool, as_of: str) -> Iterator[None]:
    """A spinner on stderr while the month end is read and written (none with --json or off a terminal)."""
    if quiet or not err_console.is_terminal:
        yield
        return
    with err_console.status(f"month end {as_of}: reading the ledger and writing the performance table"):
        yield


def render_snapshot(result: MonthEndResult, console: Console) -> None:
    data = result.to_dict()
    head = Table(title=f"month end {data['as_of']} from the ledger", show_header=False)
    head.add_row("daily close", f"#{result.close_id}")
    head.add_row("rows written", f"{result.rows:,} in partition(s) {', '.join(map(str, result.partitions)) or '-'}")
    head.add_row(
        "rows replaced",
        f"{result.replaced_rows:,}" + (" (the month was written before)" if result.replaced_rows else ""),
    )
    head.add_row("loans by status", ", ".join(f"{k} {v:,}" for k, v in result.by_status.items()) or "-")
    if result.not_in_book:
        head.add_row(
            "ledger loans not in the book",
            f"{result.not_in_book:,} (no row written), e.g. {', '.join(result.not_in_book_sample)}",
        )
    head.add_row("seconds", f"{result.seconds:.2f}")
    console.print(head)
    buckets = Table(title="Loans by bucket")
    for col in ("bucket", "loans", "principal"):
        buckets.add_column(col, justify="left" if col == "bucket" else "right")
    for bucket, row in data["by_bucket"].items():
        buckets.add_row(bucket, f"{row['loans']:,}", row["principal"])
    console.print(buckets)


def render_after_close(after: AfterClose, console: Console) -> None:
    """The line ``runoff close-day`` prints about its month-end snapshot."""
    if after.result is not None:
        r = after.result
        again = f", {r.replaced_rows:,} replaced" if r.replaced_rows else ""
        console.print(
            f"month-end snapshot: {r.rows:,} rows for {r.as_of.isoformat()} appended to the performance table"
            f"{again} ({r.seconds:.1f} s)",
            highlight=False,
        )
    elif after.status == "skipped":
        console.print(f"month-end snapshot skipped: {after.reason}", highlight=False)
    else:
        console.print(f"month-end snapshot failed: {after.reason}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``snapshot`` to ``app``."""

    @app.command("snapshot")
    def snapshot_command(
        as_of: str = typer.Option(
            ..., "--as-of", help="Month end to snapshot (YYYY-MM-DD, the last day of a month).", show_default=False
        ),
        any_day: bool = typer.Option(
            False, "--any-day", help="Accept a day that is not a month end (the month's row then holds that day)."
        ),
        workspace: Path | None = WorkspaceOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Append the ledger's month end to the workspace's performance table (月末表现快照); a rerun replaces it."""
        day = parse_date(as_of, field="as-of")
        with ledger_context(workspace) as ctx, reading(quiet=as_json, as_of=day.isoformat()):
            book = Workspace.open(ctx.settings.workspace)
            result = snapshot_month_end(book, ctx, as_of=day, any_day=any_day)
        emit(result.to_dict(), as_json=as_json, render=lambda c: render_snapshot(result, c))
