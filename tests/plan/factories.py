"""Factories for the plan tests: a minimal plan as a mapping, a small generated book and its loan states."""

from __future__ import annotations

import copy
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from runoff.plan.loan_state import loan_states
from runoff.plan.model import Plan, parse_plan
from runoff.portfolio.catalogue import product_catalogue
from runoff.portfolio.generator import BookConfig, generate_partition
from runoff.portfolio.positions import open_positions

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plans"
BOOK = BookConfig(customers=1500, months=18, seed=7)

PLAN: dict[str, Any] = {
    "id": "p",
    "lender": {"jurisdictions": ["cn"], "lender_type": "consumer-finance"},
    "timeline": {
        "start": "2026-01-05",
        "announcement": "start",
        "individual_notices": "start",
        "stop_new_draws": "announcement+45d",
        "option_window_opens": "start+7d",
        "option_window_closes": "option_window_opens+60d",
    },
    "segments": [
        {"id": "current", "when": "bucket == current", "options": ["settle", "extend-3"]},
        {"id": "arrears", "when": "dpd > 0", "options": ["restructure-12"]},
    ],
    "options": [
        {"id": "settle", "kind": "early-settlement", "take_up": 0.1},
        {"id": "extend-3", "kind": "extension", "extra_months": 3, "take_up": 0.05},
        {
            "id": "restructure-12",
            "kind": "restructuring",
            "term_months": 12,
            "annual_rate": 0.1,
            "waive_penalties": True,
            "take_up": 0.2,
        },
    ],
    "assumptions": {"pd_by_bucket": {"current": 0.03, "M1": 0.3, "M2": 0.6, "M3": 0.8, "M4+": 0.95}},
}


def plan_dict(**changes: Any) -> dict[str, Any]:
    """A deep copy of :data:`PLAN` with dotted-path changes (``{"timeline.start": ...}``); None deletes."""
    data = copy.deepcopy(PLAN)
    for dotted, value in changes.items():
        keys = dotted.split(".")
        node: Any = data
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        last: Any = int(keys[-1]) if isinstance(node, list) else keys[-1]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return data


def make_plan(**changes: Any) -> Plan:
    return parse_plan(plan_dict(**changes), source="test plan")


def example(name: str) -> Plan:
    return parse_plan(yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text(encoding="utf-8")), source=name)


@lru_cache(maxsize=1)
def small_book() -> dict[str, pl.DataFrame]:
    """One partition of a generated book (1,500 customers over 18 months), made once per test session."""
    return generate_partition(BOOK, 0)


@lru_cache(maxsize=1)
def book_positions() -> tuple[date, pl.DataFrame, pl.DataFrame]:
    """(last month end, open loans, their installment rows) of :func:`small_book`."""
    book = small_book()
    as_of = book["performance"].get_column("month_end").max()
    loans, rows = open_positions(
        loans=book["loans"].lazy(),
        installments=book["installments"].lazy(),
        payments=book["payments"].lazy(),
        performance=book["performance"].lazy(),
        as_of=as_of,
    )
    return as_of, loans.rename({"originated_on": "start_date"}), rows


def book_states(as_of: date | None = None) -> pl.DataFrame:
    snapshot, loans, rows = book_positions()
    return loan_states(loans, rows, product_catalogue(), as_of=as_of or snapshot)
