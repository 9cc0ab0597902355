from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runoff.errors import InvalidInput
from runoff.servicing.allocation import allocate, apply_allocation, replay_payments
from runoff.servicing.delinquency import (
    BUCKETS,
    Bucket,
    accrue_penalties,
    accrue_penalty_day,
    bucket_of,
    buckets_of,
    days_past_due,
    penalty_accrual,
    penalty_due_to_date,
    penalty_units,
)
from runoff.servicing.position import DatedPayment, InstallmentPosition, LoanPosition
from runoff.servicing.product import Component, parse_product

D = Decimal
START = date(2024, 1, 15)
DUE = [date(2024, 2, 15), date(2024, 3, 15), date(2024, 4, 15)]


def product(**penalty):
    return parse_product(
        {"id": "t", "method": "equal-principal", "annual_rate": "0.12", "terms": [3], "penalty": penalty}
    )


def position(*, penalty_charged_total="0", **penalty):
    """Three installments of 100 principal, 2 interest and 1 fee, nothing paid."""
    return LoanPosition(
        loan_id="L1",
        product=product(**penalty),
        principal=D(300),
        start_date=START,
        installments=tuple(
            InstallmentPosition(number=k + 1, due_date=due, principal_due=D(100), interest_due=D(2), fee_due=D(1))
            for k, due in enumerate(DUE)
        ),
        penalty_charged_total=D(penalty_charged_total),
    )


def pay(pos, amount, on):
    """What the ledger does with a payment: bring penalties to the value date, allocate, post."""
    pos = accrue_penalties(pos, on)
    return apply_allocation(pos, allocate(pos, D(amount), paid_on=on))


# --- days past due and buckets -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dpd", "bucket"),
    [
        (0, Bucket.CURRENT),
        (1, Bucket.M1),
        (30, Bucket.M1),
        (31, Bucket.M2),
        (60, Bucket.M2),
        (61, Bucket.M3),
        (90, Bucket.M3),
        (91, Bucket.M4_PLUS),
        (400, Bucket.M4_PLUS),
    ],
    ids=lambda v: str(v),
)
def test_bucket_boundaries(dpd, bucket):
    assert bucket_of(dpd) is bucket
    pos = position()
    assert days_past_due(pos, DUE[0] + timedelta(days=dpd)) == dpd
    assert bucket_of(days_past_due(pos, DUE[0] + timedelta(days=dpd))) is bucket


def test_vectorized_buckets_agree_with_bucket_of():
    dpd = np.arange(0, 400, dtype=np.int64)
    codes = buckets_of(dpd)
    assert codes.dtype == np.int8
    assert [BUCKETS[c] for c in codes] == [bucket_of(int(d)) for d in dpd]


def test_negative_dpd_is_refused():
    with pytest.raises(InvalidInput, match="`dpd`"):
        bucket_of(-1)
    with pytest.raises(InvalidInput, match="`dpd`"):
        buckets_of(np.array([3, -2]))


def test_due_today_is_not_past_due():
    assert days_past_due(position(), DUE[0]) == 0


def test_dpd_counts_from_the_oldest_unpaid_installment():
    pos = pay(position(), "103", DUE[0])  # installment 1 paid on time
    assert days_past_due(pos, DUE[1] + timedelta(days=5)) == 5


def test_payment_on_the_day_clears_that_days_dpd_but_not_earlier_days():
    pos = pay(position(), "103.50", DUE[0] + timedelta(days=10))  # 0.50 of penalty first
    assert days_past_due(pos, DUE[0] + timedelta(days=10)) == 0
    assert days_past_due(pos, DUE[0] + timedelta(days=9)) == 9  # read as of an earlier day, it was late


