"""APR by IRR, cross-checked against numpy-financial and pyxirr."""

from datetime import date
from decimal import Decimal
from fractions import Fraction

import numpy_financial as npf
import pytest
import pyxirr
from hypothesis import HealthCheck, given, settings

from runoff.errors import InvalidInput
from runoff.servicing.apr import Apr, apr_of_cash_flows, apr_of_schedule, present_value
from runoff.servicing.schedule import Schedule, build_schedule
from tests.servicing.test_schedule import loans, product

D = Decimal
JAN31 = date(2024, 1, 31)


def cash_flows(schedule: Schedule) -> list[float]:
    """Lender's flows by period index for numpy-financial / pyxirr: -P at 0, then each period's total."""
    last = schedule.period_index(schedule.installments[-1])
    flows = [0.0] * (last + 1)
    flows[0] = -float(schedule.principal)
    for inst in schedule.installments:
        flows[schedule.period_index(inst)] += float(inst.total)
    return flows


def test_flat_fee_apr_is_about_13_percent_for_0_6_percent_a_month():
    # 12000 over 12 months at 0.6 %/month: 1000 principal + 72 fee = 1072.00 every month.
    # The i with 12000 = 1072 * (1 - (1+i)^-12) / i is 0.0108619 a month: 13.03 % nominal, 13.84 % effective.
    s = build_schedule(product(method="等本等费", fee_rate="0.006"), principal=D(12000), term=12, start_date=JAN31)
    apr = apr_of_schedule(s)
    assert round(apr.nominal, 4) == D("0.1303")
    assert round(apr.effective, 4) == D("0.1384")
    # npf.rate stops at tol=1e-6 by default (6.5e-12 off here): ask it for more
    assert float(apr.period_rate) == pytest.approx(npf.rate(12, -1072, 12000, 0, tol=1e-14, maxiter=1000), abs=1e-12)


@pytest.mark.parametrize("term", [3, 6, 12, 24], ids=lambda t: f"{t}-months")
def test_flat_fee_apr_exceeds_fee_rate_times_twelve(term):
    # the fee is charged on the ORIGINAL principal while the balance falls: the true rate is far above 7.2 %
    s = build_schedule(product(method="flat-fee", fee_rate="0.006"), principal=D(10000), term=term, start_date=JAN31)
    apr = apr_of_schedule(s)
    assert apr.nominal > D("0.072") * D("1.4")
    assert apr.effective > apr.nominal


@pytest.mark.parametrize(
    ("fields", "principal", "term"),
    [
        ({"method": "equal-installment", "annual_rate": "0.18"}, D(10000), 12),
        ({"method": "equal-installment", "annual_rate": "0.0435"}, D(800000), 360),
        ({"method": "equal-principal", "annual_rate": "0.12"}, D(10000), 24),
        ({"method": "flat-fee", "fee_rate": "0.0075"}, D("5999.99"), 6),
        ({"method": "interest-only", "annual_rate": "0.24"}, D(3000), 6),
        ({"method": "flat-fee", "fee_rate": "0.01", "down_payment": True}, D(1000), 4),
        (
            {"method": "equal-installment", "annual_rate": "0.12", "grace_periods": 2, "grace_kind": "capitalize"},
            D(10000),
            12,
        ),
        (
            {"method": "equal-installment", "annual_rate": "0.26", "frequency": "biweekly", "interest_basis": "daily"},
            D(2000),
            26,
        ),
    ],
    ids=[
        "annuity-18",
        "mortgage-360",
        "equal-principal",
        "flat-fee",
        "interest-only",
        "down-payment",
        "capitalizing-grace",
        "biweekly-daily",
    ],
)
def test_apr_matches_numpy_financial_and_pyxirr(fields, principal, term):
    s = build_schedule(product(terms=[term], **fields), principal=principal, term=term, start_date=JAN31)
    apr = apr_of_schedule(s)
    flows = cash_flows(s)
    assert float(apr.period_rate) == pytest.approx(npf.irr(flows), abs=1e-10)
    assert float(apr.period_rate) == pytest.approx(pyxirr.irr(flows), abs=1e-10)
    assert apr.nominal == pytest.approx(apr.period_rate * s.periods_per_year, abs=D("1e-20"))


