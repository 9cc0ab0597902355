"""The Decimal schedule engine against hand-worked figures and the invariants of docs/schedule-conventions.md.

Every expected figure below is derived by hand in the comment beside it (a spreadsheet-like derivation),
not by running the engine.
"""

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import numpy_financial as npf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runoff.errors import ScheduleInvalid
from runoff.servicing.product import Method, Product, parse_product
from runoff.servicing.schedule import (
    Schedule,
    build_schedule,
    equal_installment,
    equal_installment_payment,
    equal_principal,
    flat_fee,
    flat_fee_amount,
    interest_only,
)

D = Decimal
JAN31 = date(2024, 1, 31)


def product(**fields: Any) -> Product:
    data: dict[str, Any] = {"id": "test", "terms": [12]}
    data.update(fields)
    return parse_product(data)


def rows(schedule: Schedule) -> list[tuple[str, str, str, str, str]]:
    """(principal, interest, fee, total, balance_after) of each installment, as strings."""
    return [
        (str(i.principal), str(i.interest), str(i.fee), str(i.total), str(i.balance_after))
        for i in schedule.installments
    ]


def test_equal_installment_10000_at_18_percent_over_12_months():
    # r = 0.18/12 = 0.015; Y = 10000*0.015/(1-1.015^-12) = 916.7999... -> 916.80
    # each row: I = q(B*0.015), p = 916.80 - I, B -= p; the last pays B (903.26) plus q(903.26*0.015) = 13.55
    s = build_schedule(product(method="等额本息", annual_rate="0.18"), principal=D("10000"), term=12, start_date=JAN31)
    assert rows(s) == [
        ("766.80", "150.00", "0.00", "916.80", "9233.20"),  # 10000*0.015 = 150
        ("778.30", "138.50", "0.00", "916.80", "8454.90"),  # 9233.20*0.015 = 138.498
        ("789.98", "126.82", "0.00", "916.80", "7664.92"),  # 8454.90*0.015 = 126.8235
        ("801.83", "114.97", "0.00", "916.80", "6863.09"),  # 114.9738
        ("813.85", "102.95", "0.00", "916.80", "6049.24"),  # 102.94635
        ("826.06", "90.74", "0.00", "916.80", "5223.18"),  # 90.7386
        ("838.45", "78.35", "0.00", "916.80", "4384.73"),  # 78.3477
        ("851.03", "65.77", "0.00", "916.80", "3533.70"),  # 65.77095
        ("863.79", "53.01", "0.00", "916.80", "2669.91"),  # 53.0055
        ("876.75", "40.05", "0.00", "916.80", "1793.16"),  # 40.04865
        ("889.90", "26.90", "0.00", "916.80", "903.26"),  # 26.8974
        ("903.26", "13.55", "0.00", "916.81", "0.00"),  # 13.5489
    ]


def test_loan_drawn_on_31_january_falls_due_on_each_months_last_day():
    s = build_schedule(
        product(method="equal-installment", annual_rate="0.18"), principal=D(1000), term=12, start_date=JAN31
    )
    assert [i.due_date for i in s.installments[:6]] == [
        date(2024, 2, 29),
        date(2024, 3, 31),
        date(2024, 4, 30),
        date(2024, 5, 31),
        date(2024, 6, 30),
        date(2024, 7, 31),
    ]
    assert s.installments[0].accrual_start == JAN31
    assert s.installments[2].accrual_start == date(2024, 3, 31)


def test_equal_installment_payment_matches_numpy_financial_pmt():
    cases = [
        (D("10000"), D("0.18"), 12),
        (D("12000"), D("0.12"), 3),
        (D("5000"), D("0.24"), 24),
        (D("80000"), D("0.0435"), 360),
    ]
    for principal, rate, term in cases:
        expected = npf.pmt(float(rate) / 12, term, -float(principal))
        got = equal_installment_payment(principal, annual_rate=rate, term=term)
        assert abs(float(got) - expected) <= 0.005, (principal, rate, term)


