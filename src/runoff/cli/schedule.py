"""`runoff schedule`: a repayment schedule (还款计划) and its APR, from a product file or from flags.

With ``--json`` it prints one object whose names are a public contract: ``apr_nominal``, ``apr_effective``
(fractions as decimal strings, 10 places) and ``installments`` (``number``, ``due_date``, ``principal``,
``interest``, ``fee``, ``total``, ``balance_after``, amounts as decimal strings).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from runoff.app import clock
from runoff.calendar import BusinessDayRule, Frequency
from runoff.cli.output import JsonOption, emit, fail
from runoff.cli.product import read_product_data
from runoff.errors import InvalidInput, RunoffError
from runoff.money import RoundingMode, parse_amount
from runoff.servicing.apr import Apr, apr_of_schedule
from runoff.servicing.product import (
    DayCount,
    GraceKind,
    HolidayInterest,
    InterestBasis,
    Product,
    parse_method,
    parse_product,
)
from runoff.servicing.schedule import MAX_TERM, Schedule, build_schedule

E = TypeVar("E", bound=StrEnum)
APR_PLACES = Decimal("1e-10")


def _choice(value: str, enum: type[E], flag: str) -> E:
    """Map a flag's text to its enum, or say what is allowed."""
    try:
        return enum(value.strip().lower())
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise InvalidInput(f"`{flag}`: {value!r} is not allowed; expected one of {allowed}", field=flag) from None


def _fraction(value: str, flag: str, *, upper: Decimal) -> Decimal:
    """A rate flag as a fraction: ``0.18`` or ``18%``."""
    text = value.strip()
    try:
        rate = Decimal(text[:-1]) / 100 if text.endswith("%") else Decimal(text)
    except InvalidOperation:
        rate = Decimal("NaN")
    if not rate.is_finite() or not 0 <= rate <= upper:
        raise InvalidInput(
            f"`{flag}`: {value!r} is not allowed; expected a fraction from 0 to {upper} (0.18 or 18% for 18 %)",
            field=flag,
        )
    return rate


def _start(value: str | None) -> date:
    if value is None:
        return clock.today()
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(
            f"`--start`: {value!r} is not a date; expected an ISO date like 2024-01-31", field="--start"
        ) from None


def _product_fields(
    *,
    method: str | None,
    annual_rate: Decimal | None,
    fee_rate: Decimal | None,
    day_count: str | None,
    interest_basis: str | None,
    rounding: str | None,
    multiple_of: str | None,
    frequency: str | None,
    business_days: str | None,
    holiday_interest: str | None,
    grace_periods: int | None,
    grace_kind: str | None,
    down_payment: bool | None,
) -> dict[str, Any]:
    """Product fields given as flags, parsed at this edge (aliases such as 等额本息 accepted)."""
    fields: dict[str, Any] = {}
    if method is not None:
        try:
            fields["method"] = parse_method(method)
        except ValueError as exc:
            raise InvalidInput(f"`--method`: {exc}", field="--method") from None
    if annual_rate is not None:
        fields["annual_rate"] = annual_rate
    if fee_rate is not None:
        fields["fee_rate"] = fee_rate
    if day_count is not None:
        fields["day_count"] = _choice(day_count, DayCount, "--day-count")
    if interest_basis is not None:
        fields["interest_basis"] = _choice(interest_basis, InterestBasis, "--interest-basis")
    if frequency is not None:
        fields["frequency"] = _choice(frequency, Frequency, "--frequency")
    if business_days is not None:
        fields["business_day_rule"] = _choice(business_days, BusinessDayRule, "--business-days")
    if holiday_interest is not None:
        fields["holiday_interest"] = _choice(holiday_interest, HolidayInterest, "--holiday-interest")
    if grace_periods is not None:
        fields["grace_periods"] = grace_periods
    if grace_kind is not None:
        fields["grace_kind"] = _choice(grace_kind, GraceKind, "--grace-kind")
    if down_payment is not None:
        fields["down_payment"] = down_payment
    rounding_fields: dict[str, Any] = {}
    if rounding is not None:
        rounding_fields["mode"] = _choice(rounding, RoundingMode, "--rounding")
    if multiple_of is not None:
        rounding_fields["multiple_of"] = parse_amount(multiple_of, field="--multiple-of")
    if rounding_fields:
        fields["rounding"] = rounding_fields
    return fields


