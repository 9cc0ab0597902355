"""Payment allocation (还款冲账顺序): where every cent of a payment goes.

A payment first settles what is due on or before its value date, in the product's component
order (default penalty, fee, interest, principal) and scope (installment-first: the oldest
installment in full before the next; component-first: each component across all due
installments, oldest first, before the next component). Money left over is held as a credit
balance or prepays principal from the last installment backwards (shortening the term), by the
product's overpayment rule.

The ledger's sequence for one payment is: bring penalties to the value date
(:func:`runoff.servicing.delinquency.accrue_penalties`), :func:`allocate`, post the lines,
:func:`apply_allocation`. A credit balance is not re-allocated by :func:`allocate`; the ledger
spends it with :func:`apply_credit` whenever an installment falls due (at the daily close of the
due date) and after every payment.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from enum import StrEnum

from runoff.errors import InvalidInput, InvariantBroken
from runoff.money import CENT
from runoff.servicing.delinquency import accrue_penalties
from runoff.servicing.position import ZERO, DatedPayment, InstallmentPosition, LoanPosition
from runoff.servicing.product import AllocationScope, Component, Method, Overpayment


class FundingSource(StrEnum):
    """Where allocated money comes from: a new payment, or the loan's credit balance (溢缴款)."""

    PAYMENT = "payment"
    CREDIT = "credit"


@dataclass(frozen=True, slots=True)
class AllocationLine:
    """An amount applied to (or, in ``Allocation.repriced``, removed from) one component of one installment."""

    number: int
    component: Component
    amount: Decimal

    def to_dict(self) -> dict[str, str | int]:
        """The line as results and the audit log write it (the amount as a decimal string)."""
        return {"installment": self.number, "component": self.component.value, "amount": str(self.amount)}


@dataclass(frozen=True, slots=True)
class Allocation:
    """Where a payment went: ``lines`` to installments, ``credited`` to the credit balance.

    ``prepaid_principal`` is the part of the lines that paid principal not yet due. ``repriced``
    lists interest (and flat fee) of future installments that a prepayment removed from the
    schedule: no money moves for them, the amount due is lowered. Σ lines + credited == amount,
    always.
    """

    paid_on: date
    amount: Decimal
    lines: tuple[AllocationLine, ...]
    credited: Decimal
    prepaid_principal: Decimal = ZERO
    repriced: tuple[AllocationLine, ...] = ()
    source: FundingSource = FundingSource.PAYMENT

    def __post_init__(self) -> None:
        if self.applied + self.credited != self.amount:
            raise InvariantBroken(
                f"allocation of {self.amount} on {self.paid_on.isoformat()} does not add up: "
                f"lines {self.applied} + credited {self.credited}"
            )
        if any(line.amount <= 0 for line in self.lines) or self.credited < 0:
            raise InvariantBroken(f"allocation of {self.amount} has a non-positive line or a negative credit")

    @property
    def applied(self) -> Decimal:
        """Money applied to installments (the amount less what went to the credit balance)."""
        return sum((line.amount for line in self.lines), ZERO)

    def total_of(self, component: Component) -> Decimal:
        return sum((line.amount for line in self.lines if line.component is component), ZERO)


def allocate(position: LoanPosition, amount: Decimal, *, paid_on: date) -> Allocation:
    """Split a payment of ``amount`` received on ``paid_on`` over the loan, by the product's allocation rule.

    Penalties are taken as the position carries them: accrue them to ``paid_on`` first. The
    position's existing credit balance is left alone (see :func:`apply_credit`).
    """
    _check_amount(amount)
    if paid_on < position.start_date:
        raise InvalidInput(
            f"`paid_on`: {paid_on.isoformat()} is before the loan's start date "
            f"{position.start_date.isoformat()}; expected a value date on or after it",
            field="paid_on",
        )
    lines, left = _settle_due(position, amount, paid_on=paid_on)
    prepaid: list[AllocationLine] = []
    repriced: tuple[AllocationLine, ...] = ()
    if left > 0 and position.product.allocation.overpayment is Overpayment.PREPAY_PRINCIPAL:
        prepaid, left = _prepay_from_last(position, left, paid_on=paid_on)
        repriced = _reprice_after_prepayment(position, prepaid, paid_on=paid_on)
    return Allocation(
        paid_on=paid_on,
        amount=amount,
        lines=tuple(lines + prepaid),
        credited=left,
        prepaid_principal=sum((line.amount for line in prepaid), ZERO),
        repriced=repriced,
    )