def test_equal_principal_10000_at_12_percent_over_12_months():
    # p = q(10000/12) = 833.33 for 11 periods; the last pays 10000 - 11*833.33 = 833.37
    # I_k = q(B_{k-1} * 0.01)
    s = build_schedule(product(method="等额本金", annual_rate="0.12"), principal=D(10000), term=12, start_date=JAN31)
    assert [str(i.interest) for i in s.installments] == [
        "100.00",  # 10000
        "91.67",  # 9166.67 -> 91.6667
        "83.33",  # 8333.34 -> 83.3334
        "75.00",  # 7500.01 -> 75.0001
        "66.67",  # 6666.68 -> 66.6668
        "58.33",  # 5833.35 -> 58.3335
        "50.00",  # 5000.02 -> 50.0002
        "41.67",  # 4166.69 -> 41.6669
        "33.33",  # 3333.36 -> 33.3336
        "25.00",  # 2500.03 -> 25.0003
        "16.67",  # 1666.70 -> 16.6670
        "8.33",  # 833.37 -> 8.3337
    ]
    assert {str(i.principal) for i in s.installments[:-1]} == {"833.33"}
    assert rows(s)[-1] == ("833.37", "8.33", "0.00", "841.70", "0.00")


def test_flat_fee_baitiao_1000_over_3_months_at_0_6_percent():
    # fee q(1000*0.006) = 6.00 every period on the ORIGINAL principal; principal q(1000/3) = 333.33, last 333.34
    s = build_schedule(product(method="等本等费", fee_rate="0.006"), principal=D(1000), term=3, start_date=JAN31)
    assert rows(s) == [
        ("333.33", "0.00", "6.00", "339.33", "666.67"),
        ("333.33", "0.00", "6.00", "339.33", "333.34"),
        ("333.34", "0.00", "6.00", "339.34", "0.00"),
    ]
    assert flat_fee_amount(D(1000), fee_rate=D("0.006")) == D("6.00")


def test_interest_only_pays_the_principal_at_maturity():
    # I = q(10000*0.12/12) = 100.00 each month; the principal in month 3
    s = build_schedule(product(method="先息后本", annual_rate="0.12"), principal=D(10000), term=3, start_date=JAN31)
    assert rows(s) == [
        ("0.00", "100.00", "0.00", "100.00", "10000.00"),
        ("0.00", "100.00", "0.00", "100.00", "10000.00"),
        ("10000.00", "100.00", "0.00", "10100.00", "0.00"),
    ]


# Daily products over the leap-year February 2024: 3660.00 interest-only at 10 %, drawn 31 Jan, due 29 Feb,
# 31 Mar, 30 Apr (29, 31 and 30 actual days). Interest = q(3660 * 0.10 * yf) = q(366 * yf).
@pytest.mark.parametrize(
    ("day_count", "expected"),
    [
        # 366*29/365 = 29.0795, 366*31/365 = 31.0849, 366*30/365 = 30.0822
        ("actual/365", ["29.08", "31.08", "30.08"]),
        # 2024 has 366 days: 29, 31, 30 exactly
        ("actual/actual", ["29.00", "31.00", "30.00"]),
        # bond basis: 29, 32 and 30 days of 360 -> 366*29/360 = 29.4833, 366*32/360 = 32.5333, 30.50
        ("30/360", ["29.48", "32.53", "30.50"]),
    ],
    ids=["actual-365", "actual-actual", "30-360"],
)
def test_daily_interest_over_leap_february(day_count, expected):
    p = product(method="interest-only", annual_rate="0.10", interest_basis="daily", day_count=day_count)
    s = build_schedule(p, principal=D("3660"), term=3, start_date=JAN31)
    assert [str(i.interest) for i in s.installments] == expected
    assert [i.accrual_start for i in s.installments] == [JAN31, date(2024, 2, 29), date(2024, 3, 31)]


def test_daily_actual_365_equal_principal_over_leap_february():
    # 0.1825/365 = 0.0005 a day; p = 1000; I1 = 3000*0.0005*29 = 43.50, I2 = 2000*0.0005*31 = 31.00,
    # I3 = 1000*0.0005*30 = 15.00
    p = product(method="equal-principal", annual_rate="0.1825", interest_basis="daily", day_count="actual/365")
    s = build_schedule(p, principal=D(3000), term=3, start_date=JAN31)
    assert rows(s) == [
        ("1000.00", "43.50", "0.00", "1043.50", "2000.00"),
        ("1000.00", "31.00", "0.00", "1031.00", "1000.00"),
        ("1000.00", "15.00", "0.00", "1015.00", "0.00"),
    ]


def test_actual_actual_splits_a_period_across_new_year():
    # 15 Dec 2023 -> 15 Jan 2024: 3660*0.1*(17/365 + 14/366) = 17.0466 + 14 = 31.0466 -> 31.05
    p = product(method="interest-only", annual_rate="0.10", interest_basis="daily", day_count="actual/actual")
    s = build_schedule(p, principal=D(3660), term=2, start_date=date(2023, 12, 15))
    assert [str(i.interest) for i in s.installments] == ["31.05", "31.00"]


