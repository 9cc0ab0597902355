"""`runoff quote settle|extend|restructure --loan ID --as-of DATE`: price an offer on a ledger loan (nothing written).

Acceptance (applying the new schedule) is a separate step; a quote only prints.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from runoff.app.loans import quote_extension, quote_restructure, quote_settlement
from runoff.cli.ledger import WorkspaceOption, ledger_context, parse_date, schedule_rows, schedule_table
from runoff.cli.output import JsonOption, emit
from runoff.errors import InvalidInput
from runoff.money import parse_amount
from runoff.servicing.product import parse_method
from runoff.servicing.quotes import Quote

LoanOption = typer.Option(..., "--loan", help="Loan id.", show_default=False)
AsOfOption = typer.Option(..., "--as-of", help="Quote date (YYYY-MM-DD).", show_default=False)


def _fraction(text: str | None, *, field: str) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        raise InvalidInput(
            f"`{field}`: {text!r} is not a number; expected a fraction such as 0.12", field=field
        ) from None
    if not value.is_finite() or value < 0:
        raise InvalidInput(f"`{field}`: {text!r} is not allowed; expected a fraction 0 or more", field=field)
    return value


def quote_dict(quote: Quote) -> dict[str, Any]:
    """A quote as JSON: amounts as decimal strings, APR as fractions, the new schedule's installments."""
    due = quote.due_now
    return {
        "kind": quote.kind.value,
        "loan_id": quote.loan_id,
        "as_of": quote.as_of.isoformat(),
        "due_now": {
            "principal": str(due.principal),
            "interest": str(due.interest),
            "fee": str(due.fee),
            "penalty": str(due.penalty),
            "waived": str(due.waived),
            "total": str(due.total),
        },
        "credit_applied": str(quote.credit_applied),
        "pay_now": str(quote.pay_now),
        "total_cost": str(quote.total_cost),
        "current_remaining": str(quote.current_remaining),
        "saving": str(quote.saving),
        "forgiven_principal": str(quote.forgiven_principal),
        "capitalized": str(quote.capitalized),
        "apr_nominal": None if quote.apr is None else format(quote.apr.nominal.quantize(Decimal("1e-10")), "f"),
        "apr_effective": None if quote.apr is None else format(quote.apr.effective.quantize(Decimal("1e-10")), "f"),
        "installments": schedule_rows(quote.schedule),
    }


def _render(quote: Quote, console: Console) -> None:
    data = quote_dict(quote)
    due = data["due_now"]
    console.print(f"[bold]{quote.kind.value}[/bold] quote for loan {quote.loan_id} as of {quote.as_of}")
    console.print(
        f"due now {due['total']} (principal {due['principal']}, interest {due['interest']}, fee {due['fee']}, "
        f"penalty {due['penalty']}; waived {due['waived']}), credit applied {data['credit_applied']}, "
        f"pay now {data['pay_now']}"
    )
    apr = "n/a" if data["apr_nominal"] is None else f"{Decimal(data['apr_nominal']) * 100:.4f} %"
    console.print(
        f"total cost {data['total_cost']} vs {data['current_remaining']} under the current schedule "
        f"(saving {data['saving']}); APR (nominal) {apr}"
    )
    console.print(schedule_table(quote.schedule, "new schedule"))


def register(app: typer.Typer) -> None:
    """Add the ``quote`` group to ``app``."""
    group = typer.Typer(
        help="Price early settlement, extension or restructuring of a ledger loan.", no_args_is_help=True
    )

    @group.command("settle")
    def settle(
        loan: str = LoanOption,
        as_of: str = AsOfOption,
        discount: str = typer.Option("0", "--discount", help="Amount forgiven on top (penalty first)."),
        waive_penalties: bool = typer.Option(False, "--waive-penalties", help="Forgive the penalty due."),
        workspace: Path | None = WorkspaceOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Early settlement (提前结清): what it costs to pay everything off on --as-of."""
        when = parse_date(as_of, field="as-of")
        forgiven = parse_amount(discount, field="discount", allow_zero=True)
        with ledger_context(workspace) as ctx:
            quote = quote_settlement(
                loan, as_of=when, uow=ctx.uow(write=False), discount=forgiven, waive_penalties=waive_penalties
            )
        emit(quote_dict(quote), as_json=as_json, render=lambda c: _render(quote, c))

    @group.command("extend")
    def extend(
        loan: str = LoanOption,
        as_of: str = AsOfOption,
        periods: int = typer.Option(..., "--periods", help="Extra periods (展期期数).", show_default=False),
        workspace: Path | None = WorkspaceOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Extension (展期): the outstanding principal over --periods more periods at the loan's rate."""
        when = parse_date(as_of, field="as-of")
        with ledger_context(workspace) as ctx:
            quote = quote_extension(loan, as_of=when, extra_periods=periods, uow=ctx.uow(write=False))
        emit(quote_dict(quote), as_json=as_json, render=lambda c: _render(quote, c))

    @group.command("restructure")
    def restructure_(
        loan: str = LoanOption,
        as_of: str = AsOfOption,
        term: int = typer.Option(..., "--term", help="New term in periods.", show_default=False),
        annual_rate: str | None = typer.Option(None, "--annual-rate", help="New annual rate (fraction)."),
        fee_rate: str | None = typer.Option(None, "--fee-rate", help="New flat fee per period (fraction)."),
        haircut: str = typer.Option("0", "--haircut", help="Fraction of outstanding principal forgiven."),
        grace: int = typer.Option(0, "--grace", help="Grace periods at the start of the new schedule."),
        method: str | None = typer.Option(None, "--method", help="New schedule method (default: the loan's)."),
        waive_penalties: bool = typer.Option(False, "--waive-penalties", help="Forgive the penalty due."),
        capitalize_overdue: bool = typer.Option(
            False, "--capitalize-overdue", help="Add overdue interest and fee to the new principal."
        ),
        workspace: Path | None = WorkspaceOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Restructuring (债务重组): a new schedule from --as-of for the outstanding debt."""
        when = parse_date(as_of, field="as-of")
        try:
            new_method = parse_method(method) if method is not None else None
        except ValueError as exc:
            raise InvalidInput(f"`method`: {exc}", field="method") from None
        cut = _fraction(haircut, field="haircut") or Decimal(0)
        with ledger_context(workspace) as ctx:
            quote = quote_restructure(
                loan,
                as_of=when,
                term=term,
                uow=ctx.uow(write=False),
                annual_rate=_fraction(annual_rate, field="annual-rate"),
                fee_rate=_fraction(fee_rate, field="fee-rate"),
                waive_penalties=waive_penalties,
                haircut=cut,
                grace_periods=grace,
                method=new_method,
                capitalize_overdue=capitalize_overdue,
            )
        emit(quote_dict(quote), as_json=as_json, render=lambda c: _render(quote, c))

    app.add_typer(group, name="quote")