def test_equal_installment_apr_is_the_contract_rate():
    s = build_schedule(
        product(method="equal-installment", annual_rate="0.18"), principal=D(10000), term=12, start_date=JAN31
    )
    # only cent rounding separates the IRR from 1.5 % a month
    assert abs(apr_of_schedule(s).nominal - D("0.18")) < D("0.00001")


def test_zero_rate_schedule_has_an_apr_of_exactly_zero():
    p = product(method="equal-installment", annual_rate="0", frequency="biweekly", down_payment=True, terms=[4])
    apr = apr_of_schedule(build_schedule(p, principal=D("100.01"), term=4, start_date=JAN31))
    assert apr == Apr(D(0), D(0), D(0), 26)


def test_effective_rate_compounds_the_period_rate():
    apr = apr_of_cash_flows(D(1000), [(1, D(1010))], 12)  # 1 % a month exactly
    assert apr.period_rate == D("0.01")
    assert apr.nominal == D("0.12")
    assert apr.effective == D("1.01") ** 12 - 1


@pytest.mark.parametrize(
    ("lent", "payments", "expected"),
    [
        (D(100), [(1, D(1000))], 9.0),  # ten-fold in one period
        (D(1000), [(1, D(400)), (2, D(400))], npf.irr([-1000, 400, 400])),  # repaid less than lent: negative
        (D(1000), [(0, D(250)), (1, D(260)), (2, D(260)), (3, D(260))], npf.irr([-750, 260, 260, 260])),
        (D(1000), [(3, D(500)), (3, D(600))], 1.1 ** (1 / 3) - 1),  # same period twice is summed
    ],
    ids=["huge-rate", "negative-rate", "down-payment-at-index-0", "aggregated"],
)
def test_apr_of_cash_flows_solves_hard_cases(lent, payments, expected):
    apr = apr_of_cash_flows(lent, payments, 12)
    assert float(apr.period_rate) == pytest.approx(expected, abs=1e-12)
    assert abs(present_value(payments, apr.period_rate) - lent) < D("1e-12")


@pytest.mark.parametrize(
    ("lent", "payments", "ppy", "field"),
    [
        (D(0), [(1, D(10))], 12, "amount_lent"),
        (D(100), [(1, D(-10))], 12, "payments"),
        (D(100), [(-1, D(10))], 12, "payments"),
        (D(100), [(0, D(100)), (1, D(5))], 12, "payments"),
        (D(100), [], 12, "payments"),
        (D(100), [(1, D(110))], 0, "periods_per_year"),
    ],
    ids=["nothing-lent", "negative-payment", "negative-index", "repaid-at-drawing", "no-payments", "zero-ppy"],
)
def test_bad_cash_flows_are_refused_naming_the_field(lent, payments, ppy, field):
    with pytest.raises(InvalidInput, match=f"`{field}`"):
        apr_of_cash_flows(lent, payments, ppy)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(loans())
def test_apr_discounts_any_schedule_back_to_the_principal(loan):
    p, args = loan
    s = build_schedule(p, **args)
    apr = apr_of_schedule(s)
    # discount exactly (Fraction) so the check does not share the solver's arithmetic
    growth = 1 + Fraction(apr.period_rate)
    value = sum((Fraction(i.total) / growth ** s.period_index(i) for i in s.installments), Fraction(0))
    assert abs(value - Fraction(s.principal)) < Fraction(1, 10**8)
    assert apr.nominal == apr.period_rate * s.periods_per_year or abs(
        apr.nominal - apr.period_rate * s.periods_per_year
    ) < D("1e-22")