def test_unpaid_penalty_alone_does_not_make_a_loan_delinquent():
    pos = position()
    inst = pos.installments[0]
    settled_but_penalty = InstallmentPosition(
        **{
            **{f: getattr(inst, f) for f in ("number", "due_date", "principal_due", "interest_due", "fee_due")},
            "principal_paid": D(100),
            "interest_paid": D(2),
            "fee_paid": D(1),
            "penalty_accrued": D("0.50"),
        }
    )
    pos = LoanPosition(
        loan_id="L1",
        product=pos.product,
        principal=pos.principal,
        start_date=START,
        installments=(settled_but_penalty, *pos.installments[1:]),
    )
    assert days_past_due(pos, DUE[0] + timedelta(days=20)) == 0


def test_any_unpaid_cent_of_interest_makes_a_loan_delinquent():
    pos = pay(position(), "102.99", DUE[0])  # fee and interest first, then principal: 0.01 short
    assert days_past_due(pos, DUE[0] + timedelta(days=3)) == 3


# --- penalty interest ----------------------------------------------------------------------------


def charges(pos, as_of):
    return {c.number: (c.amount, c.days) for c in penalty_due_to_date(pos, as_of) if c.days}


@pytest.mark.parametrize(
    ("penalty", "as_of", "expected"),
    [
        ({}, DUE[0], {}),
        ({}, date(2024, 2, 16), {1: (D("0.05"), 1)}),  # 100 × 0.0005 for the night of the due date
        ({}, date(2024, 2, 25), {1: (D("0.50"), 10)}),
        ({"grace_days": 3}, date(2024, 2, 18), {}),
        ({"grace_days": 3}, date(2024, 2, 25), {1: (D("0.35"), 7)}),  # grace days are not retroactive
        ({"base": "overdue-amount"}, date(2024, 2, 25), {1: (D("0.52"), 10)}),  # 103 × 0.0005 × 10 = 0.515
        ({"daily_rate": "0.001"}, date(2024, 3, 16), {1: (D("3.00"), 30), 2: (D("0.10"), 1)}),
    ],
    ids=["due-day", "one-day", "ten-days", "inside-grace", "after-grace", "overdue-amount-base", "two-installments"],
)
def test_penalty_to_date(penalty, as_of, expected):
    assert charges(position(**penalty), as_of) == expected


def test_penalty_days_equal_dpd_less_grace_days_for_an_unpaid_installment():
    pos = position(grace_days=5)
    as_of = DUE[0] + timedelta(days=20)
    assert charges(pos, as_of)[1][1] == days_past_due(pos, as_of) - 5


def test_a_partial_principal_payment_lowers_the_base_from_the_day_it_was_paid():
    pos = position(grace_days=3)
    pos = pay(pos, "43", DUE[0] + timedelta(days=10))  # fee 1, interest 2, principal 40 on day 10
    # days 3..9 on 100 (7 × 0.05 = 0.35), days 10..14 on 60 (5 × 0.03 = 0.15)
    assert charges(pos, DUE[0] + timedelta(days=15)) == {1: (D("0.50"), 12)}


def test_paying_on_the_due_date_costs_no_penalty():
    pos = pay(position(), "103", DUE[0])
    assert charges(pos, DUE[0] + timedelta(days=39)) == {2: (D("0.50"), 10)}


def test_cap_limits_the_loans_lifetime_penalty():
    pos = position(daily_rate="0.001", cap_rate_of_principal="0.01")  # cap 3.00 on 300 lent
    total = sum(c.amount for c in penalty_due_to_date(pos, DUE[2] + timedelta(days=200)))
    assert total == D("3.00")


def test_cap_counts_penalty_charged_under_an_earlier_schedule():
    pos = position(daily_rate="0.001", cap_rate_of_principal="0.01", penalty_charged_total="1.25")
    total = sum(c.amount for c in penalty_due_to_date(pos, DUE[2] + timedelta(days=200)))
    assert total == D("1.75")


def test_cap_binds_on_the_day_it_is_reached_so_later_installments_get_what_is_left():
    # installment 1 alone earns 0.10 a day; after 29 days (2.90) installment 2 joins; the cap 3.00 is hit
    # on the next day, shared oldest first: installment 1 takes the whole 0.10 of that day.
    pos = position(daily_rate="0.001", cap_rate_of_principal="0.01")
    assert charges(pos, DUE[2]) == {1: (D("3.00"), 30)}