def test_interest_only_grace_then_equal_installment():
    # 12000 at 12 %, 4 months, 1 grace month: I1 = 120.00, no principal;
    # then 12000 over 3 at 1 %: Y = 12000*0.01*1.030301/0.030301 = 4080.2653 -> 4080.27
    # I2 = 120.00, p = 3960.27, B = 8039.73; I3 = 80.3973 -> 80.40, p = 3999.87, B = 4039.86;
    # I4 = 40.3986 -> 40.40, p = 4039.86, total 4080.26
    p = product(method="equal-installment", annual_rate="0.12", grace_periods=1, terms=[4])
    s = build_schedule(p, principal=D(12000), term=4, start_date=JAN31)
    assert rows(s) == [
        ("0.00", "120.00", "0.00", "120.00", "12000.00"),
        ("3960.27", "120.00", "0.00", "4080.27", "8039.73"),
        ("3999.87", "80.40", "0.00", "4080.27", "4039.86"),
        ("4039.86", "40.40", "0.00", "4080.26", "0.00"),
    ]


@pytest.mark.parametrize(
    ("mode", "last_interest"),
    [("half-up", "51.01"), ("half-even", "51.00")],
    ids=["half-up", "half-even"],
)
def test_capitalizing_grace_adds_interest_to_the_balance(mode, last_interest):
    # 10000 at 12 %, 4 months, 2 capitalizing months: B = 10100.00, then 10201.00 (101.00 added);
    # 10201 over 2: p = 5100.50; I3 = 102.01, I4 = q(5100.50*0.01 = 51.005) = 51.01 half-up, 51.00 half-even
    p = product(
        method="equal-principal",
        annual_rate="0.12",
        grace_periods=2,
        grace_kind="capitalize",
        terms=[4],
        rounding={"mode": mode},
    )
    s = build_schedule(p, principal=D(10000), term=4, start_date=JAN31)
    assert rows(s) == [
        ("0.00", "0.00", "0.00", "0.00", "10100.00"),
        ("0.00", "0.00", "0.00", "0.00", "10201.00"),
        ("5100.50", "102.01", "0.00", "5202.51", "5100.50"),
        ("5100.50", last_interest, "0.00", str(D("5100.50") + D(last_interest)), "0.00"),
    ]
    assert [str(i.capitalized) for i in s.installments] == ["100.00", "101.00", "0.00", "0.00"]
    assert s.total_principal == D(10000) + s.total_capitalized


def test_pay_in_4_biweekly_takes_a_down_payment_on_the_drawing_date():
    # 100.01 at 0 %: D = q(100.01/4 = 25.0025) = 25.00 today; the rest 75.01 over 3: Y = q(25.0033) = 25.00,
    # last 75.01 - 50.00 = 25.01; due every 14 days from the drawing date
    p = product(method="equal-installment", annual_rate="0", frequency="biweekly", down_payment=True, terms=[4])
    s = build_schedule(p, principal=D("100.01"), term=4, start_date=JAN31)
    assert [i.due_date for i in s.installments] == [JAN31, date(2024, 2, 14), date(2024, 2, 28), date(2024, 3, 13)]
    assert [str(i.total) for i in s.installments] == ["25.00", "25.00", "25.00", "25.01"]
    assert s.first_period_index == 0


def test_flat_fee_down_payment_charges_the_fee_on_the_original_principal_after_it():
    # 1000 over 4, fee 1 %: D = 250.00 without fee; then 750 over 3 = 250.00 each plus q(1000*0.01) = 10.00
    p = product(method="flat-fee", fee_rate="0.01", down_payment=True, terms=[4])
    s = build_schedule(p, principal=D(1000), term=4, start_date=JAN31)
    assert [str(i.total) for i in s.installments] == ["250.00", "260.00", "260.00", "260.00"]
    assert [str(i.fee) for i in s.installments] == ["0.00", "10.00", "10.00", "10.00"]


