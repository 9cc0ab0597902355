"""How `runoff pay --file` shows its work: a progress bar on stderr while chunks commit, then the summary.

The command itself is ``pay`` in :mod:`runoff.cli.ledger`; the use case is
:func:`runoff.app.payment_file.post_payment_file`. Exit codes: 0 when every row was posted or replayed,
:data:`REFUSED_EXIT_CODE` (1) when the file was processed but some row was refused (so a script
notices), 2 when the file or the options cannot be used (nothing posted).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from runoff.app.payment_file import PaymentFileResult
from runoff.app.payment_file import Progress as ProgressCallback
from runoff.cli.output import err_console

REFUSED_EXIT_CODE = 1
SHOWN_REFUSALS = 20
SHOWN_CLOSED = 10


@contextmanager
def file_progress(*, quiet: bool) -> Iterator[ProgressCallback | None]:
    """A Rich progress bar of rows committed on stderr (none with --json or when stderr is not a terminal)."""
    if quiet or not err_console.is_terminal:
        yield None
        return
    bar = Progress(
        TextColumn("posting payments"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    task = bar.add_task("posting payments", total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        yield update


def render_file_result(result: PaymentFileResult, console: Console) -> None:
    """The summary table, refusals by reason, and the first refused rows with their reasons."""
    console.print(
        f"{result.file}: read {result.read:,} = posted {result.posted:,} + replayed {result.replayed:,}"
        f" + refused {result.refused:,}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    summary = Table(title="payment file", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    summary.add_row("rows read", f"{result.read:,}")
    summary.add_row("posted", f"{result.posted:,}")
    summary.add_row("replayed (key posted before)", f"{result.replayed:,}")
    summary.add_row("refused", f"[red]{result.refused:,}[/red]" if result.refused else "0")
    summary.add_row("amount posted", f"{result.amount_posted:,}")
    closed = ", ".join(result.loans_closed[:SHOWN_CLOSED])
    more = f", … {len(result.loans_closed) - SHOWN_CLOSED:,} more" if len(result.loans_closed) > SHOWN_CLOSED else ""
    summary.add_row("loans closed", Text(f"{len(result.loans_closed):,}" + (f" ({closed}{more})" if closed else "")))
    summary.add_row(
        "refusals file", Text(str(result.refusals_file) if result.refusals_file else "none: no row refused")
    )
    if result.ignored_columns:
        summary.add_row("columns ignored", Text(", ".join(result.ignored_columns)))
    console.print(summary)
    if result.stale_refusals_file:
        console.print(
            f"note: {result.stale_refusals_file} is from an earlier run; it was left as it was",
            highlight=False,
            markup=False,
        )
    if not result.refusals:
        return
    reasons = Table(title="refused rows by reason")
    for name in ("code", "column", "rows"):
        reasons.add_column(name, justify="right" if name == "rows" else "left")
    for (code, field), count in result.reasons().items():
        reasons.add_row(code, field or "(blank row)", f"{count:,}")
    console.print(reasons)
    rows = Table(title=f"refused rows (first {min(SHOWN_REFUSALS, result.refused)} of {result.refused:,})")
    for name in ("row", "loan_id", "amount", "value_date", "idempotency_key", "why"):
        rows.add_column(name, justify="right" if name in ("row", "amount") else "left")
    for r in result.refusals[:SHOWN_REFUSALS]:
        cells = (r.loan_id, r.amount, r.value_date, r.idempotency_key, r.message)
        rows.add_row(str(r.row), *(Text(c or "") for c in cells))
    console.print(rows)
    console.print(
        f"every refused row with its reason: {result.refusals_file}", highlight=False, markup=False, soft_wrap=True
    )
