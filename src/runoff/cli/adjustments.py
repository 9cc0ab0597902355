"""`runoff write-off`, `runoff recover` and `runoff reverse`: charge-offs (核销), recoveries (核销后回收) and payment
reversals (冲正) from the command line.

Each is atomic and idempotent by ``--key`` (the same key does it once and prints the first result, marked
replayed); the bulk ``write-off --min-dpd N`` derives its keys from loan and date, so it can be run again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from runoff.app.charge_offs import WriteOffResult, WriteOffRun, write_off, write_off_due
from runoff.app.recoveries import post_recovery
from runoff.app.reversals import reverse_payment
from runoff.cli.ledger import ActorOption, WorkspaceOption, actor_name, ledger_context, parse_date
from runoff.cli.output import JsonOption, allocation_table, emit, err_console
from runoff.errors import InvalidInput
from runoff.money import parse_amount


@contextmanager
def _progress(*, quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A Rich progress bar of the bulk write-off on stderr (none with --json or when stderr is not a terminal)."""
    if quiet or not err_console.is_terminal:
        yield None
        return
    bar = Progress(
        TextColumn("writing off"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    task = bar.add_task("write-off", total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        yield update


def _write_off_table(results: tuple[WriteOffResult, ...], title: str) -> Table:
    table = Table(title=title)
    for name in ("loan", "DPD", "principal", "penalty", "written off", "interest owed", "fee owed", "key"):
        table.add_column(name, justify="left" if name in ("loan", "key") else "right")
    for r in results:
        table.add_row(
            r.loan_id,
            str(r.days_past_due),
            str(r.principal),
            str(r.penalty),
            str(r.written_off),
            str(r.interest_owed),
            str(r.fee_owed),
            r.idempotency_key,
        )
    return table


def _render_one(result: WriteOffResult, console: Console) -> None:
    head = "replayed (written off before with this key)" if result.replayed else "charged off"
    console.print(
        f"loan {result.loan_id} {head} as of {result.as_of}, {result.days_past_due} days past due: {result.reason}"
    )
    console.print(
        f"written off {result.written_off} (principal {result.principal}, penalty {result.penalty}, of which "
        f"{result.penalty_charged} charged to the date); still owed by contract {result.contractual_debt} "
        f"(interest {result.interest_owed}, fee {result.fee_owed} never booked)"
    )


def _render_run(run: WriteOffRun, as_of: date, console: Console) -> None:
    verb = "would charge off (dry run: nothing written)" if run.dry_run else "charged off"
    console.print(
        f"{run.candidates} open loans {run.min_dpd}+ days past due as of {as_of}: {verb} {len(run.written_off)}, "
        f"refused {len(run.refused)}; {run.earlier} charged off as of this date before"
    )
    if run.written_off:
        console.print(_write_off_table(run.written_off, f"written off {run.principal + run.penalty}"))
    for loan_id, error in run.refused:
        console.print(f"[yellow]refused[/yellow] {loan_id}: {error.message}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``write-off``, ``recover`` and ``reverse`` commands to ``app``."""

    @app.command("write-off")
    def write_off_command(
        as_of: str = typer.Option(..., "--as-of", help="Charge-off date (YYYY-MM-DD).", show_default=False),
        loan: str | None = typer.Option(None, "--loan", help="One loan to charge off (needs --reason and --key)."),
        min_dpd: int | None = typer.Option(
            None, "--min-dpd", help="Every open loan at least this many days past due as of --as-of (e.g. 180)."
        ),
        reason: str | None = typer.Option(
            None, "--reason", help="Why (kept on the charge-off and in the audit log); bulk default: the policy."
        ),
        key: str | None = typer.Option(
            None, "--key", help="Idempotency key of a one-loan write-off: the same key writes off once."
        ),
        dry_run: bool = typer.Option(
            False, "--dry-run", help="Bulk only: show what would be charged off, write nothing."
        ),
        workspace: Path | None = WorkspaceOption,
        actor: str | None = ActorOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Charge off (核销) one loan, or every open loan --min-dpd days past due: penalty to the date, receivables written off."""
        when = parse_date(as_of, field="as-of")
        if (loan is None) == (min_dpd is None):
            raise InvalidInput(
                "`loan`: give --loan ID (one loan, with --reason and --key) or --min-dpd N (every open loan N or "
                "more days past due), not both and not neither",
                field="loan",
            )
        if loan is not None:
            if dry_run:
                raise InvalidInput("`dry-run`: only the bulk --min-dpd write-off has a dry run", field="dry-run")
            if reason is None or key is None:
                missing = "--reason" if reason is None else "--key"
                raise InvalidInput(f"`{missing[2:]}`: a one-loan write-off needs {missing}", field=missing[2:])
            with ledger_context(workspace) as ctx:
                result = write_off(
                    loan, as_of=when, reason=reason, idempotency_key=key, actor=actor_name(actor), uow=ctx.uow()
                )
            emit(result.to_dict(), as_json=as_json, render=lambda c: _render_one(result, c))
            return
        assert min_dpd is not None
        if key is not None:
            raise InvalidInput(
                "`key`: the bulk write-off derives each loan's key from loan and date; leave --key out", field="key"
            )
        with ledger_context(workspace) as ctx, _progress(quiet=as_json) as progress:
            run = write_off_due(
                min_dpd=min_dpd,
                as_of=when,
                actor=actor_name(actor),
                uow=ctx.uow(),
                dry_run=dry_run,
                reason=reason,
                progress=progress,
            )
        emit(run.to_dict(), as_json=as_json, render=lambda c: _render_run(run, when, c))

    @app.command("recover")
    def recover(
        loan: str = typer.Option(..., "--loan", help="The charged-off loan.", show_default=False),
        amount: str = typer.Option(..., "--amount", help="Amount received, e.g. 500.00.", show_default=False),
        on: str = typer.Option(..., "--date", help="Value date (起息日), YYYY-MM-DD.", show_default=False),
        key: str = typer.Option(..., "--key", help="Idempotency key (the payments' key space).", show_default=False),
        workspace: Path | None = WorkspaceOption,
        actor: str | None = ActorOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Record money received on a charged-off loan (核销后回收): Dr cash_clearing / Cr recoveries; the debt goes down."""
        value = parse_amount(amount, field="amount")
        value_date = parse_date(on, field="date")
        with ledger_context(workspace) as ctx:
            result = post_recovery(
                loan, value, value_date=value_date, idempotency_key=key, actor=actor_name(actor), uow=ctx.uow()
            )

        def render(console: Console) -> None:
            head = "replayed (recorded before with this key)" if result.replayed else "recorded"
            console.print(
                f"recovery {result.payment_id} {head}: {result.amount} on loan {result.loan_id} value {result.value_date}"
            )
            console.print(allocation_table(result.lines))
            tail = "fully recovered" if result.fully_recovered else f"still owed by contract {result.owed_after}"
            console.print(f"loan {result.loan_id}: {tail}")

        emit(result.to_dict(), as_json=as_json, render=render)

    @app.command("reverse")
    def reverse(
        payment: int = typer.Option(..., "--payment", help="Payment (or recovery) id.", show_default=False),
        reason: str = typer.Option(..., "--reason", help="Why: bounced, wrong loan, ...", show_default=False),
        key: str = typer.Option(..., "--key", help="Idempotency key: the same key reverses once.", show_default=False),
        workspace: Path | None = WorkspaceOption,
        actor: str | None = ActorOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Reverse a payment (冲正 / 退票): its entries mirrored, the loan reposted (reopened if it had closed)."""
        with ledger_context(workspace) as ctx:
            result = reverse_payment(
                payment, reason=reason, idempotency_key=key, actor=actor_name(actor), uow=ctx.uow()
            )

        def render(console: Console) -> None:
            head = "replayed (reversed before with this key)" if result.replayed else "reversed"
            console.print(
                f"{result.kind} {result.payment_id} {head}: {result.amount} on loan {result.loan_id} value "
                f"{result.value_date} ({result.reason})"
            )
            done = f"{result.entries_reversed} journal entries mirrored, {result.allocations_reversed} allocations reversed"
            if result.reposted_from:
                done += f", loan reposted from {result.reposted_from}"
            if result.sweep_undone:
                done += f", residual sweep of {result.sweep_undone} undone"
            console.print(done)
            reopened = " (reopened)" if result.reopened else ""
            console.print(
                f"loan {result.loan_id} {result.loan_status}{reopened}, principal outstanding "
                f"{result.outstanding_principal}"
            )

        emit(result.to_dict(), as_json=as_json, render=render)