@pytest.mark.parametrize(
    ("method", "price", "expected"),
    [
        # Y = m(1000*0.015*1.045678375/0.045678375 = 343.383) = 343.00; I1 = 15.00, p = 328.00, B = 672.00;
        # I2 = 10.08, p = 332.92, B = 339.08; I3 = q(5.0862) = 5.09, last pays 339.08 + 5.09 = 344.17
        ("equal-installment", {"annual_rate": "0.18"}, ["343.00", "343.00", "344.17"]),
        # I1 = 10.00, m(333.333 + 10) = 343.00 (p 333.00, B 667.00); I2 = 6.67, m(340.003) = 340.00
        # (p 333.33, B 333.67); I3 = q(3.3367) = 3.34, last 333.67 + 3.34 = 337.01
        ("equal-principal", {"annual_rate": "0.12"}, ["343.00", "340.00", "337.01"]),
        # F = 6.00; m(333.333 + 6) = 339.00 -> p 333.00 twice; last 334.00 + 6.00 = 340.00
        ("flat-fee", {"fee_rate": "0.006"}, ["339.00", "339.00", "340.00"]),
    ],
    ids=["equal-installment", "equal-principal", "flat-fee"],
)
def test_whole_yuan_installments_with_the_last_absorbing_the_remainder(method, price, expected):
    p = product(method=method, rounding={"multiple_of": "1"}, terms=[3], **price)
    s = build_schedule(p, principal=D(1000), term=3, start_date=JAN31)
    assert [str(i.total) for i in s.installments] == expected
    assert s.total_principal == D(1000)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("half-up", ["50.03", "50.02"]), ("half-even", ["50.02", "50.03"])],
    ids=["half-up", "half-even"],
)
def test_half_even_and_half_up_differ_on_a_half_cent_share(mode, expected):
    # 100.05 / 2 = 50.025 exactly: half-up 50.03, half-even 50.02; the last takes the rest
    p = product(method="equal-principal", annual_rate="0", rounding={"mode": mode}, terms=[2])
    s = build_schedule(p, principal=D("100.05"), term=2, start_date=JAN31)
    assert [str(i.principal) for i in s.installments] == expected


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("half-up", "10.01"), ("half-even", "10.00")],
    ids=["half-up", "half-even"],
)
def test_half_even_and_half_up_differ_on_half_cent_interest(mode, expected):
    # 1000.50 * 0.12 / 12 = 10.005 exactly
    p = product(method="interest-only", annual_rate="0.12", rounding={"mode": mode}, terms=[2])
    s = build_schedule(p, principal=D("1000.50"), term=2, start_date=JAN31)
    assert {str(i.interest) for i in s.installments} == {expected}


def test_tiny_loan_over_many_periods_never_goes_negative():
    # q(2.00/360) = 0.01 would repay 3.59 over 359 periods: the clamp stops at the balance
    p = product(method="equal-principal", annual_rate="0", terms=[360])
    s = build_schedule(p, principal=D(2), term=360, start_date=JAN31)
    assert [i.principal for i in s.installments[:201]].count(D("0.01")) == 200
    assert all(i.balance_after >= 0 for i in s.installments)
    assert s.total_principal == D(2)


def test_a_multiple_larger_than_the_share_pays_no_negative_principal():
    # 1.00 over 3, fee q(0.006) = 0.01: m(0.3333 + 0.01) = 0 would make the principal -0.01; clamped to 0
    p = product(method="flat-fee", fee_rate="0.006", rounding={"multiple_of": "1"}, terms=[3])
    s = build_schedule(p, principal=D(1), term=3, start_date=JAN31)
    assert [str(i.principal) for i in s.installments] == ["0.00", "0.00", "1.00"]


# --- business days --------------------------------------------------------------------------------


def daily_following(**fields: Any) -> Product:
    return product(
        method="interest-only",
        annual_rate="0.10",
        interest_basis="daily",
        day_count="actual/365",
        business_day_rule="following",
        holiday_country="CN",
        **fields,
    )


@pytest.mark.parametrize(
    ("holiday_interest", "second_interest"),
    [("accrue-to-actual", "37.00"), ("as-scheduled", "30.00")],
    ids=["accrue-to-actual", "as-scheduled"],
)
def test_national_day_due_date_moves_to_8_october(holiday_interest, second_interest):
    # 3650 at 10 % actual/365 is 1.00 a day. Drawn 1 Aug 2026: due 1 Sep (a Tuesday, 31 days) and
    # 1 Oct (National Day, off until 7 Oct) -> 8 Oct: 37 days if interest follows the move, 30 if not
    s = build_schedule(
        daily_following(holiday_interest=holiday_interest), principal=D(3650), term=2, start_date=date(2026, 8, 1)
    )
    assert [i.due_date for i in s.installments] == [date(2026, 9, 1), date(2026, 10, 8)]
    assert [str(i.interest) for i in s.installments] == ["31.00", second_interest]


