"""The Decimal quote of one plan option for one loan (单笔报价): what acceptance applies and the pricer checks.

Each plan option maps onto a servicing quote (:mod:`runoff.servicing.quotes`): early settlement with the
plan's discount (a share of the principal repaid early, and the settlement fee where the option waives it),
extension by ``extra_months``, restructuring with the option's term, price, haircut and waivers, and a
hardship holiday as a restructuring over the installments left plus the holiday, the first months a grace
period. :func:`quote_columns` lays a quote out as a row of the offers table.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np

from runoff.errors import InvalidInput
from runoff.money import quantize, to_minor
from runoff.plan.model import (
    EarlySettlementOption,
    ExtensionOption,
    HardshipHolidayOption,
    RestructuringOption,
)
from runoff.servicing.position import LoanPosition
from runoff.servicing.product import Component, Method, SettlementInterest
from runoff.servicing.quotes import Quote, early_settlement, extension, restructure

OptionSpec = EarlySettlementOption | ExtensionOption | RestructuringOption | HardshipHolidayOption


@dataclass(frozen=True, slots=True)
class Repricing:
    """The method and price a re-schedule uses for one loan, or why it cannot be offered."""

    method: Method | None
    annual_rate: Decimal | None
    fee_rate: Decimal | None
    problem: str | None = None


def restructured_price(
    option: RestructuringOption, method: Method, annual_rate: Decimal | None, fee_rate: Decimal | None
) -> Repricing:
    """The new method and price: the option's, converting a flat-fee loan given an annual rate to
    equal-installment (and an interest loan given a fee rate to flat-fee); otherwise the loan's own."""
    new = option.method
    if new is None:
        if option.annual_rate is not None and method is Method.FLAT_FEE:
            new = Method.EQUAL_INSTALLMENT
        elif option.fee_rate is not None and method is not Method.FLAT_FEE:
            new = Method.FLAT_FEE
        else:
            new = method
    if new is Method.FLAT_FEE:
        fee = option.fee_rate if option.fee_rate is not None else fee_rate if method is Method.FLAT_FEE else None
        if fee is None:
            return Repricing(None, None, None, f"option {option.id} turns the loan flat-fee without a `fee_rate`")
        return Repricing(new, None, fee)
    rate = (
        option.annual_rate if option.annual_rate is not None else annual_rate if method is not Method.FLAT_FEE else None
    )
    if rate is None:
        return Repricing(None, None, None, f"option {option.id} re-prices a flat-fee loan without an `annual_rate`")
    return Repricing(new, rate, None)


def quote_option(position: LoanPosition, option: OptionSpec, *, as_of: date) -> Quote:
    """The Decimal quote of ``option`` for one loan on ``as_of`` (what acceptance applies)."""
    if isinstance(option, EarlySettlementOption):
        gross = early_settlement(position, as_of=as_of, waive_penalties=option.waive_penalties)
        future = position.not_yet_due(as_of)
        remaining = sum((max(i.outstanding(Component.PRINCIPAL), Decimal(0)) for i in future), Decimal("0.00"))
        mode = position.product.rounding.mode
        discount = quantize(option.discount_rate * remaining, mode)
        if option.waive_settlement_fee:
            rule = position.product.early_settlement
            discount += quantize(rule.fee_rate_of_remaining_principal * remaining, mode) + rule.flat_fee
        discount = min(discount, gross.due_now.total)
        if discount == 0:
            return gross
        return early_settlement(position, as_of=as_of, discount=discount, waive_penalties=option.waive_penalties)
    if isinstance(option, ExtensionOption):
        return extension(position, as_of=as_of, extra_periods=option.extra_months)
    method = position.product.method
    annual = position.contract_annual_rate
    fee = position.contract_fee_rate
    if isinstance(option, HardshipHolidayOption):
        left = len(position.not_yet_due(as_of))
        if left == 0:
            raise InvalidInput(
                f"`option`: loan {position.loan_id} has no installment left to defer; a hardship holiday "
                "needs at least one installment not yet due",
                field="option",
            )
        return restructure(
            position,
            as_of=as_of,
            term=left + option.months,
            grace_periods=option.months,
            waive_penalties=option.waive_penalties,
            capitalize_overdue=option.capitalize_overdue,
        )
    price = restructured_price(option, method, annual, fee)
    if price.problem is not None:
        raise InvalidInput(f"`option`: {price.problem}", field="option")
    return restructure(
        position,
        as_of=as_of,
        term=option.term_months,
        annual_rate=price.annual_rate,
        fee_rate=price.fee_rate,
        method=price.method,
        waive_penalties=option.waive_penalties,
        haircut=option.haircut,
        grace_periods=option.grace_months,
        capitalize_overdue=option.capitalize_overdue,
    )


