from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import numpy_financial as npf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from runoff.errors import InvalidInput
from runoff.servicing.allocation import allocate, apply_allocation
from runoff.servicing.apr import present_value
from runoff.servicing.delinquency import accrue_penalties
from runoff.servicing.position import open_position
from runoff.servicing.product import Method, parse_product
from runoff.servicing.quotes import QuoteKind, early_settlement, extension, remaining_payable, restructure
from runoff.servicing.schedule import build_schedule

D = Decimal
START = date(2024, 1, 15)


def loan(principal="12000", term=12, **product):
    """A loan drawn on 15 January 2024; equal-installment at 12 % a year unless ``product`` says otherwise."""
    data = {"id": "p", "method": "equal-installment", "annual_rate": "0.12", "terms": [term], **product}
    if data["method"] == "flat-fee":
        data.pop("annual_rate")
    p = parse_product(data)
    return open_position("L1", p, build_schedule(p, principal=D(principal), term=term, start_date=START))


def pay(pos, amount, on):
    pos = accrue_penalties(pos, on)
    return apply_allocation(pos, allocate(pos, D(amount), paid_on=on))


def irr_of_schedule(schedule):
    flows = [-float(schedule.principal)] + [float(i.total) for i in schedule.installments]
    return npf.irr(flows)


# --- early settlement (提前结清) ------------------------------------------------------------------


def test_settling_on_the_drawing_date_costs_exactly_the_principal():
    quote = early_settlement(loan(), as_of=START)
    assert quote.due_now.total == D("12000.00")
    assert quote.due_now.interest == 0
    assert quote.apr.nominal == 0


@pytest.mark.parametrize(
    ("rule", "as_of", "interest"),
    [
        ("accrued-to-date", date(2024, 1, 25), D("38.71")),  # 120.00 × 10 / 31 days
        ("accrued-to-date", date(2024, 2, 14), D("116.13")),  # 120.00 × 30 / 31: never the day not borrowed
        ("current-period", date(2024, 1, 25), D("120.00")),
        ("none", date(2024, 1, 25), D("0.00")),
    ],
    ids=["accrued-10-days", "accrued-day-before-due", "current-period", "none"],
)
def test_settlement_interest_for_the_current_period_follows_the_product_rule(rule, as_of, interest):
    quote = early_settlement(loan(early_settlement={"interest": rule}), as_of=as_of)
    assert quote.due_now.interest == interest
    assert quote.due_now.principal == D("12000.00")


def test_settling_mid_period_after_paying_on_time_charges_the_elapsed_days_only():
    pos = pay(loan(), "1066.19", date(2024, 2, 15))  # installment 1: 946.19 principal + 120.00 interest
    quote = early_settlement(pos, as_of=date(2024, 3, 1))
    # period 2 runs 15 Feb → 15 Mar 2024 (29 days); its interest 110.54 × 15 / 29 = 57.175… → 57.18
    assert quote.due_now.interest == D("57.18")
    assert quote.due_now.principal == D("11053.81")
    assert quote.due_now.penalty == 0


def test_daily_products_accrue_settlement_interest_by_their_day_count():
    pos = loan(interest_basis="daily", day_count="actual/365")
    quote = early_settlement(pos, as_of=date(2024, 1, 25))
    assert quote.due_now.interest == D("39.45")  # 12000 × 0.12 × 10 / 365 = 39.452…


def test_settlement_fees_are_charged_on_the_principal_not_yet_due():
    pos = loan(early_settlement={"fee_rate_of_remaining_principal": "0.01", "flat_fee": "50"})
    quote = early_settlement(pos, as_of=START)
    assert quote.due_now.fee == D("170.00")  # 1 % of 12000 + 50
    assert quote.due_now.total == D("12170.00")