def test_penalty_after_the_cap_never_decreases_for_any_installment():
    pos = position(daily_rate="0.0007", cap_rate_of_principal="0.02")
    previous = {n: D(0) for n in (1, 2, 3)}
    for day in range(0, 150):
        now = {c.number: c.amount for c in penalty_due_to_date(pos, DUE[0] + timedelta(days=day))}
        assert all(now[n] >= previous[n] for n in now)
        assert sum(now.values()) <= D("6.00")
        previous = now


def test_accrue_penalties_sets_each_installment_and_the_lifetime_total():
    pos = accrue_penalties(position(), DUE[0] + timedelta(days=10))
    assert pos.installments[0].penalty_accrued == D("0.50")
    assert pos.penalty_charged_total == D("0.50")
    # a payment then settles the penalty first
    paid = allocate(pos, D("1"), paid_on=DUE[0] + timedelta(days=10))
    assert paid.lines[0].component is Component.PENALTY
    assert paid.lines[0].amount == D("0.50")


def test_backdated_payment_recomputes_a_lower_penalty():
    late = accrue_penalties(position(), DUE[0] + timedelta(days=20))
    assert late.installments[0].penalty_accrued == D("1.00")
    # the payment on day 5 arrives after the close of day 20: a repost recomputes from the dated payment
    base = accrue_penalties(position(), DUE[0] + timedelta(days=5))
    reposted = pay(base, "103.25", DUE[0] + timedelta(days=5))
    reposted = accrue_penalties(reposted, DUE[0] + timedelta(days=20))
    assert reposted.installments[0].penalty_accrued == D("0.25")
    assert reposted.installments[0].is_settled


def test_penalty_paid_before_the_ledgers_history_is_the_floor_of_a_re_pricing():
    # Installment 1 came from a legacy book fully paid, 4.00 penalty included, with no dated payments:
    # re-priced from the ledger's history it earns nothing, but the 4.00 paid stays accrued.
    pos = position()
    first = pos.installments[0]
    paid = first.__class__(
        number=1, due_date=first.due_date, principal_due=D(100), interest_due=D(2), fee_due=D(1),
        principal_paid=D(100), interest_paid=D(2), fee_paid=D(1), penalty_accrued=D(4), penalty_paid=D(4),
    )  # fmt: skip
    loaded = replace(pos, installments=(paid, *pos.installments[1:]), penalty_charged_total=D(4))
    repriced = accrue_penalties(loaded, DUE[1] + timedelta(days=10))
    assert repriced.installments[0].penalty_accrued == D(4)
    assert repriced.installments[1].penalty_accrued == D("0.50")
    assert repriced.penalty_charged_total == D("4.50")


def test_accrual_range_must_not_run_backwards():
    with pytest.raises(InvalidInput, match="`to_date`"):
        penalty_accrual(position(), from_date=DUE[1], to_date=DUE[0])


@st.composite
def late_positions(draw):
    pos = position(
        daily_rate=str(draw(st.sampled_from(["0.0005", "0.00033", "0.001"]))),
        grace_days=draw(st.integers(0, 5)),
        base=draw(st.sampled_from(["overdue-principal", "overdue-amount"])),
        cap_rate_of_principal=draw(st.sampled_from([None, "0.01", "0.05"])),
    )
    payments = draw(st.lists(st.tuples(st.integers(0, 120), st.integers(1, 8000)), max_size=4))
    for day, cents in sorted(payments):
        pos = pay(pos, D(cents) / 100, DUE[0] + timedelta(days=day))
    return pos


@settings(max_examples=60, deadline=None)
@given(pos=late_positions(), start=st.integers(-10, 60), length=st.integers(0, 90))
def test_accruing_day_by_day_equals_accruing_over_the_whole_range(pos, start, length):
    first = DUE[0] + timedelta(days=start)
    whole = {c.number: c.amount for c in penalty_accrual(pos, from_date=first, to_date=first + timedelta(days=length))}
    daily: dict[int, Decimal] = {}
    for k in range(length):
        day = first + timedelta(days=k)
        for c in penalty_accrual(pos, from_date=day, to_date=day + timedelta(days=1)):
            daily[c.number] = daily.get(c.number, D(0)) + c.amount
    assert {n: a for n, a in daily.items() if a} == {n: a for n, a in whole.items() if a}


