"""Due-date arithmetic and business days.

Monthly due dates keep the drawing day where the month has it and fall on the month's last
day where it does not (a loan drawn on 31 January falls due on 28/29 February, then 31 March).
Business days come from the ``holidays`` package, whose China calendar includes the make-up
working days (调休) on weekends, so a Saturday can be a working day.
"""

from __future__ import annotations

import calendar as _stdcal
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

from runoff.errors import InvalidInput


def add_months(start: date, months: int, *, anchor_day: int | None = None) -> date:
    """``start`` plus ``months`` calendar months, on ``anchor_day`` (default: ``start``'s day) or month end."""
    day = anchor_day if anchor_day is not None else start.day
    total = start.year * 12 + (start.month - 1) + months
    year, month0 = divmod(total, 12)
    last = _stdcal.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(day, last))


class Frequency(StrEnum):
    """How often installments fall due."""

    MONTHLY = "monthly"
    BIWEEKLY = "biweekly"
    WEEKLY = "weekly"

    @property
    def periods_per_year(self) -> int:
        return {"monthly": 12, "biweekly": 26, "weekly": 52}[self.value]


def period_date(start: date, k: int, frequency: Frequency, *, anchor_day: int | None = None) -> date:
    """The k-th regular date after ``start`` (k=0 is ``start`` itself), before business-day adjustment."""
    if frequency is Frequency.MONTHLY:
        return add_months(start, k, anchor_day=anchor_day)
    step = 14 if frequency is Frequency.BIWEEKLY else 7
    return start + timedelta(days=step * k)


class BusinessDayRule(StrEnum):
    """What happens to a due date that falls on a holiday or non-working day."""

    NONE = "none"
    FOLLOWING = "following"
    MODIFIED_FOLLOWING = "modified-following"
    PRECEDING = "preceding"


@lru_cache(maxsize=64)
def _holiday_calendar(country: str, subdiv: str | None) -> Any:
    import holidays

    try:
        return holidays.country_holidays(country, subdiv=subdiv)
    except NotImplementedError:
        raise InvalidInput(
            f"`holiday_country`: {country!r} is not a calendar the holidays package knows; "
            "expected an ISO country code such as CN, US, DE",
            field="holiday_country",
        ) from None


@dataclass(frozen=True)
class BusinessCalendar:
    """Working days of one country (``CN`` includes 调休 make-up working days)."""

    country: str = "CN"
    subdiv: str | None = None
    extra_holidays: frozenset[date] = field(default_factory=frozenset)

    def is_business_day(self, day: date) -> bool:
        if day in self.extra_holidays:
            return False
        cal = _holiday_calendar(self.country, self.subdiv)
        return bool(cal.is_working_day(day))

    def adjust(self, day: date, rule: BusinessDayRule) -> date:
        """Move ``day`` to a business day by ``rule``."""
        if rule is BusinessDayRule.NONE or self.is_business_day(day):
            return day
        if rule is BusinessDayRule.PRECEDING:
            return self._step(day, -1)
        moved = self._step(day, 1)
        if rule is BusinessDayRule.MODIFIED_FOLLOWING and moved.month != day.month:
            return self._step(day, -1)
        return moved

    def _step(self, day: date, direction: int) -> date:
        probe = day
        for _ in range(60):
            probe += timedelta(days=direction)
            if self.is_business_day(probe):
                return probe
        raise InvalidInput(f"no business day within 60 days of {day.isoformat()} in calendar {self.country}")


def days_in_year(year: int) -> int:
    return 366 if _stdcal.isleap(year) else 365
