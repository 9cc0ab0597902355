from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runoff.errors import InvalidInput
from runoff.servicing.allocation import (
    AllocationLine,
    FundingSource,
    allocate,
    apply_allocation,
    apply_credit,
)
from runoff.servicing.position import InstallmentPosition, LoanPosition
from runoff.servicing.product import Component, parse_product

D = Decimal
PEN, FEE, INT, PRIN = Component.PENALTY, Component.FEE, Component.INTEREST, Component.PRINCIPAL
START = date(2024, 1, 15)
DUE = [date(2024, 2, 15), date(2024, 3, 15), date(2024, 4, 15), date(2024, 5, 15)]


def product(**allocation):
    return parse_product(
        {"id": "t", "method": "equal-principal", "annual_rate": "0.12", "terms": [4], "allocation": allocation}
    )


def position(n=3, *, penalty_on_first="0.50", credit="0", **allocation):
    """n installments of 100 principal, 3 interest and 1 fee; installment 1 carries a penalty."""
    installments = tuple(
        InstallmentPosition(
            number=k + 1,
            due_date=DUE[k],
            principal_due=D(100),
            interest_due=D(3),
            fee_due=D(1),
            penalty_accrued=D(penalty_on_first) if k == 0 else D(0),
        )
        for k in range(n)
    )
    return LoanPosition(
        loan_id="L1",
        product=product(**allocation),
        principal=D(100 * n),
        start_date=START,
        installments=installments,
        credit_balance=D(credit),
        penalty_charged_total=D(penalty_on_first),
    )


def lines(*rows):
    return tuple(AllocationLine(n, c, D(a)) for n, c, a in rows)


PAID_ON = date(2024, 3, 20)  # installments 1 and 2 are due


@pytest.mark.parametrize(
    ("pos", "amount", "expected_lines", "credited", "prepaid"),
    [
        (
            position(),
            "50",
            lines((1, PEN, "0.50"), (1, FEE, 1), (1, INT, 3), (1, PRIN, "45.50")),
            "0",
            "0",
        ),
        (
            position(),
            "208.50",
            lines((1, PEN, "0.50"), (1, FEE, 1), (1, INT, 3), (1, PRIN, 100), (2, FEE, 1), (2, INT, 3), (2, PRIN, 100)),
            "0",
            "0",
        ),
        (
            position(scope="component-first"),
            "10",
            lines((1, PEN, "0.50"), (1, FEE, 1), (2, FEE, 1), (1, INT, 3), (2, INT, 3), (1, PRIN, "1.50")),
            "0",
            "0",
        ),
        (
            position(order=["interest", "principal", "fee", "penalty"]),
            "105",
            lines((1, INT, 3), (1, PRIN, 100), (1, FEE, 1), (1, PEN, "0.50"), (2, INT, "0.50")),
            "0",
            "0",
        ),
        (
            position(),
            "250",
            lines((1, PEN, "0.50"), (1, FEE, 1), (1, INT, 3), (1, PRIN, 100), (2, FEE, 1), (2, INT, 3), (2, PRIN, 100)),
            "41.50",
            "0",
        ),
        (
            position(overpayment="prepay-principal"),
            "250",
            lines(
                (1, PEN, "0.50"),
                (1, FEE, 1),
                (1, INT, 3),
                (1, PRIN, 100),
                (2, FEE, 1),
                (2, INT, 3),
                (2, PRIN, 100),
                (3, PRIN, "41.50"),
            ),
            "0",
            "41.50",
        ),
        (
            position(4, overpayment="prepay-principal"),
            "350",
            lines(
                (1, PEN, "0.50"),
                (1, FEE, 1),
                (1, INT, 3),
                (1, PRIN, 100),
                (2, FEE, 1),
                (2, INT, 3),
                (2, PRIN, 100),
                (4, PRIN, 100),
                (3, PRIN, "41.50"),
            ),
            "0",
            "141.50",
        ),
        (
            position(overpayment="prepay-principal"),
            "1000",
            lines((1, PEN, "0.50"), (1, FEE, 1), (1, INT, 3), (1, PRIN, 100), (2, FEE, 1), (2, INT, 3), (2, PRIN, 100))
            + lines((3, PRIN, 100)),
            "691.50",
            "100",
        ),
    ],
    ids=[
        "partial-installment-first",
        "exact-two-installments",
        "component-first",
        "penalty-last-order",
        "overpayment-credit",
        "overpayment-prepays-last-installment",
        "prepayment-runs-from-the-last-installment-backwards",
        "prepayment-beyond-principal-becomes-credit",
    ],
)
def test_allocation_table(pos, amount, expected_lines, credited, prepaid):
    result = allocate(pos, D(amount), paid_on=PAID_ON)
    assert result.lines == expected_lines
    assert result.credited == D(credited)
    assert result.prepaid_principal == D(prepaid)
    assert result.applied + result.credited == D(amount)