def test_dated_payments_of_other_components_do_not_move_a_principal_base():
    pos = position()
    inst = pos.installments[0]
    paid_interest = InstallmentPosition(
        number=1,
        due_date=inst.due_date,
        principal_due=D(100),
        interest_due=D(2),
        fee_due=D(1),
        interest_paid=D(2),
        dated_payments=(DatedPayment(DUE[0] + timedelta(days=2), Component.INTEREST, D(2)),),
    )
    pos = LoanPosition("L1", pos.product, pos.principal, START, (paid_interest, *pos.installments[1:]))
    assert charges(pos, DUE[0] + timedelta(days=4)) == {1: (D("0.20"), 4)}


# --- repost: replaying payments from their value dates ---------------------------------------------


def test_replay_of_a_backdated_payment_reallocates_and_lowers_the_penalty():
    as_of = DUE[0] + timedelta(days=20)
    # posted in arrival order: 50 on day 20, then a payment of 60 whose value date is day 5
    arrival = [(DUE[0] + timedelta(days=20), D("50")), (DUE[0] + timedelta(days=5), D("60"))]
    replayed, allocations = replay_payments(position(), sorted(arrival, key=lambda p: p[0]), as_of=as_of)
    # by hand in value-date order: day 5 penalty 0.25, then 60 → 0.25 penalty, fee 1, interest 2, 56.75 principal;
    # days 5..19 on 43.25 (15 × 0.021625 = 0.324375) → total 0.574375 → 0.57; day 20 pays 0.32 penalty, then 43.25
    assert [a.paid_on for a in allocations] == [DUE[0] + timedelta(days=5), DUE[0] + timedelta(days=20)]
    inst1 = replayed.installments[0]
    assert inst1.penalty_accrued == D("0.57")
    assert inst1.outstanding_total == 0
    assert replayed.credit_balance == D("50") + D("60") - D("103") - D("0.57")


def test_replay_in_value_date_order_equals_posting_payments_as_they_come():
    payments = [(DUE[0] + timedelta(days=3), D("40")), (DUE[1] + timedelta(days=2), D("150"))]
    by_hand = position()
    for day, amount in payments:
        by_hand = pay(by_hand, amount, day)
    by_hand = accrue_penalties(by_hand, DUE[2])
    replayed, _ = replay_payments(by_hand, payments, as_of=DUE[2])
    assert replayed.installments == by_hand.installments
    assert replayed.penalty_charged_total == by_hand.penalty_charged_total


def test_replay_spends_credit_when_an_installment_falls_due():
    replayed, allocations = replay_payments(position(), [(DUE[0], D("150"))], as_of=DUE[1])
    assert [a.source.value for a in allocations] == ["payment", "credit"]
    assert allocations[1].paid_on == DUE[1]
    assert replayed.credit_balance == 0
    assert replayed.installments[1].outstanding_total == D("56")  # 103 due, 47 of credit spent


def test_replay_refuses_payments_after_as_of():
    with pytest.raises(InvalidInput, match="`payments`"):
        replay_payments(position(), [(DUE[1], D("10"))], as_of=DUE[0])


# --- the set-based close agrees with the Decimal penalty ---------------------------------------------


