"""Day counts (计息天数惯例): the year fraction a daily-accrual product charges interest for.

Three conventions, as products name them:

- ``actual/365`` (Actual/365 Fixed): actual days / 365, leap years included.
- ``30/360``: the bond-basis 30/360 of the ISDA 2006 Definitions, section 4.16(f) ("30/360", "Bond
  Basis"): ``360·ΔY + 30·ΔM + (D2 − D1)`` days over 360, where D1 = 31 becomes 30 and D2 = 31 becomes 30
  only when D1 is then 30. No special rule for the end of February.
- ``actual/actual`` (ISDA, section 4.16(b)): the days falling in each calendar year over that year's length
  (365 or 366), summed.

The exact ratio (:func:`year_fraction_ratio`) is what the schedule engine multiplies by, so that interest is
``balance × rate × days / basis`` computed exactly before the one rounding to the cent.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction

from runoff.calendar import days_in_year
from runoff.errors import InvalidInput
from runoff.servicing.product import DayCount


def _check_order(start: date, end: date) -> None:
    if end < start:
        raise InvalidInput(
            f"`end`: {end.isoformat()} is before the start {start.isoformat()}; expected a date on or after it",
            field="end",
        )


def days_30_360(start: date, end: date) -> int:
    """Days between ``start`` and ``end`` under the bond-basis 30/360 rule (ISDA 2006 4.16(f))."""
    d1 = min(start.day, 30)
    d2 = 30 if end.day == 31 and d1 == 30 else end.day
    return 360 * (end.year - start.year) + 30 * (end.month - start.month) + (d2 - d1)


def year_fraction_ratio(start: date, end: date, convention: DayCount) -> Fraction:
    """The exact year fraction from ``start`` (inclusive) to ``end`` (exclusive) under ``convention``."""
    _check_order(start, end)
    if convention is DayCount.ACTUAL_365:
        return Fraction((end - start).days, 365)
    if convention is DayCount.THIRTY_360:
        return Fraction(days_30_360(start, end), 360)
    total = Fraction(0)
    for year in range(start.year, end.year + 1):
        lo = max(start, date(year, 1, 1))
        hi = min(end, date(year + 1, 1, 1))
        if hi > lo:
            total += Fraction((hi - lo).days, days_in_year(year))
    return total


def year_fraction(start: date, end: date, convention: DayCount) -> Decimal:
    """The year fraction from ``start`` to ``end`` as a Decimal (28 significant digits).

    Interest should be computed from :func:`year_fraction_ratio` (exact); this Decimal form is for display
    and for callers that only need the fraction itself.
    """
    ratio = year_fraction_ratio(start, end, convention)
    return Decimal(ratio.numerator) / Decimal(ratio.denominator)