def _credit_cost(position: LoanPosition, as_of: date, settlement_fee: Decimal) -> Decimal:
    """Interest and fees a settlement charges up to ``as_of`` (arrears and the current period), before any
    discount and without the settlement fee: the cost of credit Civil Code Art. 677 limits to the days borrowed
    (for a flat-fee loan the fee is that cost)."""
    due = early_settlement(position, as_of=as_of).due_now
    return due.interest + due.fee - settlement_fee


def quote_columns(quote: Quote, position: LoanPosition, option: OptionSpec) -> dict[str, Any]:
    """A Decimal quote as one row of the offers table's priced columns (fen)."""
    due = quote.due_now
    schedule = quote.schedule
    settling = isinstance(option, EarlySettlementOption)
    apr = quote.apr
    method = schedule.method.value if not settling else position.product.method.value
    flat = schedule.method is Method.FLAT_FEE
    rate = None
    fee = None
    if not settling:
        rate = None if flat else position.contract_annual_rate
        fee = position.contract_fee_rate if flat else None
        if isinstance(option, RestructuringOption):
            price = restructured_price(
                option, position.product.method, position.contract_annual_rate, position.contract_fee_rate
            )
            rate, fee = price.annual_rate, price.fee_rate
    remaining = accrued = charged = settlement_fee = Decimal(0)
    if settling:
        remaining = sum(
            (max(i.outstanding(Component.PRINCIPAL), Decimal(0)) for i in position.not_yet_due(quote.as_of)),
            Decimal("0.00"),
        )
        rule = position.product.early_settlement
        settlement_fee = quantize(rule.fee_rate_of_remaining_principal * remaining, position.product.rounding.mode)
        settlement_fee += rule.flat_fee
        charged = _credit_cost(position, quote.as_of, settlement_fee)
        to_date = rule.model_copy(
            update={"interest": SettlementInterest.ACCRUED_TO_DATE, "remaining_flat_fees_waived": True}
        )
        product = position.product.model_copy(update={"early_settlement": to_date})
        accrued = _credit_cost(replace(position, product=product), quote.as_of, settlement_fee)
    installments = schedule.installments
    return {
        "method": method,
        "term": len(installments),
        "annual_rate": float(rate) if rate is not None else np.nan,
        "fee_rate": float(fee) if fee is not None else np.nan,
        "principal_fen": to_minor(schedule.principal),
        "due_now_principal_fen": to_minor(due.principal),
        "due_now_interest_fen": to_minor(due.interest),
        "due_now_fee_fen": to_minor(due.fee),
        "due_now_penalty_fen": to_minor(due.penalty),
        "waived_fen": to_minor(due.waived),
        "credit_applied_fen": to_minor(quote.credit_applied),
        "pay_now_fen": to_minor(quote.pay_now),
        "schedule_total_fen": 0 if settling else to_minor(schedule.total_payable),
        "total_cost_fen": to_minor(quote.total_cost),
        "forgiven_principal_fen": to_minor(quote.forgiven_principal),
        "capitalized_fen": to_minor(quote.capitalized),
        "installment_fen": to_minor(due.total if settling else max(i.total for i in installments)),
        "first_due": quote.as_of if settling else installments[0].due_date,
        "maturity": quote.as_of if settling else installments[-1].due_date,
        "apr_nominal": float(apr.nominal) if apr is not None else np.nan,
        "apr_effective": float(apr.effective) if apr is not None else np.nan,
        "interest_charged_fen": to_minor(charged),
        "interest_accrued_fen": to_minor(accrued),
        "settlement_fee_fen": to_minor(settlement_fee),
        "amount_repaid_early_fen": to_minor(remaining),
    }