def close_day_rows(positions, day, earned):
    """The arrays the ledger's close-day builds for ``day`` (one row per installment, loans contiguous)."""
    rows = []
    for code, pos in enumerate(positions):
        rule = pos.product.penalty
        components = (
            (Component.PRINCIPAL,)
            if rule.base.value == "overdue-principal"
            else (Component.PRINCIPAL, Component.INTEREST, Component.FEE)
        )
        capacity = -1
        if rule.cap_rate_of_principal is not None:
            capacity = int((rule.cap_rate_of_principal * pos.principal).quantize(D("0.01")) * 100)
        for inst in sorted(pos.installments, key=lambda i: (i.due_date, i.number)):
            base = sum((inst.unpaid_at_end_of(c, day) for c in components), D(0))
            rows.append(
                (
                    code,
                    day >= inst.due_date + timedelta(days=rule.grace_days),
                    int(base * 100),
                    int(rule.daily_rate * 10**9),
                    earned.get((code, inst.number), 0),
                    capacity,
                    inst.number,
                )
            )
    cols = list(zip(*rows, strict=True))
    return cols[-1], {
        "loan": np.array(cols[0], dtype=np.int64),
        "in_window": np.array(cols[1], dtype=bool),
        "base_fen": np.array(cols[2], dtype=np.int64),
        "rate_ppb": np.array(cols[3], dtype=np.int64),
        "earned_units": np.array(cols[4], dtype=np.int64),
        "capacity_fen": np.array(cols[5], dtype=np.int64),
    }


@settings(max_examples=25, deadline=None)
@given(positions=st.lists(late_positions(), min_size=1, max_size=4), days=st.integers(1, 150))
def test_close_day_kernel_run_daily_equals_penalty_due_to_date_to_the_fen(positions, days):
    earned: dict[tuple[int, int], int] = {}
    for k in range(days):
        day = DUE[0] + timedelta(days=k - 3)
        numbers, arrays = close_day_rows(positions, day, earned)
        result = accrue_penalty_day(**arrays)
        earned = {
            (int(code), number): int(u)
            for code, number, u in zip(arrays["loan"], numbers, result.earned_units, strict=True)
        }
        accrued = {
            (int(code), number): int(f)
            for code, number, f in zip(arrays["loan"], numbers, result.accrued_fen, strict=True)
        }
    for code, pos in enumerate(positions):
        for charge in penalty_due_to_date(pos, day + timedelta(days=1)):
            assert accrued[(code, charge.number)] == int(charge.amount * 100)
            assert earned[(code, charge.number)] == penalty_units(charge.earned)


def test_close_day_kernel_shares_the_capped_day_oldest_first():
    result = accrue_penalty_day(
        loan=np.array([0, 0, 1]),
        in_window=np.array([True, True, True]),
        base_fen=np.array([10_000, 10_000, 10_000]),
        rate_ppb=np.array([1_000_000, 1_000_000, 1_000_000]),  # 0.1 % a day: 10 fen on 100 yuan
        earned_units=np.array([0, 0, 0]),
        capacity_fen=np.array([15, 15, -1]),
    )
    assert result.accrued_fen.tolist() == [10, 5, 10]


def test_cents_rounded_over_the_cap_come_off_the_newest_installment_on_both_paths():
    capped = product(daily_rate="0.001", cap_rate_of_principal="0.1")  # cap 18.86 on 188.63 lent
    pos = LoanPosition(
        loan_id="C",
        product=capped,
        principal=D("188.63"),
        start_date=START,
        installments=(
            InstallmentPosition(1, date(2024, 2, 1), D("174.13"), D(0), D(0)),
            InstallmentPosition(2, date(2024, 2, 11), D("14.50"), D(0), D(0)),
        ),
    )
    charges = penalty_due_to_date(pos, date(2024, 7, 1))
    assert [c.earned for c in charges] == [D("17.555"), D("1.305")]  # each rounds up: 18.87 would break the cap
    assert [c.amount for c in charges] == [D("17.56"), D("1.30")]
    earned: dict[tuple[int, int], int] = {}
    day = date(2024, 2, 1)
    while day < date(2024, 7, 1):
        numbers, arrays = close_day_rows([pos], day, earned)
        result = accrue_penalty_day(**arrays)
        earned = {(0, n): int(u) for n, u in zip(numbers, result.earned_units, strict=True)}
        day += timedelta(days=1)
    assert result.accrued_fen.tolist() == [1756, 130]
