from datetime import date
from decimal import Decimal
from fractions import Fraction

import pytest

from runoff.errors import InvalidInput
from runoff.servicing.daycount import days_30_360, year_fraction, year_fraction_ratio
from runoff.servicing.product import DayCount

A365 = DayCount.ACTUAL_365
AA = DayCount.ACTUAL_ACTUAL
T360 = DayCount.THIRTY_360


@pytest.mark.parametrize(
    ("start", "end", "convention", "expected"),
    [
        # actual/365: real days over 365 even in a leap year
        (date(2024, 2, 1), date(2024, 3, 1), A365, Fraction(29, 365)),
        (date(2024, 1, 1), date(2025, 1, 1), A365, Fraction(366, 365)),
        # actual/actual ISDA: days in each calendar year over that year's length
        (date(2024, 2, 1), date(2024, 3, 1), AA, Fraction(29, 366)),
        (date(2024, 1, 1), date(2025, 1, 1), AA, Fraction(1)),
        # 15 Dec 2023 .. 15 Jan 2024: 17 days of 2023 (15..31 Dec) over 365, 14 days of 2024 over 366
        (date(2023, 12, 15), date(2024, 1, 15), AA, Fraction(17, 365) + Fraction(14, 366)),
        # 1 Jul 2023 .. 1 Jul 2025: 184/365 + 366/366 + 181/365 = 2 years exactly
        (date(2023, 7, 1), date(2025, 7, 1), AA, Fraction(2)),
        # 30/360 bond basis: 31 Jan -> 29 Feb 2024: D1 31->30, D2 29: 30*1 + (29-30) = 29 days
        (date(2024, 1, 31), date(2024, 2, 29), T360, Fraction(29, 360)),
        # 29 Feb -> 31 Mar: D1 29 stays, so D2 31 stays: 30*1 + (31-29) = 32 days (no February rule)
        (date(2024, 2, 29), date(2024, 3, 31), T360, Fraction(32, 360)),
        # 31 Mar -> 30 Apr: D1 31->30, D2 30: 30 days
        (date(2024, 3, 31), date(2024, 4, 30), T360, Fraction(30, 360)),
        # 30 Jan -> 31 Mar: D1 30, so D2 31->30: 60 days
        (date(2024, 1, 30), date(2024, 3, 31), T360, Fraction(60, 360)),
        # 15 Jan -> 31 Mar: D1 15 < 30, D2 31 stays: 60 + 16 = 76 days
        (date(2024, 1, 15), date(2024, 3, 31), T360, Fraction(76, 360)),
        # a whole year is 360/360 whatever the dates
        (date(2023, 12, 15), date(2024, 12, 15), T360, Fraction(1)),
        (date(2024, 5, 5), date(2024, 5, 5), AA, Fraction(0)),
    ],
    ids=[
        "a365-leap-feb",
        "a365-leap-year",
        "aa-leap-feb",
        "aa-leap-year-is-one",
        "aa-across-new-year",
        "aa-two-years-across-leap",
        "30360-jan31-to-feb29",
        "30360-feb29-to-mar31",
        "30360-mar31-to-apr30",
        "30360-jan30-to-mar31",
        "30360-jan15-to-mar31",
        "30360-year",
        "same-day-is-zero",
    ],
)
def test_year_fraction_follows_the_convention(start, end, convention, expected):
    assert year_fraction_ratio(start, end, convention) == expected
    assert year_fraction(start, end, convention) == Decimal(expected.numerator) / Decimal(expected.denominator)


def test_30_360_counts_days_by_the_bond_basis_formula():
    assert days_30_360(date(2024, 1, 31), date(2024, 2, 29)) == 29
    assert days_30_360(date(2023, 2, 28), date(2023, 3, 31)) == 33


def test_year_fraction_refuses_an_end_before_the_start():
    with pytest.raises(InvalidInput, match="`end`"):
        year_fraction(date(2024, 3, 1), date(2024, 2, 1), A365)