def test_payment_before_anything_is_due_is_held_as_credit():
    result = allocate(position(), D("30"), paid_on=date(2024, 2, 1))
    assert result.lines == ()
    assert result.credited == D(30)


def test_an_installment_due_on_the_payment_date_is_due():
    result = allocate(position(), D("300"), paid_on=DUE[1])
    assert {line.number for line in result.lines} == {1, 2}


def test_prepaying_a_whole_later_period_removes_its_interest_and_keeps_the_current_periods():
    result = allocate(position(4, overpayment="prepay-principal"), D("350"), paid_on=PAID_ON)
    # installment 3 is the current period: its interest stays; installment 4's balance is gone: so is its interest
    assert result.repriced == lines((4, INT, 3))
    after = apply_allocation(position(4, overpayment="prepay-principal"), result)
    assert after.installments[3].interest_due == D(0)
    assert after.installments[3].outstanding_total == D(1)  # the fee of a non-flat product stays
    assert after.installments[2].interest_due == D(3)


def test_a_partly_prepaid_later_period_pays_interest_on_what_remains_of_its_balance():
    pos = position(4, overpayment="prepay-principal")
    result = allocate(pos, D("258.50"), paid_on=PAID_ON)  # 208.50 due, 50 prepays half of installment 4
    assert result.lines[-1] == AllocationLine(4, PRIN, D(50))
    # period 4 opens on a balance of 100, now 50: its interest 3 becomes 1.50
    assert result.repriced == lines((4, INT, "1.50"))


def test_flat_fee_periods_prepaid_in_full_lose_their_fee():
    pos = position(4, overpayment="prepay-principal")
    flat = parse_product(
        {
            "id": "f",
            "method": "flat-fee",
            "fee_rate": "0.01",
            "terms": [4],
            "allocation": {"overpayment": "prepay-principal"},
        }
    )
    pos = LoanPosition(
        loan_id="F",
        product=flat,
        principal=pos.principal,
        start_date=START,
        installments=tuple(
            InstallmentPosition(i.number, i.due_date, i.principal_due, D(0), D(4)) for i in pos.installments
        ),
    )
    result = allocate(pos, D("308"), paid_on=PAID_ON)  # 208 due, 100 prepays installment 4
    assert result.repriced == lines((4, FEE, 4))


@pytest.mark.parametrize(
    ("amount", "paid_on", "field"),
    [
        ("0", PAID_ON, "amount"),
        ("-5", PAID_ON, "amount"),
        ("10.001", PAID_ON, "amount"),
        ("NaN", PAID_ON, "amount"),
        ("10", START - timedelta(days=1), "paid_on"),
    ],
    ids=["zero", "negative", "sub-cent", "not-a-number", "before-start"],
)
def test_impossible_payment_is_refused_naming_the_field(amount, paid_on, field):
    with pytest.raises(InvalidInput, match=f"`{field}`") as err:
        allocate(position(), D(amount), paid_on=paid_on)
    assert err.value.field == field