@pytest.mark.parametrize(
    ("waived", "fee"),
    [(True, D("23.23")), (False, D("72.00"))],  # 72 × 10 / 31 = 23.225… ; the whole period's 0.6 % of 12000
    ids=["remaining-fees-waived", "current-fee-charged"],
)
def test_flat_fee_settlement_charges_no_fee_of_later_periods(waived, fee):
    pos = loan(method="flat-fee", fee_rate="0.006", early_settlement={"remaining_flat_fees_waived": waived})
    quote = early_settlement(pos, as_of=date(2024, 1, 25))
    assert quote.due_now.fee == fee
    assert quote.due_now.principal == D("12000.00")
    assert quote.saving == pos_total(pos) - quote.due_now.total


def pos_total(pos):
    return sum((i.outstanding_scheduled for i in pos.installments), D(0))


def test_overdue_installments_and_penalty_are_part_of_the_settlement_and_can_be_waived():
    pos = loan()
    as_of = date(2024, 3, 1)  # installment 1 (946.19 principal) 15 days overdue
    quote = early_settlement(pos, as_of=as_of)
    assert quote.due_now.penalty == D("7.10")  # 946.19 × 0.0005 × 15 = 7.096…
    assert quote.due_now.interest == D("177.18")  # 120.00 overdue + 57.18 accrued in period 2
    waived = early_settlement(pos, as_of=as_of, waive_penalties=True)
    assert waived.due_now.penalty == 0
    assert waived.due_now.waived == D("7.10")
    assert waived.due_now.total == quote.due_now.total - D("7.10")


def test_discount_is_an_amount_taken_from_penalty_then_fee_then_interest():
    quote = early_settlement(loan(), as_of=date(2024, 3, 1), discount=D("10"))
    assert quote.due_now.penalty == 0
    assert quote.due_now.interest == D("174.28")  # 177.18 − (10 − 7.10)
    assert quote.due_now.waived == D("10")


def test_credit_balance_reduces_what_the_customer_brings():
    pos = pay(loan(), "100", date(2024, 1, 20))  # nothing due yet: held as credit
    quote = early_settlement(pos, as_of=date(2024, 1, 25))
    assert quote.credit_applied == D("100")
    assert quote.pay_now == D("11938.71")


@settings(max_examples=40, deadline=None)
@given(day=st.integers(0, 364))
def test_settlement_never_charges_interest_beyond_as_of(day):
    pos = loan()
    as_of = START + timedelta(days=day)
    quote = early_settlement(pos, as_of=as_of)
    # interest due = scheduled interest of installments already due + at most the days borrowed in the current one
    due_interest = sum((i.interest_due for i in pos.installments if i.due_date <= as_of), D(0))
    current = [i for i in pos.installments if i.due_date > as_of]
    if current:
        period_start = pos.period_start(current[0])
        borrowed = D((as_of - period_start).days) / D((current[0].due_date - period_start).days)
        assert quote.due_now.interest - due_interest <= (current[0].interest_due * borrowed).quantize(
            D("0.01"), ROUND_HALF_UP
        )
    else:
        assert quote.due_now.interest == due_interest


@pytest.mark.parametrize("as_of", [date(2024, 1, 25), date(2024, 3, 1), date(2024, 7, 30)], ids=str)
def test_settlement_apr_is_the_irr_of_its_own_cash_flows(as_of):
    pos = loan(early_settlement={"flat_fee": "20"})
    quote = early_settlement(pos, as_of=as_of)
    current = next(i for i in pos.installments if i.due_date > as_of)
    start = pos.period_start(current)
    t = D((as_of - start).days) / D((current.due_date - start).days)
    lent = sum((i.principal_due for i in pos.installments if i.due_date > as_of), D(0))
    arrears = sum((i.interest_due for i in pos.installments if i.due_date <= as_of), D(0))
    repaid = lent + quote.due_now.interest - arrears + D(20)
    assert abs(float(repaid) / (1 + float(quote.apr.period_rate)) ** float(t) - float(lent)) < 1e-6