def apply_credit(position: LoanPosition, as_of: date) -> Allocation:
    """Spend the credit balance on what is due on or before ``as_of``, in the product's allocation order.

    Returns an allocation funded by credit (``source`` CREDIT) of at most the credit balance; it
    is empty (amount 0) when there is no credit or nothing due. Credit never prepays principal.
    """
    if position.credit_balance <= 0:
        return Allocation(paid_on=as_of, amount=ZERO, lines=(), credited=ZERO, source=FundingSource.CREDIT)
    lines, left = _settle_due(position, position.credit_balance, paid_on=as_of)
    return Allocation(
        paid_on=as_of,
        amount=position.credit_balance - left,
        lines=tuple(lines),
        credited=ZERO,
        source=FundingSource.CREDIT,
    )


def apply_allocation(position: LoanPosition, allocation: Allocation) -> LoanPosition:
    """The position after ``allocation`` is posted: paid amounts, dated payments, credit balance, repricing."""
    numbers = {i.number for i in position.installments}
    unknown = {line.number for line in (*allocation.lines, *allocation.repriced)} - numbers
    if unknown:
        raise InvalidInput(
            f"`allocation`: installments {sorted(unknown)} are not in loan {position.loan_id}'s live schedule",
            field="allocation",
        )
    paid: dict[int, list[AllocationLine]] = defaultdict(list)
    for line in allocation.lines:
        paid[line.number].append(line)
    cut: dict[int, list[AllocationLine]] = defaultdict(list)
    for line in allocation.repriced:
        cut[line.number].append(line)
    installments = tuple(
        _post(inst, paid.get(inst.number, ()), cut.get(inst.number, ()), allocation.paid_on)
        if inst.number in paid or inst.number in cut
        else inst
        for inst in position.installments
    )
    credit = position.credit_balance + allocation.credited
    if allocation.source is FundingSource.CREDIT:
        credit -= allocation.amount
    if credit < 0:
        raise InvalidInput(
            f"`allocation`: spends {allocation.amount} of credit but loan {position.loan_id} holds "
            f"{position.credit_balance}",
            field="allocation",
        )
    return replace(position, installments=installments, credit_balance=credit)


def _check_amount(amount: Decimal) -> None:
    if not amount.is_finite() or amount <= 0:
        raise InvalidInput(f"`amount`: {amount} is not allowed; expected an amount more than zero", field="amount")
    if amount != amount.quantize(CENT):
        raise InvalidInput(f"`amount`: {amount} has more than two decimals; expected whole cents", field="amount")


def _settle_due(position: LoanPosition, amount: Decimal, *, paid_on: date) -> tuple[list[AllocationLine], Decimal]:
    """Lines paying what is due on or before ``paid_on`` from ``amount``, and what is left."""
    rule = position.product.allocation
    due = position.due_by(paid_on)
    if rule.scope is AllocationScope.INSTALLMENT_FIRST:
        order = [(inst, c) for inst in due for c in rule.order]
    else:
        order = [(inst, c) for c in rule.order for inst in due]
    lines: list[AllocationLine] = []
    left = amount
    for inst, component in order:
        if left <= 0:
            break
        take = min(left, max(inst.outstanding(component), ZERO))
        if take > 0:
            lines.append(AllocationLine(inst.number, component, take))
            left -= take
    return lines, left


def _prepay_from_last(
    position: LoanPosition, amount: Decimal, *, paid_on: date
) -> tuple[list[AllocationLine], Decimal]:
    """Principal of installments not yet due, paid from the last one backwards (缩短期限)."""
    lines: list[AllocationLine] = []
    left = amount
    for inst in reversed(position.not_yet_due(paid_on)):
        if left <= 0:
            break
        take = min(left, max(inst.outstanding(Component.PRINCIPAL), ZERO))
        if take > 0:
            lines.append(AllocationLine(inst.number, Component.PRINCIPAL, take))
            left -= take
    return lines, left


def _reprice_after_prepayment(
    position: LoanPosition, prepaid: Iterable[AllocationLine], *, paid_on: date
) -> tuple[AllocationLine, ...]:
    """Interest (and waivable flat fee) of future periods no longer owed after a principal prepayment.

    The current period (the first not yet due) keeps its interest: it was earned on the balance
    the period started with. Each later period's interest is scaled by how much of its opening
    balance remains, I' = q(I × B'/B), so a period whose balance is entirely prepaid carries no
    interest; flat fees of such periods go when the product waives remaining flat fees.
    """
    prepaid_by_number = {line.number: line.amount for line in prepaid}
    if not prepaid_by_number:
        return ()
    product = position.product
    future = position.not_yet_due(paid_on)
    mode = product.rounding.mode
    cuts: list[AllocationLine] = []
    for k, inst in enumerate(future):
        if k == 0:
            continue
        later = future[k:]
        balance = sum((i.outstanding(Component.PRINCIPAL) for i in later), ZERO)
        removed = sum((prepaid_by_number.get(i.number, ZERO) for i in later), ZERO)
        if balance <= 0 or removed <= 0:
            continue
        remaining = balance - removed
        interest_left = max(inst.outstanding(Component.INTEREST), ZERO)
        new_interest = (interest_left * remaining / balance).quantize(CENT, rounding=mode.decimal_rounding)
        if interest_left - new_interest > 0:
            cuts.append(AllocationLine(inst.number, Component.INTEREST, interest_left - new_interest))
        fee_left = max(inst.outstanding(Component.FEE), ZERO)
        fee_waived = product.method is Method.FLAT_FEE and product.early_settlement.remaining_flat_fees_waived
        if remaining <= 0 and fee_left > 0 and fee_waived:
            cuts.append(AllocationLine(inst.number, Component.FEE, fee_left))
    return tuple(cuts)