def test_apply_allocation_chains_payments_and_records_their_value_dates():
    pos = position()
    first = allocate(pos, D("50"), paid_on=PAID_ON)
    pos = apply_allocation(pos, first)
    second = allocate(pos, D("60"), paid_on=date(2024, 3, 25))
    assert second.lines[0] == AllocationLine(1, PRIN, D("54.50"))
    pos = apply_allocation(pos, second)
    inst1 = pos.installments[0]
    assert inst1.is_settled
    assert [(p.paid_on, p.amount) for p in inst1.dated_payments if p.component is PRIN] == [
        (PAID_ON, D("45.50")),
        (date(2024, 3, 25), D("54.50")),
    ]
    # the 5.50 left pays installment 2's fee 1, interest 3 and 1.50 of its principal
    assert pos.outstanding_principal == D("198.50")


def test_credit_from_an_overpayment_is_spent_when_the_next_installment_falls_due():
    pos = position()
    over = allocate(pos, D("250"), paid_on=PAID_ON)
    pos = apply_allocation(pos, over)
    assert pos.credit_balance == D("41.50")
    assert apply_credit(pos, date(2024, 4, 14)).amount == 0  # nothing due yet
    spend = apply_credit(pos, DUE[2])
    assert spend.source is FundingSource.CREDIT
    assert spend.lines == lines((3, FEE, 1), (3, INT, 3), (3, PRIN, "37.50"))
    pos = apply_allocation(pos, spend)
    assert pos.credit_balance == 0
    assert pos.installments[2].outstanding_total == D("62.50")


def test_credit_larger_than_what_is_due_spends_only_what_is_due():
    pos = position(credit="300")
    spend = apply_credit(pos, PAID_ON)
    assert spend.amount == D("208.50")
    assert apply_allocation(pos, spend).credit_balance == D("91.50")


def test_allocate_does_not_touch_the_existing_credit_balance():
    pos = position(credit="20")
    after = apply_allocation(pos, allocate(pos, D("10"), paid_on=PAID_ON))
    assert after.credit_balance == D(20)


# --- property: every cent is accounted for ---------------------------------------------------------

cents = st.integers(min_value=0, max_value=50_000).map(lambda c: D(c) / 100)


@st.composite
def positions(draw):
    n = draw(st.integers(1, 6))
    installments = []
    for k in range(n):
        due = [draw(cents) for _ in range(4)]  # principal, interest, fee, penalty
        paid = [draw(st.sampled_from([D(0), a, (a / 2).quantize(D("0.01"))])) for a in due]
        installments.append(
            InstallmentPosition(
                number=k + 1,
                due_date=START + timedelta(days=30 * (k + 1)),
                principal_due=due[0],
                interest_due=due[1],
                fee_due=due[2],
                penalty_accrued=due[3],
                principal_paid=paid[0],
                interest_paid=paid[1],
                fee_paid=paid[2],
                penalty_paid=paid[3],
            )
        )
    allocation = {
        "order": draw(st.permutations(["penalty", "fee", "interest", "principal"])),
        "scope": draw(st.sampled_from(["installment-first", "component-first"])),
        "overpayment": draw(st.sampled_from(["credit", "prepay-principal"])),
    }
    return LoanPosition(
        loan_id="P",
        product=product(**allocation),
        principal=sum((i.principal_due for i in installments), D(0)),
        start_date=START,
        installments=tuple(installments),
    )


@settings(max_examples=300, deadline=None)
@given(pos=positions(), amount=st.integers(1, 500_000).map(lambda c: D(c) / 100), day=st.integers(0, 240))
def test_allocation_sums_to_the_payment_and_never_overpays_a_component(pos, amount, day):
    paid_on = START + timedelta(days=day)
    result = allocate(pos, amount, paid_on=paid_on)
    assert sum((line.amount for line in result.lines), D(0)) + result.credited == amount
    after = apply_allocation(pos, result)
    for inst in after.installments:
        for c in Component:
            assert inst.outstanding(c) >= 0
    owed_before = sum((i.outstanding_total for i in pos.installments), D(0))
    owed_after = sum((i.outstanding_total for i in after.installments), D(0))
    removed = sum((line.amount for line in result.repriced), D(0))
    assert owed_before - owed_after == result.applied + removed
    assert after.credit_balance == result.credited