def test_period_basis_interest_is_unchanged_by_the_move():
    # q(3650 * 0.10 / 12) = q(30.4167) = 30.42 whatever the due date
    p = product(method="interest-only", annual_rate="0.10", business_day_rule="following")
    s = build_schedule(p, principal=D(3650), term=2, start_date=date(2026, 8, 1))
    assert s.installments[1].due_date == date(2026, 10, 8)
    assert {str(i.interest) for i in s.installments} == {"30.42"}


def test_make_up_working_saturday_is_not_moved():
    # 14 Feb 2026 is a Saturday on which China works (调休 for the Spring Festival)
    s = build_schedule(daily_following(), principal=D(3650), term=1, start_date=date(2026, 1, 14))
    assert s.installments[0].due_date == date(2026, 2, 14)
    assert str(s.installments[0].interest) == "31.00"


def test_preceding_never_moves_a_due_date_back_to_the_drawing_date():
    # drawn Fri 24 Jan 2020 (Spring Festival eve, off until 2 Feb); weekly due 31 Jan would step back to 23 Jan,
    # before the drawing: it moves forward to Mon 3 Feb instead
    p = product(method="interest-only", annual_rate="0.10", frequency="weekly", business_day_rule="preceding")
    s = build_schedule(p, principal=D(1000), term=2, start_date=date(2020, 1, 24))
    assert [i.due_date for i in s.installments] == [date(2020, 2, 3), date(2020, 2, 7)]


def test_accrue_to_actual_next_period_starts_at_the_moved_date():
    s = build_schedule(daily_following(), principal=D(3650), term=3, start_date=date(2026, 8, 1))
    # 8 Oct -> 1 Nov 2026 (a Sunday) -> 2 Nov: 25 days
    assert s.installments[2].accrual_start == date(2026, 10, 8)
    assert s.installments[2].due_date == date(2026, 11, 2)
    assert str(s.installments[2].interest) == "25.00"


# --- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"term": 0}, "`term`: 0 is not allowed; expected 1 to 360"),
        ({"term": 361}, "`term`"),
        ({"principal": D(0)}, "`principal`"),
        ({"principal": D("-5")}, "`principal`"),
        ({"principal": D("1.005")}, "`principal`"),
        ({"principal": 100.0}, "`principal`"),
        ({"grace_periods": 12}, "`grace_periods`"),
        ({"grace_periods": -1}, "`grace_periods`"),
        ({"fee_rate": D("0.01")}, "`fee_rate`"),
        ({"annual_rate": D("-0.01")}, "`annual_rate`"),
        ({"annual_rate": D("1.5")}, "`annual_rate`"),
    ],
    ids=[
        "zero-term",
        "term-above-360",
        "zero-principal",
        "negative-principal",
        "sub-cent-principal",
        "float-principal",
        "grace-not-below-term",
        "negative-grace",
        "fee-rate-on-interest-product",
        "negative-rate",
        "rate-above-one",
    ],
)
def test_bad_terms_raise_schedule_invalid_naming_the_field(kwargs, field):
    args: dict[str, Any] = {"principal": D(1000), "term": 12, "start_date": JAN31, **kwargs}
    with pytest.raises(ScheduleInvalid, match=field.replace("(", r"\(")):
        build_schedule(product(method="equal-installment", annual_rate="0.18"), **args)


def test_a_term_the_product_does_not_offer_is_still_scheduled():
    s = build_schedule(
        product(method="equal-installment", annual_rate="0.18", terms=[12]), principal=D(1000), term=7, start_date=JAN31
    )
    assert len(s.installments) == 7


def test_rate_override_re_amortizes_at_the_new_rate():
    p = product(method="equal-installment", annual_rate="0.18")
    s = build_schedule(p, principal=D(10000), term=12, start_date=JAN31, annual_rate=D("0.12"))
    assert s.installments[0].interest == D("100.00")  # 10000 * 0.12 / 12


def test_flat_fee_refuses_capitalizing_grace():
    p = product(method="flat-fee", fee_rate="0.006", grace_periods=1, grace_kind="capitalize")
    with pytest.raises(ScheduleInvalid, match="`grace_kind`"):
        build_schedule(p, principal=D(1000), term=12, start_date=JAN31)


def test_down_payment_product_refuses_a_single_period():
    p = product(method="equal-installment", annual_rate="0", down_payment=True, terms=[4])
    with pytest.raises(ScheduleInvalid, match="`term`: 1"):
        build_schedule(p, principal=D(100), term=1, start_date=JAN31)