def _post(
    inst: InstallmentPosition,
    paid: Iterable[AllocationLine],
    cut: Iterable[AllocationLine],
    paid_on: date,
) -> InstallmentPosition:
    paid = tuple(paid)
    cut = tuple(cut)
    if not paid and not cut:
        return inst
    by = dict.fromkeys(Component, ZERO)
    for line in paid:
        by[line.component] += line.amount
    less = dict.fromkeys(Component, ZERO)
    for line in cut:
        less[line.component] += line.amount
    for component in Component:
        if by[component] > max(inst.outstanding(component), ZERO) - less[component]:
            raise InvalidInput(
                f"`allocation`: pays {by[component]} of {component.value} on installment {inst.number}, "
                f"more than the {inst.outstanding(component)} owed",
                field="allocation",
            )
    return replace(
        inst,
        principal_paid=inst.principal_paid + by[Component.PRINCIPAL],
        interest_paid=inst.interest_paid + by[Component.INTEREST],
        fee_paid=inst.fee_paid + by[Component.FEE],
        penalty_paid=inst.penalty_paid + by[Component.PENALTY],
        interest_due=inst.interest_due - less[Component.INTEREST],
        fee_due=inst.fee_due - less[Component.FEE],
        dated_payments=inst.dated_payments + tuple(DatedPayment(paid_on, line.component, line.amount) for line in paid),
    )


def unpaid(position: LoanPosition) -> LoanPosition:
    """The live schedule with nothing paid, no credit and no penalty accrued; penalty waivers are kept.

    The starting point of a replay: penalty charged under earlier schedule versions stays counted for the cap.
    """
    live = sum((i.penalty_accrued for i in position.installments), ZERO)
    earlier = max(position.penalty_charged_total - live, ZERO)
    return replace(
        position,
        installments=tuple(
            replace(
                i,
                principal_paid=ZERO,
                interest_paid=ZERO,
                fee_paid=ZERO,
                penalty_paid=ZERO,
                penalty_accrued=ZERO,
                dated_payments=(),
            )
            for i in position.installments
        ),
        credit_balance=ZERO,
        penalty_charged_total=earlier,
    )


def replay_payments(
    position: LoanPosition, payments: Sequence[tuple[date, Decimal]], *, as_of: date
) -> tuple[LoanPosition, tuple[Allocation, ...]]:
    """Re-run a loan's payments in value-date order up to ``as_of`` (a repost, 回溯重算).

    ``position`` is the live schedule version as written (its original due amounts: a prepayment's
    repricing is redone by the replay). From :func:`unpaid` ``position``, walks time forward: on each due date the credit balance is
    spent (:func:`apply_credit`), then each payment of the day (in the order given) is allocated
    after penalties are brought to its value date; penalties end accrued to ``as_of``. Returns the
    position as of ``as_of`` and every allocation made, in order: the ledger replaces the
    allocations of the live schedule version with these, for this loan only.
    """
    late = [d for d, _ in payments if d > as_of]
    if late:
        raise InvalidInput(
            f"`payments`: value date {min(late).isoformat()} is after `as_of` {as_of.isoformat()}; "
            "expected payments on or before as_of",
            field="payments",
        )
    current = unpaid(position)
    allocations: list[Allocation] = []
    due_dates = sorted({i.due_date for i in current.installments if i.due_date <= as_of})
    events: list[tuple[date, int, int]] = [(d, 0, -1) for d in due_dates]
    events += [(d, 1, k) for k, (d, _) in enumerate(payments)]
    for day, kind, k in sorted(events):
        current = accrue_penalties(current, day)
        if kind == 0:
            spend = apply_credit(current, day)
            if spend.amount > 0:
                current = apply_allocation(current, spend)
                allocations.append(spend)
            continue
        allocation = allocate(current, payments[k][1], paid_on=day)
        current = apply_allocation(current, allocation)
        allocations.append(allocation)
    return accrue_penalties(current, as_of), tuple(allocations)
