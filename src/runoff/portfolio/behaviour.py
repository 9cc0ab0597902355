"""Monthly repayment behaviour of the synthetic book: a Markov chain by risk grade and a macro factor.

The chain's state at a month end is how many month ends the oldest unpaid installment has been
past due: 0 current, 1–3 the buckets M1–M3, 4–6 together the bucket M4+ (90+ DPD), 7 charged off
(核销) once a seventh month end passes unpaid (181+ DPD). From a delinquent state a borrower cures
(pays everything due), pays two installments (one state back), pays one (stays), or pays nothing
(rolls one state forward). The macro factor multiplies entry to delinquency (current → M1) and, by
its square root, the forward rolls; the other outcomes of the row shrink in proportion.

Defaults are calibrated to the ranges of ``shared/research/credit-models.md`` §4 (see
``docs/book.md`` for the figures and their sources).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from runoff.errors import InvalidInput

N_STATES = 8
CHARGED_OFF = 7
STATE_NAMES: tuple[str, ...] = ("current", "M1", "M2", "M3", "M4", "M5", "M6", "charged-off")
STATE_BUCKETS: tuple[str, ...] = ("current", "M1", "M2", "M3", "M4+", "M4+", "M4+", "charged-off")
"""Reporting bucket of each state (the M4+ bucket holds states M4–M6, 91–180 DPD)."""

GRADES: tuple[str, ...] = ("A", "B", "C", "D", "E")

FloatArray = npt.NDArray[np.float64]

# Outcomes of a delinquent state k (1..6) for grade C at macro 1: cure, back one, stay, roll.
_DELINQUENT_OUTCOMES: dict[int, tuple[float, float, float, float]] = {
    1: (0.57, 0.00, 0.13, 0.30),
    2: (0.20, 0.08, 0.10, 0.62),
    3: (0.10, 0.05, 0.08, 0.77),
    4: (0.05, 0.03, 0.05, 0.87),
    5: (0.03, 0.02, 0.04, 0.91),
    6: (0.02, 0.01, 0.02, 0.95),
}


@dataclass(frozen=True, slots=True)
class GradeBehaviour:
    """What one risk grade does each month (rates are monthly probabilities)."""

    grade: str
    share: float  # share of customers in this grade
    miss: float  # current → M1: the due installment is still unpaid at the month end
    roll_multiplier: float  # on the forward rolls out of M1..M6 (grade C = 1)
    late_in_month: float  # paid after the due date but by the month end (a day-1 delinquency that cures fast)
    early_settlement: float  # 提前结清 of a current loan
    prepayment: float  # 提前还款: a current loan pays the principal of its last installments early
    partial_payment: float  # a rolling loan pays part of its oldest installment


DEFAULT_GRADES: tuple[GradeBehaviour, ...] = (
    GradeBehaviour("A", 0.30, 0.006, 0.75, 0.022, 0.024, 0.012, 0.20),
    GradeBehaviour("B", 0.30, 0.012, 0.90, 0.030, 0.020, 0.010, 0.22),
    GradeBehaviour("C", 0.20, 0.022, 1.00, 0.036, 0.016, 0.008, 0.25),
    GradeBehaviour("D", 0.12, 0.040, 1.10, 0.044, 0.012, 0.006, 0.28),
    GradeBehaviour("E", 0.08, 0.070, 1.20, 0.054, 0.008, 0.004, 0.30),
)


@dataclass(frozen=True, slots=True)
class MacroPath:
    """The macro factor by book month and the stress episode inside it."""

    factor: FloatArray  # multiplier on entry to delinquency, one per book month
    stress: FloatArray  # the stress episode's part of it (1 outside the episode)
    stress_start: int  # book month the episode starts (-1 without one)
    stress_peak: float  # the episode's peak multiplier (1.0 without one)


@dataclass(frozen=True, slots=True)
class Behaviour:
    """The book's true dynamics: grades, base transition matrices and the macro rule."""

    grades: tuple[GradeBehaviour, ...] = DEFAULT_GRADES
    penalty_daily_rate: float = 0.0005  # 罚息 per day on overdue principal (product default)
    macro_persistence: float = 0.8  # AR(1) coefficient of the log macro factor
    macro_volatility: float = 0.03  # monthly shock of the log macro factor
    stress_peak_range: tuple[float, float] = (1.6, 1.9)
    delinquent_outcomes: dict[int, tuple[float, float, float, float]] = field(
        default_factory=lambda: dict(_DELINQUENT_OUTCOMES)
    )

    def grade(self, name: str) -> GradeBehaviour:
        for g in self.grades:
            if g.grade == name:
                return g
        raise InvalidInput(f"`grade`: {name!r} is not a risk grade; expected one of {', '.join(GRADES)}", field="grade")

    @property
    def grade_shares(self) -> FloatArray:
        shares = np.asarray([g.share for g in self.grades], dtype=np.float64)
        normalised: FloatArray = shares / shares.sum()
        return normalised

    def base_matrix(self, grade_index: int) -> FloatArray:
        """The grade's transition matrix at macro factor 1 (rows: from-state, columns: to-state)."""
        return self.matrix(grade_index, 1.0)

    def matrix(self, grade_index: int, macro: float) -> FloatArray:
        """The grade's transition matrix under macro factor ``macro`` (rows sum to 1)."""
        g = self.grades[grade_index]
        out = np.zeros((N_STATES, N_STATES), dtype=np.float64)
        miss = min(0.95, g.miss * macro)
        out[0, 0], out[0, 1] = 1.0 - miss, miss
        for k, (cure, back, stay, roll) in self.delinquent_outcomes.items():
            base_roll = min(0.99, roll * g.roll_multiplier)
            new_roll = min(0.99, base_roll * macro**0.5)
            rest = cure + back + stay
            scale = (1.0 - new_roll) / rest
            out[k, 0] += cure * scale
            out[k, k - 1] += back * scale  # from M1 "back one" is a cure
            out[k, k] += stay * scale
            out[k, k + 1] += new_roll
        out[CHARGED_OFF, CHARGED_OFF] = 1.0
        return out

    def matrices(self, macro: Sequence[float] | FloatArray) -> FloatArray:
        """Effective matrices ``[grade, month, from, to]`` along a macro path."""
        stacked: FloatArray = np.stack(
            [np.stack([self.matrix(gi, float(m)) for m in macro]) for gi in range(len(self.grades))]
        )
        return stacked

    def macro_path(self, months: int, rng: np.random.Generator, *, stress: bool = True) -> MacroPath:
        """A macro factor that drifts (AR(1) in logs) with one stress episode of 1.6–1.9× at its peak.

        The episode ramps up over 3 months, holds 3 and decays over 4, starting between 40 % and 70 %
        of the book's months (the COVID-2020 episodes at Ant and Lexin rose about 1.6–1.9×).
        """
        shocks = rng.normal(0.0, self.macro_volatility, size=months)
        log_factor = np.zeros(months)
        for t in range(months):
            log_factor[t] = (self.macro_persistence * log_factor[t - 1] if t else 0.0) + shocks[t]
        low, high = self.stress_peak_range
        peak = float(rng.uniform(low, high))
        start = int(rng.integers(int(months * 0.4), max(int(months * 0.7), int(months * 0.4)) + 1))
        episode = np.ones(months)
        weight = np.zeros(months)  # how much of the month is the episode: its drift fades out at the peak
        if stress:
            shape = np.array([1 / 3, 2 / 3, 1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2])
            for i, s in enumerate(shape):
                if start + i < months:
                    episode[start + i] = 1.0 + (peak - 1.0) * s
                    weight[start + i] = s
        else:
            start, peak = -1, 1.0
        factor = np.exp(log_factor * (1.0 - weight)) * episode
        return MacroPath(factor=factor, stress=episode, stress_start=start, stress_peak=peak)