def _resolve_product(path: Path | None, fields: dict[str, Any], term: int | None) -> tuple[Product, int]:
    """The product from ``--product`` with flags overriding its fields, or an ad-hoc one from flags alone."""
    if path is not None:
        data = read_product_data(path)
        source = str(path)
    else:
        if "method" not in fields:
            raise InvalidInput(
                "`--method`: missing; expected --product FILE, or --method (equal-installment, equal-principal, "
                "flat-fee, interest-only) with --annual-rate or --fee-rate",
                field="--method",
            )
        data = {"id": "adhoc"}
        source = "schedule flags"
    if term is not None and not 1 <= term <= MAX_TERM:
        raise InvalidInput(f"`--term`: {term} is not allowed; expected 1 to {MAX_TERM}", field="--term")
    if "annual_rate" in fields:
        data.pop("fee_rate", None)
    if "fee_rate" in fields:
        data.pop("annual_rate", None)
    rounding = {**(data.get("rounding") or {}), **fields.pop("rounding", {})}
    data.update(fields)
    if rounding:
        data["rounding"] = rounding
    if path is None:
        data["terms"] = [term if term is not None else 12]
    product = parse_product(data, source=source)
    if term is None:
        if len(product.terms) != 1:
            offered = ", ".join(str(t) for t in product.terms)
            raise InvalidInput(
                f"`--term`: missing; expected one of the terms product {product.id!r} offers ({offered}) or another "
                f"from 1 to {MAX_TERM}",
                field="--term",
            )
        term = product.terms[0]
    return product, term


def _rate_text(value: Decimal) -> str:
    return format(value.quantize(APR_PLACES), "f")


def schedule_document(schedule: Schedule, apr: Apr, *, product: Product) -> dict[str, Any]:
    """The ``--json`` document of a schedule (public names: keep them stable)."""
    return {
        "product": product.id,
        "method": schedule.method.value,
        "principal": str(schedule.principal),
        "term": len(schedule.installments),
        "start_date": schedule.start_date.isoformat(),
        "periods_per_year": schedule.periods_per_year,
        "apr_period_rate": _rate_text(apr.period_rate),
        "apr_nominal": _rate_text(apr.nominal),
        "apr_effective": _rate_text(apr.effective),
        "totals": {
            "principal": str(schedule.total_principal),
            "interest": str(schedule.total_interest),
            "fee": str(schedule.total_fee),
            "capitalized": str(schedule.total_capitalized),
            "payable": str(schedule.total_payable),
        },
        "installments": [
            {
                "number": i.number,
                "due_date": i.due_date.isoformat(),
                "principal": str(i.principal),
                "interest": str(i.interest),
                "fee": str(i.fee),
                "total": str(i.total),
                "balance_after": str(i.balance_after),
                "accrual_start": i.accrual_start.isoformat() if i.accrual_start else None,
                "capitalized": str(i.capitalized),
            }
            for i in schedule.installments
        ],
    }


def _render(schedule: Schedule, apr: Apr, product: Product) -> Any:
    def render(console: Console) -> None:
        show_capitalized = schedule.total_capitalized != 0
        table = Table(
            title=f"{product.id}: {schedule.method.value}, {schedule.principal} lent {schedule.start_date.isoformat()}",
            show_footer=True,
            header_style="bold",
        )
        table.add_column("#", footer="total", justify="right")
        table.add_column("due date")
        table.add_column("principal", footer=str(schedule.total_principal), justify="right")
        table.add_column("interest", footer=str(schedule.total_interest), justify="right")
        table.add_column("fee", footer=str(schedule.total_fee), justify="right")
        if show_capitalized:
            table.add_column("capitalized", footer=str(schedule.total_capitalized), justify="right")
        table.add_column("total", footer=str(schedule.total_payable), justify="right")
        table.add_column("balance after", justify="right")
        for i in schedule.installments:
            cells = [str(i.number), i.due_date.isoformat(), str(i.principal), str(i.interest), str(i.fee)]
            if show_capitalized:
                cells.append(str(i.capitalized))
            cells += [str(i.total), str(i.balance_after)]
            table.add_row(*cells)
        console.print(table)
        console.print(
            f"APR by IRR: nominal {float(apr.nominal):.4%} (period rate × {apr.periods_per_year}), "
            f"effective {float(apr.effective):.4%}"
        )

    return render


