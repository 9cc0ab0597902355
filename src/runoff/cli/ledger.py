"""`runoff ledger migrate|verify|balance`, `runoff loan open|show` and `runoff pay`: the ledger from the command line.

The ledger is ``<workspace>/ledger.db`` (SQLite, created and migrated on first use) unless
``RUNOFF_DATABASE_URL`` names another database (PostgreSQL: run ``runoff ledger migrate`` first).
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import OperationalError

from runoff.app.context import AppContext, build_context, unreachable
from runoff.app.ledger_check import trial_balance, verify_ledger
from runoff.app.loans import LoanView, open_loan, show_loan
from runoff.app.payments import DEFAULT_CHUNK, post_payment
from runoff.cli.output import JsonOption, allocation_table, emit
from runoff.config import Settings
from runoff.errors import InvalidInput
from runoff.money import from_minor, parse_amount
from runoff.servicing.product import Component
from runoff.servicing.schedule import Schedule
from runoff.store.ledger.database import upgrade_to_head
from runoff.store.ledger.models import ACCOUNT_KINDS

WorkspaceOption = typer.Option(
    None,
    "--workspace",
    "-w",
    help="Workspace folder (default: RUNOFF_WORKSPACE or the current folder); the ledger is its ledger.db.",
    show_default=False,
)
ActorOption = typer.Option(None, "--actor", help="Who is acting, for the audit log (default: cli:$USER).")


def settings_for(workspace: Path | None) -> Settings:
    """Settings from the environment, with ``--workspace`` overriding RUNOFF_WORKSPACE."""
    return Settings(workspace=workspace) if workspace is not None else Settings()


def ledger_context(workspace: Path | None, *, prepare_schema: bool = True) -> AppContext:
    """The application context for a CLI command (SQLite ledgers are migrated on first use)."""
    return build_context(settings_for(workspace), prepare_schema=prepare_schema)


def actor_name(actor: str | None) -> str:
    return actor or f"cli:{os.environ.get('USER') or 'unknown'}"


def parse_date(text: str, *, field: str) -> date:
    """An ISO date (YYYY-MM-DD) from a flag, or one clear error naming the flag."""
    try:
        return date.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise InvalidInput(f"`{field}`: {text!r} is not a date; expected YYYY-MM-DD", field=field) from None


def schedule_rows(schedule: Schedule) -> list[dict[str, Any]]:
    """Installments with the same keys as ``runoff schedule --json``."""
    return [
        {
            "number": i.number,
            "due_date": i.due_date.isoformat(),
            "principal": str(i.principal),
            "interest": str(i.interest),
            "fee": str(i.fee),
            "total": str(i.total),
            "balance_after": str(i.balance_after),
        }
        for i in schedule.installments
    ]


def schedule_table(schedule: Schedule, title: str) -> Table:
    table = Table(title=title)
    for name in ("#", "due", "principal", "interest", "fee", "total", "balance after"):
        table.add_column(name, justify="right")
    for row in schedule_rows(schedule):
        table.add_row(
            str(row["number"]),
            row["due_date"],
            row["principal"],
            row["interest"],
            row["fee"],
            row["total"],
            row["balance_after"],
        )
    return table


def _view_dict(view: LoanView) -> dict[str, Any]:
    r = view.record
    return {
        "loan_id": r.id,
        "status": r.status,
        "product": f"{r.product_id}@{r.product_version}",
        "customer_id": r.customer_id,
        "account_id": r.account_id,
        "principal": str(from_minor(r.principal_fen)),
        "start_date": r.start_date.isoformat(),
        "term": r.term,
        "schedule_version": r.schedule_version,
        "closed_on": r.closed_on.isoformat() if r.closed_on else None,
        "close_reason": r.close_reason,
        "outstanding_principal": str(view.position.outstanding_principal),
        "credit_balance": str(view.position.credit_balance),
        "as_of": view.as_of.isoformat(),
        "days_past_due": view.days_past_due,
        "bucket": view.bucket.value,
        "balances": {account.value: str(amount) for account, amount in view.balances.items()},
        "installments": [
            {
                "number": i.number,
                "due_date": i.due_date.isoformat(),
                **{f"{c.value}_due": str(i.due(c)) for c in Component},
                **{f"{c.value}_paid": str(i.paid(c)) for c in Component},
                "outstanding": str(i.outstanding_total),
            }
            for i in view.position.installments
        ],
        "schedule_versions": [
            {
                "version": v.version,
                "reason": v.reason,
                "created_by": v.created_by,
                "archived": v.archived_at is not None,
                "reversed": v.reversed_at is not None,
                "principal": str(from_minor(v.principal_fen)),
                "start_date": v.start_date.isoformat(),
                "term": v.term,
            }
            for v in view.versions
        ],
    }


def _render_view(view: LoanView, console: Console) -> None:
    r = view.record
    console.print(
        f"[bold]{r.id}[/bold] {r.status} · {r.product_id}@{r.product_version} · lent {from_minor(r.principal_fen)} "
        f"on {r.start_date} over {r.term} · schedule v{r.schedule_version}"
    )
    console.print(
        f"as of {view.as_of}: outstanding principal {view.position.outstanding_principal}, "
        f"credit {view.position.credit_balance}, {view.days_past_due} days past due ({view.bucket.value})"
    )
    table = Table(title="live installments")
    for name in ("#", "due", "principal", "interest", "fee", "penalty", "paid", "outstanding"):
        table.add_column(name, justify="right")
    for i in view.position.installments:
        paid = sum((i.paid(c) for c in Component), start=from_minor(0))
        table.add_row(
            str(i.number),
            i.due_date.isoformat(),
            str(i.principal_due),
            str(i.interest_due),
            str(i.fee_due),
            str(i.due(Component.PENALTY)),
            str(paid),
            str(i.outstanding_total),
        )
    console.print(table)
    balances = Table(title=f"journal balances as of {view.as_of}")
    balances.add_column("account")
    balances.add_column("balance", justify="right")
    for account, amount in view.balances.items():
        if amount:
            balances.add_row(account.value, str(amount))
    console.print(balances)


def register(app: typer.Typer) -> None:
    """Add the ``ledger`` and ``loan`` groups and the ``pay`` command to ``app``."""
    ledger_group = typer.Typer(
        help="The ledger: migrate its schema, verify its invariants, read balances.", no_args_is_help=True
    )
    loan_group = typer.Typer(help="Loans in the ledger: open one, show one.", no_args_is_help=True)

    @ledger_group.command("migrate")
    def migrate(workspace: Path | None = WorkspaceOption, as_json: bool = JsonOption) -> None:
        """Create or upgrade the ledger's tables (Alembic migrations shipped with runoff)."""
        with ledger_context(workspace, prepare_schema=False) as ctx:
            try:
                before, after = upgrade_to_head(ctx.engine)
            except OperationalError as exc:
                raise unreachable(ctx.engine, exc) from None
            where = ctx.engine.url.render_as_string(hide_password=True)
        data = {"database": where, "from": before, "to": after, "changed": before != after}
        emit(
            data,
            as_json=as_json,
            render=lambda c: c.print(
                f"ledger {where}: "
                + (f"migrated {before or '(empty)'} → {after}" if before != after else f"already at {after}")
            ),
        )

    @ledger_group.command("verify")
    def verify(
        workspace: Path | None = WorkspaceOption,
        limit: int = typer.Option(1000, "--limit", min=1, help="List at most this many findings per check."),
        as_json: bool = JsonOption,
    ) -> None:
        """Check the ledger's invariants; exit 1 listing the offending loans, payments and entries, 0 when clean."""
        with ledger_context(workspace) as ctx:
            report = verify_ledger(uow=ctx.uow(write=False), limit=limit)

        def render(console: Console) -> None:
            table = Table(
                title=f"ledger verify: {report.loans} loans, {report.payments} payments, "
                f"{report.journal_entries} journal entries in {report.seconds:.2f} s"
            )
            table.add_column("check")
            table.add_column("violations", justify="right")
            for name, count in report.counts.items():
                table.add_row(name, f"[red]{count}[/red]" if count else "0")
            console.print(table)
            for finding in report.findings[:200]:
                console.print(f"[red]✗[/red] {finding.check}: {finding.message}", highlight=False)
            console.print(
                "[green]clean[/green]" if report.ok else f"[red]{sum(report.counts.values())} violations[/red]"
            )

        emit(report.findings_as_dicts(), as_json=as_json, render=render)
        if not report.ok:
            raise typer.Exit(code=1)

    @ledger_group.command("balance")
    def balance(
        workspace: Path | None = WorkspaceOption,
        loan: str | None = typer.Option(None, "--loan", help="One loan's balances (default: the whole book)."),
        as_of: str | None = typer.Option(None, "--as-of", help="Value date (YYYY-MM-DD); default: every line."),
        as_json: bool = JsonOption,
    ) -> None:
        """Trial balance (试算平衡) by account, for the book or one loan, as of a value date."""
        when = parse_date(as_of, field="as-of") if as_of else None
        with ledger_context(workspace) as ctx:
            fen = trial_balance(uow=ctx.uow(write=False), as_of=when, loan_id=loan)
        debit_side = sum(v for a, v in fen.items() if ACCOUNT_KINDS[a] in ("asset", "expense"))
        credit_side = sum(v for a, v in fen.items() if ACCOUNT_KINDS[a] not in ("asset", "expense"))
        data = {
            "loan_id": loan,
            "as_of": when.isoformat() if when else None,
            "balances": {a.value: str(from_minor(v)) for a, v in fen.items()},
            "debits_equal_credits": debit_side == credit_side,
        }

        def render(console: Console) -> None:
            title = f"balances{' of loan ' + loan if loan else ''}{' as of ' + str(when) if when else ''}"
            table = Table(title=title)
            table.add_column("account")
            table.add_column("kind")
            table.add_column("balance", justify="right")
            for account, value in fen.items():
                table.add_row(account.value, ACCOUNT_KINDS[account], str(from_minor(value)))
            console.print(table)
            console.print(
                f"assets + expenses {from_minor(debit_side)} = liabilities + income {from_minor(credit_side)}"
                if debit_side == credit_side
                else f"[red]out of balance: {from_minor(debit_side)} vs {from_minor(credit_side)}[/red]"
            )

        emit(data, as_json=as_json, render=render)

    @loan_group.command("open")
    def open_(
        product: Path = typer.Option(..., "--product", help="Product YAML file.", show_default=False),
        principal: str = typer.Option(..., "--principal", help="Amount lent, e.g. 12000.00.", show_default=False),
        term: int = typer.Option(..., "--term", help="Number of periods (one the product offers).", show_default=False),
        start: str = typer.Option(..., "--start", help="Drawing date (YYYY-MM-DD).", show_default=False),
        customer: str | None = typer.Option(None, "--customer", help="Customer id (created if new)."),
        account: str | None = typer.Option(None, "--account", help="Credit-line account id (created if new)."),
        loan_id: str | None = typer.Option(None, "--id", help="Loan id (default: a new one)."),
        workspace: Path | None = WorkspaceOption,
        actor: str | None = ActorOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Open a loan (放款): schedule, disbursement journal entry and audit record, atomically."""
        from runoff.cli.product import load_product

        loaded = load_product(product)
        amount = parse_amount(principal, field="principal")
        start_date = parse_date(start, field="start")
        with ledger_context(workspace) as ctx:
            opened = open_loan(
                product=loaded,
                principal=amount,
                term=term,
                start_date=start_date,
                actor=actor_name(actor),
                uow=ctx.uow(),
                loan_id=loan_id,
                customer_id=customer,
                account_id=account,
            )
        data = {
            "loan_id": opened.loan_id,
            "product": f"{opened.product_id}@{opened.product_version}",
            "principal": str(opened.principal),
            "term": opened.term,
            "start_date": opened.start_date.isoformat(),
            "customer_id": opened.customer_id,
            "account_id": opened.account_id,
            "installments": schedule_rows(opened.schedule),
        }
        emit(
            data,
            as_json=as_json,
            render=lambda c: c.print(schedule_table(opened.schedule, f"loan {opened.loan_id} opened")),
        )

    @loan_group.command("show")
    def show(
        loan_id: str = typer.Argument(..., help="Loan id.", show_default=False),
        as_of: str | None = typer.Option(None, "--as-of", help="Date to read balances and DPD at (default: today)."),
        workspace: Path | None = WorkspaceOption,
        as_json: bool = JsonOption,
    ) -> None:
        """A loan's live schedule with what is paid, its journal balances and days past due as of a date."""
        with ledger_context(workspace) as ctx:
            when = parse_date(as_of, field="as-of") if as_of else ctx.today()
            view = show_loan(loan_id, as_of=when, uow=ctx.uow(write=False))
        emit(_view_dict(view), as_json=as_json, render=lambda c: _render_view(view, c))

    @app.command("pay")
    def pay(
        command: typer.Context,
        loan: str | None = typer.Option(None, "--loan", help="Loan id (one payment).", show_default=False),
        amount: str | None = typer.Option(
            None, "--amount", help="Amount received, e.g. 1050.00 (one payment).", show_default=False
        ),
        on: str | None = typer.Option(
            None, "--date", help="Value date (起息日), YYYY-MM-DD (one payment).", show_default=False
        ),
        key: str | None = typer.Option(
            None, "--key", help="Idempotency key: the same key posts once (one payment).", show_default=False
        ),
        file: Path | None = typer.Option(
            None,
            "--file",
            help="Payment file to post: CSV or Parquet with columns loan_id, amount, value_date, idempotency_key.",
            show_default=False,
        ),
        chunk: int = typer.Option(DEFAULT_CHUNK, "--chunk", min=1, help="With --file: rows per transaction."),
        refusals: Path | None = typer.Option(
            None,
            "--refusals",
            help="With --file: CSV for the refused rows (default: <file stem>.refused.csv beside the file; "
            "written only when a row is refused).",
            show_default=False,
        ),
        workspace: Path | None = WorkspaceOption,
        actor: str | None = ActorOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Post a payment (还款), or every row of a payment file (批量还款入账) with --file.

        One payment: --loan, --amount, --date and --key; allocated, journaled and audited atomically; the
        same --key posts once.

        A file (--file): each row is posted, replayed (its key was posted before) or refused with its row
        number and reason, in chunks of --chunk rows, one transaction each; refused rows are written to the
        --refusals CSV. Exit code 0 when every row was posted or replayed, 1 when some row was refused, 2
        when the file or the options cannot be used (nothing posted).
        """
        single = {"--loan": loan, "--amount": amount, "--date": on, "--key": key}
        either = "expected either --file PATH or all of --loan, --amount, --date and --key"
        if file is not None:
            mixed = [name for name, value in single.items() if value is not None]
            if mixed:
                raise InvalidInput(f"`pay`: --file cannot be combined with {', '.join(mixed)}; {either}", field="file")
            _pay_file(file, chunk=chunk, refusals=refusals, workspace=workspace, actor=actor, as_json=as_json)
            return
        file_only = [
            flag
            for flag, name in (("--chunk", "chunk"), ("--refusals", "refusals"))
            if (source := command.get_parameter_source(name)) is not None and source.name != "DEFAULT"
        ]
        if file_only:
            verb = "applies" if len(file_only) == 1 else "apply"
            raise InvalidInput(f"`pay`: {' and '.join(file_only)} {verb} to --file only; {either}", field="file")
        missing = [name for name, value in single.items() if value is None]
        if missing:
            raise InvalidInput(
                f"`pay`: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing; {either}",
                field=missing[0].removeprefix("--"),
            )
        assert loan is not None and amount is not None and on is not None and key is not None
        value = parse_amount(amount, field="amount")
        value_date = parse_date(on, field="date")
        with ledger_context(workspace) as ctx:
            result = post_payment(
                loan, value, value_date=value_date, idempotency_key=key, actor=actor_name(actor), uow=ctx.uow()
            )

        def render(console: Console) -> None:
            head = "replayed (posted before with this key)" if result.replayed else "posted"
            console.print(
                f"payment {result.payment_id} {head}: {result.amount} on loan {result.loan_id} value {result.value_date}"
            )
            console.print(allocation_table(result.lines, credited=result.credited))
            extra = f", residual {result.waived} waived" if result.waived else ""
            console.print(
                f"loan {result.loan_id} {result.loan_status}, principal outstanding {result.outstanding_principal}{extra}"
            )

        emit(result.to_dict(), as_json=as_json, render=render)

    def _pay_file(
        file: Path, *, chunk: int, refusals: Path | None, workspace: Path | None, actor: str | None, as_json: bool
    ) -> None:
        """``runoff pay --file``: post the file, show the summary, exit 1 when a row was refused."""
        from runoff.app.payment_file import post_payment_file
        from runoff.cli.payment_file import REFUSED_EXIT_CODE, file_progress, render_file_result

        with ledger_context(workspace) as ctx, file_progress(quiet=as_json) as progress:
            result = post_payment_file(
                file,
                actor=actor_name(actor),
                uow=ctx.uow(),
                chunk_size=chunk,
                refusals_path=refusals,
                progress=progress,
            )
        emit(result.to_dict(), as_json=as_json, render=lambda c: render_file_result(result, c))
        if result.refused:
            raise typer.Exit(code=REFUSED_EXIT_CODE)

    app.add_typer(ledger_group, name="ledger")
    app.add_typer(loan_group, name="loan")