@pytest.mark.parametrize(
    ("as_of", "waive_penalties", "discount", "lent", "paid", "days", "lowers"),
    [
        # 12000 lent from 15 Jan; 38.71 interest for 10 of 31 days and the 20 fee, less the discount
        (date(2024, 1, 25), False, D("10"), D("12000.00"), D("12048.71"), (10, 31), True),
        (date(2024, 1, 25), False, D("58.71"), D("12000.00"), D("12000.00"), (10, 31), True),
        (date(2024, 1, 25), False, D("100"), D("12000.00"), D("11958.71"), (10, 31), True),  # into principal
        # installment 1 overdue: 11053.81 prepaid from 15 Feb, 57.18 interest for 15 of 29 days and the 20 fee.
        # Penalty waived, the discount of 150 takes the 20 fee, the 120 overdue interest, then 10 of the 57.18.
        (date(2024, 3, 1), True, D("150"), D("11053.81"), D("11100.99"), (15, 29), True),
        # a discount the 7.10 penalty absorbs does not lower the price of the prepayment
        (date(2024, 3, 1), False, D("7.10"), D("11053.81"), D("11130.99"), (15, 29), False),
    ],
    ids=["part-of-the-interest", "every-charge", "into-principal", "after-overdue-interest", "on-the-penalty-only"],
)
def test_a_discount_lowers_the_settlement_apr_to_the_irr_of_what_the_customer_pays(
    as_of, waive_penalties, discount, lent, paid, days, lowers
):
    pos = loan(early_settlement={"flat_fee": "20"})
    full = early_settlement(pos, as_of=as_of, waive_penalties=waive_penalties)
    quote = early_settlement(pos, as_of=as_of, waive_penalties=waive_penalties, discount=discount)
    assert quote.due_now.total == full.due_now.total - discount
    assert (quote.apr.nominal < full.apr.nominal) is lowers
    assert quote.apr.nominal <= full.apr.nominal
    t = days[0] / days[1]  # the flows: -lent at the current period's start, +paid on as_of, t periods later
    irr = brentq(lambda r: -float(lent) + float(paid) / (1 + r) ** t, -0.9, 1.0, xtol=1e-15)
    assert float(quote.apr.period_rate) == pytest.approx(irr, abs=1e-12)
    assert float(quote.apr.nominal) == pytest.approx(irr * 12, abs=1e-11)
    assert float(quote.apr.effective) == pytest.approx((1 + irr) ** 12 - 1, abs=1e-11)


# --- extension (展期) ----------------------------------------------------------------------------


def test_extension_keeps_the_principal_and_adds_the_periods():
    pos = pay(loan(), "1066.19", date(2024, 2, 15))
    quote = extension(pos, as_of=date(2024, 3, 1), extra_periods=6)
    assert quote.kind is QuoteKind.EXTENSION
    assert quote.schedule.total_principal == pos.outstanding_principal == D("11053.81")
    assert len(quote.schedule.installments) == 11 + 6
    assert quote.schedule.installments[0].due_date == date(2024, 3, 15)  # one period after the last due date
    assert quote.due_now.total == 0
    assert quote.saving < 0  # a longer term costs more interest


def test_extension_leaves_overdue_interest_and_penalty_due_now_and_reamortizes_overdue_principal():
    quote = extension(loan(), as_of=date(2024, 3, 1), extra_periods=3)
    assert quote.due_now.principal == 0
    assert quote.due_now.interest == D("120.00")
    assert quote.due_now.penalty == D("7.10")
    assert quote.schedule.total_principal == D("12000.00")


def test_extension_apr_is_the_irr_of_its_schedule_and_the_loans_rate():
    quote = extension(loan(), as_of=date(2024, 3, 1), extra_periods=6)
    assert float(quote.apr.period_rate) == pytest.approx(irr_of_schedule(quote.schedule), abs=1e-10)
    assert float(quote.apr.nominal) == pytest.approx(0.12, abs=1e-4)
    assert abs(
        present_value(((k + 1, i.total) for k, i in enumerate(quote.schedule.installments)), quote.apr.period_rate)
        - quote.schedule.principal
    ) < D("1e-8")


