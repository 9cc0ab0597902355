"""The pilot (小范围试点) as use cases: units from a table or from the ledger's open loans, an assignment file, and
the analysis of an outcomes file.

The units of a pilot are accounts with their segment: from a file the plan's offers run wrote (``account_id`` and
``segment`` columns, CSV or Parquet), or from the ledger, where each open loan stands for its account and lands in
the first segment of the plan it matches on the day (as the notices place it). Assignment and analysis are the
pure functions of :mod:`runoff.plan.pilot`; here they meet files and the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
from sqlalchemy import select

from runoff.errors import InvalidInput
from runoff.plan.model import Plan
from runoff.plan.notices import loan_features, segment_of
from runoff.plan.pilot import CONTROL, DecisionRule, PilotAnalysis, analyze_pilot, assign_arms
from runoff.store.ledger.models import LoanStatus, loans
from runoff.store.ledger.unit_of_work import UnitOfWork

CHUNK = 2_000


def read_table(path: Path, *, what: str) -> pl.DataFrame:
    """A CSV or Parquet file as a table; one clear error naming the flag when it cannot be read."""
    if not path.is_file():
        raise InvalidInput(f"`{what}`: {str(path)!r} is not a file; expected a CSV or Parquet file", field=what)
    try:
        if path.suffix.lower() == ".parquet":
            return pl.read_parquet(path)
        return pl.read_csv(path, infer_schema_length=10_000)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InvalidInput(f"`{what}`: {path} cannot be read: {exc}", field=what) from None


def write_table(frame: pl.DataFrame, path: Path) -> Path:
    """Write ``frame`` as Parquet when the name says so, else CSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".parquet":
        frame.write_parquet(path)
    else:
        frame.write_csv(path)
    return path


def ledger_units(plan: Plan, *, uow: UnitOfWork, as_of: date) -> pl.DataFrame:
    """Open loans of the ledger as pilot units: ``account_id`` (the loan's account, else the loan), ``loan_id``,
    ``segment`` (the plan's first segment the loan matches on ``as_of``; loans matching none are left out)."""
    ids: list[str] = []
    accounts: list[str] = []
    segments: list[str] = []
    with uow:
        loan_ids = list(
            uow.connection.execute(
                select(loans.c.id).where(loans.c.status == LoanStatus.OPEN.value).order_by(loans.c.id)
            ).scalars()
        )
        for start in range(0, len(loan_ids), CHUNK):
            records = uow.ledger.loans(loan_ids[start : start + CHUNK])
            positions = uow.ledger.positions(records.values())
            for loan_id, record in sorted(records.items()):
                features = loan_features(positions[loan_id], as_of=as_of, region=plan.region)
                try:
                    seg = segment_of(plan, features)
                except InvalidInput:
                    continue
                ids.append(loan_id)
                accounts.append(record.account_id or loan_id)
                segments.append(seg.id)
    frame = pl.DataFrame(
        {"account_id": accounts, "loan_id": ids, "segment": segments},
        schema={"account_id": pl.String, "loan_id": pl.String, "segment": pl.String},
    )
    # one unit per account: its first loan by id stands for it
    return frame.unique("account_id", keep="first", maintain_order=True)


@dataclass(frozen=True, slots=True)
class PilotDesign:
    """An assignment and how it splits: units per segment and arm."""

    assignment: pl.DataFrame
    counts: pl.DataFrame
    seed: int
    arms: tuple[str, ...]


def design_pilot(
    units: pl.DataFrame,
    *,
    plan: Plan | None,
    variants: tuple[str, ...],
    seed: int,
    sample_size: int | None = None,
    control: str = CONTROL,
) -> PilotDesign:
    """Assign a stratified sample of ``units`` to ``variants`` and ``control`` with a seeded generator.

    When a plan is given, every unit's segment must be one of its segments (a typo would make a stratum of one).
    """
    if not variants:
        raise InvalidInput("`variants`: none given; expected at least one offer variant to test", field="variants")
    if plan is not None and "segment" in units.columns:
        known = {s.id for s in plan.segments}
        unknown = sorted(set(units.get_column("segment").drop_nulls().cast(pl.String).to_list()) - known)
        if unknown:
            raise InvalidInput(
                f"`units`: segment {unknown[0]!r} is not a segment of plan {plan.id}; expected one of "
                f"{', '.join(sorted(known))}",
                field="units",
            )
    arms = (control, *variants)
    assignment = assign_arms(units, arms=arms, rng=np.random.default_rng(seed), sample_size=sample_size)
    extra = [c for c in units.columns if c not in assignment.columns]
    if extra:
        assignment = assignment.join(
            units.select("account_id", *extra).with_columns(pl.col("account_id").cast(pl.String)),
            on="account_id",
            how="left",
        )
    counts = assignment.group_by("segment", "arm").len().sort("segment", "arm")
    return PilotDesign(assignment=assignment, counts=counts, seed=seed, arms=arms)


def analyze_outcomes(
    outcomes: pl.DataFrame,
    *,
    control: str = CONTROL,
    confidence: float = 0.95,
    rule: DecisionRule | None = None,
) -> PilotAnalysis:
    """Analyze a pilot's outcomes table (``arm``, ``took_up``, ``paid``, ``complained``)."""
    frame = outcomes
    for column in ("took_up", "paid", "complained"):
        if column in frame.columns and frame.schema[column] != pl.Boolean:
            frame = frame.with_columns(_as_bool(column))
    return analyze_pilot(frame, control=control, confidence=confidence, rule=rule)


def _as_bool(column: str) -> pl.Expr:
    text = pl.col(column).cast(pl.String).str.strip_chars().str.to_lowercase()
    return (
        pl.when(text.is_in(["1", "true", "yes", "y", "t"]))
        .then(True)
        .when(text.is_in(["0", "false", "no", "n", "f"]))
        .then(False)
        .otherwise(None)
        .alias(column)
    )
