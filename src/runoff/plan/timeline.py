"""The plan's timeline (时间表): phases given as dates or as offsets from other phases, resolved to dates.

A phase is written as an ISO date (``2026-04-15``) or as an offset from the plan's ``start`` or from another
phase: ``start+14d``, ``announcement+45d``, ``option_window_opens+3m``, ``stop_new_draws-2w``. Months keep
the day of the month, clamped to the month's end (31 Jan + 1m is 28/29 Feb). Offsets are resolved once, in
dependency order; a cycle is an error naming the phases in it. A wave (分阶段关停) may override its own
phases; inside a wave a reference names the wave's phase (or, for the phase being defined, the plan's).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from runoff.calendar import add_months


class Phase(StrEnum):
    """A dated step of the wind-down, in the order it usually happens."""

    STOP_NEW_CUSTOMERS = "stop_new_customers"  # no new customers onboarded
    ANNOUNCEMENT = "announcement"  # public announcement (公告)
    INDIVIDUAL_NOTICES = "individual_notices"  # letters / messages to each customer (用户告知书)
    STOP_NEW_DRAWS = "stop_new_draws"  # no new loans on existing lines (停止新增借款)
    OPTION_WINDOW_OPENS = "option_window_opens"  # customers may accept an option from this day
    OPTION_WINDOW_CLOSES = "option_window_closes"  # ... until this day, inclusive
    FINAL_DUE_DATE = "final_due_date"  # no schedule of the plan runs past this day
    REPAYMENT_CHANNELS_CLOSE = "repayment_channels_close"  # repayment channels stop taking money
    COLLECTIONS_HANDOVER = "collections_handover"  # delinquent accounts handed to collections (催收)
    CHARGE_OFF = "charge_off"  # remaining defaulted balances written off (核销)
    BOOK_SALE = "book_sale"  # the rest of the book sold (资产转让)


WAVE_PHASES: frozenset[Phase] = frozenset(
    {
        Phase.INDIVIDUAL_NOTICES,
        Phase.STOP_NEW_DRAWS,
        Phase.OPTION_WINDOW_OPENS,
        Phase.OPTION_WINDOW_CLOSES,
        Phase.FINAL_DUE_DATE,
        Phase.COLLECTIONS_HANDOVER,
    }
)
"""Phases a wave may set for its own segments; the others are plan-wide."""

ORDER: tuple[tuple[Phase, Phase, bool, str], ...] = (
    (Phase.STOP_NEW_CUSTOMERS, Phase.STOP_NEW_DRAWS, False, "new customers stop no later than new draws"),
    (Phase.INDIVIDUAL_NOTICES, Phase.OPTION_WINDOW_OPENS, False, "customers are told before the window opens"),
    (Phase.OPTION_WINDOW_OPENS, Phase.OPTION_WINDOW_CLOSES, True, "the option window closes after it opens"),
    (Phase.OPTION_WINDOW_CLOSES, Phase.FINAL_DUE_DATE, False, "the final due date comes after the option window"),
    (Phase.OPTION_WINDOW_CLOSES, Phase.COLLECTIONS_HANDOVER, False, "hand-over follows the option window"),
    (Phase.COLLECTIONS_HANDOVER, Phase.CHARGE_OFF, False, "charge-off follows the hand-over to collections"),
    (Phase.CHARGE_OFF, Phase.BOOK_SALE, False, "the book sale follows the charge-off"),
)
"""(earlier, later, strictly, why): orders a timeline must keep; anything else is for the compliance check."""

_OFFSET = re.compile(r"^\s*(?P<ref>[a-z_]+)\s*(?:(?P<sign>[+-])\s*(?P<n>\d+)\s*(?P<unit>[dwm]))?\s*$")
START = "start"
REMINDERS = "reminders"


class TimelineError(ValueError):
    """A phase that is not a date or an offset, names an unknown phase, or breaks the order of phases."""


@dataclass(frozen=True, slots=True)
class DateSpec:
    """A date as written: fixed, or ``ref ± n`` days, weeks or months."""

    text: str
    fixed: date | None = None
    ref: str | None = None
    days: int = 0
    months: int = 0

    def resolve(self, lookup: Callable[[str], date]) -> date:
        if self.fixed is not None:
            return self.fixed
        assert self.ref is not None
        base = lookup(self.ref)
        return add_months(base, self.months) + timedelta(days=self.days)


def phase_names() -> str:
    return ", ".join([START, *(p.value for p in Phase)])


def parse_date_spec(value: object) -> DateSpec:
    """A phase value: a date, ``YYYY-MM-DD``, or ``<start|phase>[+-N(d|w|m)]``."""
    if isinstance(value, date):
        return DateSpec(value.isoformat(), fixed=value)
    if not isinstance(value, str):
        raise TimelineError(f"{value!r} is not a date; expected YYYY-MM-DD or an offset such as start+14d")
    text = value.strip()
    try:
        return DateSpec(text, fixed=date.fromisoformat(text))
    except ValueError:
        pass
    match = _OFFSET.match(text)
    if match is None:
        raise TimelineError(
            f"{text!r} is not a date or an offset; expected YYYY-MM-DD or <phase>+N(d|w|m) such as announcement+45d"
        )
    ref = match.group("ref")
    if ref != START and ref not in {p.value for p in Phase}:
        raise TimelineError(f"{text!r} refers to `{ref}`, which is not a phase; expected one of {phase_names()}")
    n = int(match.group("n") or 0) * (-1 if match.group("sign") == "-" else 1)
    unit = match.group("unit") or "d"
    return DateSpec(
        text,
        ref=ref,
        days=n if unit == "d" else 7 * n if unit == "w" else 0,
        months=n if unit == "m" else 0,
    )


def resolve_phases(
    specs: Mapping[str, DateSpec],
    *,
    outer: Mapping[str, date] | None = None,
    where: str = "timeline",
) -> dict[str, date]:
    """Resolve every spec to a date: references go to ``specs`` first, then to ``outer`` (the plan's dates).

    A spec that references its own name (``individual_notices: individual_notices+30d`` in a wave) reads
    ``outer``. A cycle or a reference to a phase that is not dated is an error naming the field.
    """
    resolved: dict[str, date] = {}
    visiting: list[str] = []
    base = dict(outer or {})

    def lookup_for(name: str) -> Callable[[str], date]:
        def lookup(ref: str) -> date:
            if ref == name:
                if ref in base:
                    return base[ref]
                raise TimelineError(f"`{where}.{name}` refers to itself; expected a date or another phase")
            if ref in specs:
                return resolve(ref)
            if ref in base:
                return base[ref]
            raise TimelineError(
                f"`{where}.{name}` refers to `{ref}`, which is not dated in this plan; "
                f"give `{ref}` a date or refer to a phase that has one"
            )

        return lookup

    def resolve(name: str) -> date:
        if name in resolved:
            return resolved[name]
        if name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(name) :], name])
            raise TimelineError(
                f"`{where}`: phases refer to each other in a circle ({cycle}); expected a date somewhere"
            )
        visiting.append(name)
        resolved[name] = specs[name].resolve(lookup_for(name))
        visiting.pop()
        return resolved[name]

    for name in specs:
        resolve(name)
    return resolved


def check_order(dates: Mapping[str, date], *, where: str = "timeline") -> None:
    """Refuse a timeline whose phases run backwards (one message naming both phases and their dates)."""
    start = dates.get(START)
    if start is not None:
        for name, day in dates.items():
            if name != START and day < start:
                raise TimelineError(
                    f"`{where}.{name}`: {day.isoformat()} is before the plan's start {start.isoformat()}; "
                    "expected every phase on or after the start"
                )
    for earlier, later, strictly, why in ORDER:
        a, b = dates.get(earlier.value), dates.get(later.value)
        if a is None or b is None:
            continue
        if b < a or (strictly and b == a):
            relation = "on or before" if strictly else "before"
            raise TimelineError(
                f"`{where}.{later.value}`: {b.isoformat()} is {relation} `{earlier.value}` {a.isoformat()}; "
                f"expected {why}"
            )
