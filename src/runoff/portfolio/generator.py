"""The synthetic book (模拟资产包): customers, credit lines, loans, schedules, payments and month-end snapshots.

Pure core: :func:`generate_partition` returns the tables of one partition as Polars DataFrames; the
caller decides where they go. Customers are simulated in fixed blocks of :data:`BLOCK_CUSTOMERS`, each
with its own random stream ``SeedSequence(seed).spawn(2)[1].spawn(n_blocks)[block]``; a partition is a
run of whole blocks, so the book is the same byte for byte however it is split into partitions.
Schedules come from the vectorized schedule engine (:mod:`runoff.servicing.vectorized`); behaviour
from :mod:`runoff.portfolio.behaviour`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from runoff.errors import InvalidInput
from runoff.portfolio import schemas
from runoff.portfolio.behaviour import GRADES, STATE_NAMES, Behaviour, MacroPath
from runoff.portfolio.catalogue import SEASONALITY, product_catalogue
from runoff.portfolio.lifecycle import BLOCK_CUSTOMERS, day_to_date, month_starts, simulate_block

__all__ = [
    "BLOCK_CUSTOMERS",
    "BookConfig",
    "BookTruth",
    "book_truth",
    "generate_book",
    "generate_partition",
    "product_catalogue",
]

TARGET_LOANS_PER_PARTITION = 200_000


class BookConfig(BaseModel):
    """What book to generate: size, horizon, seed and partitioning."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    customers: int = Field(ge=1, le=200_000_000, description="customers in the book")
    months: int = Field(ge=1, le=120, description="months of history, first month included")
    seed: int = Field(ge=0, description="root seed; the same seed gives the same book byte for byte")
    start_month: date = Field(default=date(2024, 1, 1), description="first month of the book (day 1)")
    blocks_per_partition: int | None = Field(default=None, ge=1, description="blocks a partition; default ~200k loans")
    stress: bool = Field(default=True, description="include the 1.6–1.9× stress episode")
    draws_per_month: float = Field(default=0.35, gt=0, le=5, description="mean loans a customer draws a month")

    @field_validator("start_month")
    @classmethod
    def _first_of_month(cls, value: date) -> date:
        if value.day != 1:
            raise ValueError(f"{value.isoformat()} is not the first day of a month")
        return value

    @property
    def n_blocks(self) -> int:
        return -(-self.customers // BLOCK_CUSTOMERS)

    @property
    def partition_blocks(self) -> int:
        if self.blocks_per_partition is not None:
            return self.blocks_per_partition
        loans_per_block = BLOCK_CUSTOMERS * self.draws_per_month * self.months * 0.9
        return max(1, round(TARGET_LOANS_PER_PARTITION / loans_per_block))

    @property
    def n_partitions(self) -> int:
        return -(-self.n_blocks // self.partition_blocks)

    def blocks_of(self, partition: int) -> range:
        if not 0 <= partition < self.n_partitions:
            raise InvalidInput(
                f"`partition`: {partition} is not allowed; expected 0 to {self.n_partitions - 1}", field="partition"
            )
        first = partition * self.partition_blocks
        return range(first, min(first + self.partition_blocks, self.n_blocks))

    def month_ends(self) -> list[date]:
        starts = month_starts(self.start_month, self.months + 1)
        return [day_to_date(int(s) - 1) for s in starts[1:]]


# --- truth ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BookTruth:
    """The book's true parameters, saved beside it so estimators can be scored."""

    macro: MacroPath
    month_ends: tuple[date, ...]
    matrices: npt.NDArray[np.float64]  # [grade, month, from, to] effective transition probabilities
    behaviour: Behaviour

    def macro_frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "month_end": list(self.month_ends),
                "macro_factor": self.macro.factor,
                "stress_factor": self.macro.stress,
                "seasonality": [SEASONALITY[d.month - 1] for d in self.month_ends],
            }
        )

    def transitions_frame(self) -> pl.DataFrame:
        """Effective matrices as rows (grade, month_end, from_state, to_state, probability); zeros dropped."""
        g, t, i, j = np.nonzero(self.matrices)
        return pl.DataFrame(
            {
                "grade": np.array(GRADES)[g],
                "month_end": pl.Series([self.month_ends[k] for k in t], dtype=pl.Date),
                "from_state": np.array(STATE_NAMES)[i],
                "to_state": np.array(STATE_NAMES)[j],
                "probability": self.matrices[g, t, i, j],
            }
        )

    def as_dict(self) -> dict[str, Any]:
        b = self.behaviour
        return {
            "states": list(STATE_NAMES),
            "buckets_of_states": ["current", "M1", "M2", "M3", "M4+", "M4+", "M4+", "charged-off"],
            "macro_rule": "current→M1 × macro; forward rolls out of M1..M6 × sqrt(macro) (capped at 0.99); "
            "other outcomes of the row scaled to keep the row sum 1",
            "grades": [
                {
                    "grade": g.grade,
                    "share": g.share,
                    "miss": g.miss,
                    "roll_multiplier": g.roll_multiplier,
                    "late_in_month": g.late_in_month,
                    "early_settlement": g.early_settlement,
                    "prepayment": g.prepayment,
                    "partial_payment": g.partial_payment,
                    "base_matrix": b.base_matrix(k).round(12).tolist(),
                }
                for k, g in enumerate(b.grades)
            ],
            "penalty_daily_rate": b.penalty_daily_rate,
            "stress_start": self.month_ends[self.macro.stress_start].isoformat()
            if self.macro.stress_start >= 0
            else None,
            "stress_peak": self.macro.stress_peak,
            "macro_factor": [round(float(x), 12) for x in self.macro.factor],
            "seasonality": list(SEASONALITY),
        }


def book_truth(config: BookConfig, behaviour: Behaviour | None = None) -> BookTruth:
    """The macro path and effective transition matrices of the book ``config`` describes."""
    behaviour = behaviour or Behaviour()
    macro_seed = np.random.SeedSequence(config.seed).spawn(2)[0]
    macro = behaviour.macro_path(config.months, np.random.default_rng(macro_seed), stress=config.stress)
    return BookTruth(
        macro=macro,
        month_ends=tuple(config.month_ends()),
        matrices=behaviour.matrices(macro.factor),
        behaviour=behaviour,
    )


# --- generation ----------------------------------------------------------------------------------


def generate_book(
    config: BookConfig, behaviour: Behaviour | None = None
) -> Iterator[tuple[int, dict[str, pl.DataFrame]]]:
    """Every partition's tables in order, one partition in memory at a time."""
    truth = book_truth(config, behaviour)
    for p in range(config.n_partitions):
        yield p, generate_partition(config, p, truth=truth)


def generate_partition(
    config: BookConfig, partition: int, *, truth: BookTruth | None = None
) -> dict[str, pl.DataFrame]:
    """The six tables of one partition (a run of customer blocks), conforming to :mod:`schemas`."""
    truth = truth or book_truth(config)
    parts = [simulate_block(config, truth, block) for block in config.blocks_of(partition)]
    return {
        name: schema.conform(pl.concat([p[name] for p in parts], how="vertical"))
        for name, schema in schemas.TABLES.items()
    }
