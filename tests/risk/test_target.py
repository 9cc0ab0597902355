"""The default target: 90+ DPD (or a write-off) within 12 months of the observation date, configurable."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from pydantic import ValidationError

from runoff.errors import InvalidInput
from runoff.portfolio.schemas import PERFORMANCE
from runoff.risk.target import TargetDefinition, attach_target, check_window, default_flags

OBS = date(2024, 6, 30)


def _month_end(year: int, month: int) -> date:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return date.fromordinal(nxt.toordinal() - 1)


def _months(start: tuple[int, int], count: int) -> list[date]:
    y, m = start
    out = []
    for _ in range(count):
        out.append(_month_end(y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def _loan(
    loan_id: int, customer_id: int, start: tuple[int, int], dpds: list[int], *, last: str = "active"
) -> list[dict]:
    rows = []
    for k, (me, dpd) in enumerate(zip(_months(start, len(dpds)), dpds, strict=True)):
        status = last if k == len(dpds) - 1 else "active"
        bucket = "charged-off" if status == "charged-off" else ("M4+" if dpd > 90 else "current")
        rows.append(
            {
                "loan_id": loan_id,
                "customer_id": customer_id,
                "month_end": me,
                "mob": k,
                "dpd": dpd,
                "status": status,
                "bucket": bucket,
            }
        )
    return rows


def book() -> pl.DataFrame:
    """Loans from June 2024 (the observation month) unless said otherwise; DPD per month end."""
    rows: list[dict] = []
    rows += _loan(1, 1, (2024, 6), [0, 0, 30, 60, 91, 120])  # 90+ at 2024-10-31: bad
    rows += _loan(2, 2, (2024, 6), [0] * 13 + [95])  # 90+ thirteen months on: outside the horizon
    rows += _loan(3, 3, (2024, 6), [0, 30, 60, 80, 80, 0], last="charged-off")  # written off at 80 DPD
    rows += _loan(4, 4, (2024, 6), [0, 0, 0])  # stays good, repaid
    rows += _loan(5, 4, (2024, 8), [0, 30, 60, 95])  # a loan drawn after D defaults
    rows += _loan(6, 5, (2024, 5), [95, 120])  # already in default at D
    rows += _loan(7, 6, (2024, 1), [0] * 5)  # closed before D: not in the population
    full = []
    for r in rows:
        base = {c.name: 0 for c in PERFORMANCE.columns} | r
        full.append(base)
    return PERFORMANCE.conform(pl.DataFrame(full))


def _flags(definition: TargetDefinition | None = None) -> dict[int, int]:
    out = default_flags(book(), as_of=OBS, definition=definition)
    return dict(zip(out.get_column("customer_id").to_list(), out.get_column("bad").to_list(), strict=True))


def test_default_within_twelve_months_is_bad_and_later_is_good() -> None:
    flags = _flags()
    assert flags[1] == 1
    assert flags[2] == 0
    assert 6 not in flags  # no active loan at D


def test_the_first_default_month_is_reported() -> None:
    out = default_flags(book(), as_of=OBS).filter(pl.col("customer_id") == 1)
    assert out.get_column("default_month_end").to_list() == [date(2024, 10, 31)]


@pytest.mark.parametrize(
    ("definition", "customer", "bad"),
    [
        (TargetDefinition(), 3, 1),
        (TargetDefinition(include_charge_off=False), 3, 0),
        (TargetDefinition(), 4, 0),
        (TargetDefinition(loans="all"), 4, 1),
        (TargetDefinition(horizon_months=14), 2, 1),
        (TargetDefinition(dpd_threshold=30), 4, 0),
        (TargetDefinition(dpd_threshold=30, loans="all"), 4, 1),
    ],
    ids=[
        "write-off-counts",
        "write-off-excluded",
        "new-loan-ignored",
        "new-loan-counts",
        "longer-horizon",
        "30dpd-observed",
        "30dpd-all",
    ],
)
def test_target_definition_options(definition: TargetDefinition, customer: int, bad: int) -> None:
    assert _flags(definition)[customer] == bad


def test_customers_already_in_default_are_dropped_from_the_sample() -> None:
    features = pl.DataFrame({"customer_id": [1, 5], "dpd_now": [0.0, 95.0]})
    flags = default_flags(book(), as_of=OBS)
    kept = attach_target(features, flags, definition=TargetDefinition())
    assert kept.get_column("customer_id").to_list() == [1]
    both = attach_target(features, flags, definition=TargetDefinition(exclude_defaulted=False))
    assert both.get_column("customer_id").to_list() == [1, 5]


def test_an_outcome_window_beyond_the_data_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match=r"needs performance up to 2025-06-30.*on or before 2024-01-31"):
        check_window(as_of=OBS, last_month_end=date(2025, 1, 31), definition=TargetDefinition())
    check_window(as_of=OBS, last_month_end=date(2025, 6, 30), definition=TargetDefinition())


def test_an_empty_performance_table_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="empty"):
        check_window(as_of=OBS, last_month_end=None, definition=TargetDefinition())
    assert default_flags(PERFORMANCE.empty(), as_of=OBS).height == 0


@pytest.mark.parametrize(
    "bad", [{"dpd_threshold": 0}, {"horizon_months": 0}, {"loans": "some"}, {"unknown": 1}], ids=str
)
def test_invalid_definitions_are_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        TargetDefinition(**bad)