def test_flat_fee_refuses_an_annual_rate_override():
    with pytest.raises(ScheduleInvalid, match="`annual_rate`"):
        build_schedule(
            product(method="flat-fee", fee_rate="0.006"),
            principal=D(1000),
            term=3,
            start_date=JAN31,
            annual_rate=D("0.1"),
        )


# --- properties -----------------------------------------------------------------------------------


@st.composite
def loans(draw: st.DrawFn) -> tuple[Product, dict[str, Any]]:
    method = draw(st.sampled_from(list(Method)))
    term = draw(st.one_of(st.integers(1, 24), st.integers(25, 360)))
    fields: dict[str, Any] = {"method": method.value, "terms": [term]}
    if method is Method.FLAT_FEE:
        fields["fee_rate"] = str(D(draw(st.integers(0, 200))) / 10000)
    else:
        fields["annual_rate"] = str(D(draw(st.integers(0, 3600))) / 10000)
    fields["frequency"] = draw(st.sampled_from(["monthly", "biweekly", "weekly"]))
    fields["interest_basis"] = draw(st.sampled_from(["period", "daily"]))
    fields["day_count"] = draw(st.sampled_from(["30/360", "actual/365", "actual/actual"]))
    fields["rounding"] = {
        "mode": draw(st.sampled_from(["half-up", "half-even"])),
        "multiple_of": draw(st.sampled_from([None, "1", "10", "0.5"])),
    }
    fields["business_day_rule"] = draw(
        st.sampled_from(["none", "none", "following", "preceding", "modified-following"])
    )
    fields["holiday_interest"] = draw(st.sampled_from(["accrue-to-actual", "as-scheduled"]))
    if term >= 2 and draw(st.booleans()):
        if draw(st.booleans()):
            fields["down_payment"] = True
        else:
            fields["grace_periods"] = draw(st.integers(1, min(term - 1, 6)))
            kinds = ["interest-only"] if method is Method.FLAT_FEE else ["interest-only", "capitalize"]
            fields["grace_kind"] = draw(st.sampled_from(kinds))
    args = {
        "principal": D(draw(st.integers(1, 100_000_000))) / 100,
        "term": term,
        "start_date": date(2020, 1, 1) + timedelta(days=draw(st.integers(0, 3650))),
    }
    return product(**fields), args


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(loans())
def test_any_schedule_repays_exactly_the_principal_lent(loan):
    p, args = loan
    s = build_schedule(p, **args)
    assert len(s.installments) == args["term"]
    assert s.total_principal == args["principal"] + s.total_capitalized
    if p.grace_kind.value == "interest-only" or p.grace_periods == 0:
        assert s.total_principal == args["principal"]
    balance = args["principal"]
    for inst in s.installments:
        assert inst.principal >= 0 and inst.interest >= 0 and inst.fee >= 0
        balance = balance - inst.principal + inst.capitalized
        assert inst.balance_after == balance >= 0
        for amount in (inst.principal, inst.interest, inst.fee, inst.balance_after):
            assert amount == amount.quantize(D("0.01"))
    assert s.installments[-1].balance_after == 0
    dues = [i.due_date for i in s.installments]
    assert dues == sorted(dues)
    assert dues[0] > args["start_date"] or p.down_payment


def test_method_functions_match_build_schedule_on_an_adhoc_product():
    start = JAN31
    pairs = [
        (
            equal_installment(D(10000), annual_rate=D("0.18"), term=12, start_date=start),
            {"method": "equal-installment", "annual_rate": "0.18"},
        ),
        (
            equal_principal(D(10000), annual_rate=D("0.12"), term=12, start_date=start),
            {"method": "equal-principal", "annual_rate": "0.12"},
        ),
        (
            flat_fee(D(10000), fee_rate=D("0.006"), term=12, start_date=start),
            {"method": "flat-fee", "fee_rate": "0.006"},
        ),
        (
            interest_only(D(10000), annual_rate=D("0.12"), term=12, start_date=start),
            {"method": "interest-only", "annual_rate": "0.12"},
        ),
    ]
    for got, fields in pairs:
        assert got == build_schedule(product(**fields), principal=D(10000), term=12, start_date=start)
    with pytest.raises(ScheduleInvalid, match="`term`"):
        equal_installment(D(100), annual_rate=D("0.1"), term=0, start_date=start)