def register(app: typer.Typer) -> None:
    """Add ``runoff schedule`` to ``app``."""

    @app.command("schedule")
    def schedule(
        product_file: Path | None = typer.Option(None, "--product", help="Product YAML file; flags override it."),
        principal: str | None = typer.Option(None, "--principal", help="Amount lent, e.g. 10000 or 10000.00."),
        method: str | None = typer.Option(
            None, "--method", help="equal-installment, equal-principal, flat-fee, interest-only (or 等额本息 ...)."
        ),
        annual_rate: str | None = typer.Option(None, "--annual-rate", help="Annual rate as a fraction: 0.18 (or 18%)."),
        fee_rate: str | None = typer.Option(None, "--fee-rate", help="Flat fee per period as a fraction: 0.006."),
        term: int | None = typer.Option(None, "--term", help="Number of periods, 1 to 360."),
        start: str | None = typer.Option(None, "--start", help="Drawing date (ISO); default today."),
        day_count: str | None = typer.Option(None, "--day-count", help="30/360, actual/365 or actual/actual."),
        interest_basis: str | None = typer.Option(None, "--interest-basis", help="period or daily."),
        rounding: str | None = typer.Option(None, "--rounding", help="half-up or half-even."),
        multiple_of: str | None = typer.Option(None, "--multiple-of", help="Round installments to this, e.g. 1."),
        frequency: str | None = typer.Option(None, "--frequency", help="monthly, biweekly or weekly."),
        business_days: str | None = typer.Option(
            None, "--business-days", help="none, following, modified-following or preceding."
        ),
        holiday_interest: str | None = typer.Option(
            None, "--holiday-interest", help="accrue-to-actual or as-scheduled (daily products)."
        ),
        grace_periods: int | None = typer.Option(None, "--grace-periods", help="Periods without principal."),
        grace_kind: str | None = typer.Option(None, "--grace-kind", help="interest-only or capitalize."),
        down_payment: bool | None = typer.Option(
            None, "--down-payment/--no-down-payment", help="First installment due on the drawing date."
        ),
        as_json: bool = JsonOption,
    ) -> None:
        """Print a repayment schedule with its totals and APR (by IRR, fees included)."""
        try:
            if annual_rate is not None and fee_rate is not None:
                raise InvalidInput(
                    "`--annual-rate` and `--fee-rate`: give one, not both; expected --annual-rate for "
                    "equal-installment, equal-principal and interest-only, --fee-rate for flat-fee",
                    field="--annual-rate",
                )
            if principal is None:
                raise InvalidInput("`--principal`: missing; expected an amount like 10000.00", field="--principal")
            if product_file is None and annual_rate is None and fee_rate is None:
                raise InvalidInput(
                    "`--annual-rate`: missing; expected --annual-rate (e.g. 0.18) or, for flat-fee, "
                    "--fee-rate (e.g. 0.006)",
                    field="--annual-rate",
                )
            amount = parse_amount(principal, field="--principal")
            fields = _product_fields(
                method=method,
                annual_rate=None if annual_rate is None else _fraction(annual_rate, "--annual-rate", upper=Decimal(1)),
                fee_rate=None if fee_rate is None else _fraction(fee_rate, "--fee-rate", upper=Decimal("0.1")),
                day_count=day_count,
                interest_basis=interest_basis,
                rounding=rounding,
                multiple_of=multiple_of,
                frequency=frequency,
                business_days=business_days,
                holiday_interest=holiday_interest,
                grace_periods=grace_periods,
                grace_kind=grace_kind,
                down_payment=down_payment,
            )
            product, n = _resolve_product(product_file, fields, term)
            built = build_schedule(product, principal=amount, term=n, start_date=_start(start))
            apr = apr_of_schedule(built)
        except RunoffError as exc:
            # rendered here as well as in cli.main.run, so that CliRunner sees the same exit code 2 and message
            fail(exc, as_json=as_json)
            return
        emit(schedule_document(built, apr, product=product), as_json=as_json, render=_render(built, apr, product))