def test_flat_fee_loan_extends_at_its_fee_rate():
    pos = loan(method="flat-fee", fee_rate="0.006")
    quote = extension(pos, as_of=date(2024, 1, 20), extra_periods=12)
    assert quote.schedule.method is Method.FLAT_FEE
    assert {i.fee for i in quote.schedule.installments} == {D("72.00")}
    assert len(quote.schedule.installments) == 24


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"extra_periods": 0}, "extra_periods"),
        ({"extra_periods": 2, "as_of": START - timedelta(days=1)}, "as_of"),
    ],
    ids=["zero-periods", "before-start"],
)
def test_impossible_extension_is_refused(kwargs, field):
    with pytest.raises(InvalidInput, match=f"`{field}`"):
        extension(loan(), **{"as_of": date(2024, 3, 1), **kwargs})


def test_extension_of_a_settled_loan_is_refused():
    pos = loan(principal="100", term=1)
    pos = pay(pos, "101", date(2024, 2, 15))
    with pytest.raises(InvalidInput, match=r"`loan_id`.*settled"):
        extension(pos, as_of=date(2024, 3, 1), extra_periods=2)


# --- restructuring (债务重组) --------------------------------------------------------------------


def test_restructure_with_haircut_forgives_that_share_of_principal():
    pos = pay(loan(), "1066.19", date(2024, 2, 15))
    quote = restructure(pos, as_of=date(2024, 3, 15), term=24, haircut=D("0.25"), annual_rate=D("0.06"))
    assert quote.forgiven_principal == D("2763.45")  # 25 % of 11053.81 = 2763.4525
    assert quote.schedule.total_principal == D("8290.36")
    assert quote.schedule.start_date == date(2024, 3, 15)
    assert len(quote.schedule.installments) == 24
    assert quote.saving > quote.forgiven_principal  # also a lower rate
    assert quote.due_now.interest == D("110.54")  # installment 2, due today, is not rescheduled
    assert float(quote.apr.nominal) == pytest.approx(0.06, abs=1e-4)


def test_restructure_can_waive_penalties_and_capitalize_overdue_interest():
    as_of = date(2024, 4, 1)
    quote = restructure(loan(), as_of=as_of, term=12, waive_penalties=True, capitalize_overdue=True)
    assert quote.due_now.total == 0
    assert quote.due_now.waived > 0
    assert quote.capitalized == D("230.54")  # 120.00 + 110.54 overdue interest
    assert quote.schedule.total_principal == D("12000.00") + D("230.54")


def test_restructure_grace_periods_and_a_new_method():
    quote = restructure(loan(), as_of=date(2024, 1, 25), term=12, grace_periods=3, method=Method.EQUAL_PRINCIPAL)
    assert quote.schedule.method is Method.EQUAL_PRINCIPAL
    assert [i.principal for i in quote.schedule.installments[:3]] == [D("0.00")] * 3
    assert float(quote.apr.period_rate) == pytest.approx(irr_of_schedule(quote.schedule), abs=1e-10)


def test_restructure_to_a_flat_fee_needs_a_fee_rate():
    with pytest.raises(InvalidInput, match="fee_rate"):
        restructure(loan(), as_of=date(2024, 1, 25), term=12, method=Method.FLAT_FEE)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"term": 0}, "term"),
        ({"haircut": D(1)}, "haircut"),
        ({"haircut": D("-0.1")}, "haircut"),
        ({"grace_periods": 12}, "grace_periods"),
        ({"annual_rate": D("1.5")}, "annual_rate"),
        ({"as_of": START - timedelta(days=1)}, "as_of"),
    ],
    ids=["zero-term", "full-haircut", "negative-haircut", "grace-as-long-as-term", "rate-above-100pct", "before-start"],
)
def test_impossible_restructure_is_refused_naming_the_field(kwargs, field):
    with pytest.raises(InvalidInput, match=f"`{field}`") as err:
        restructure(loan(), **{"as_of": date(2024, 3, 1), "term": 12, **kwargs})
    assert err.value.field == field


def test_remaining_payable_is_what_the_current_schedule_still_asks():
    pos = loan()
    assert remaining_payable(pos, START) == sum((i.outstanding_scheduled for i in pos.installments), D(0))
