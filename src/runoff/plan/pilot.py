"""The pilot (小范围试点): a randomized test of offer variants on a sample before the whole book gets them.

Three steps, all pure:

* :func:`assign_arms` draws a sample stratified by segment and assigns it to the variants and a control arm
  (the current practice), balanced within each segment, from a seeded NumPy ``Generator``: the same seed and
  units give the same assignment whatever order the units come in.
* :func:`two_proportion_sample_size` is the number of accounts per arm needed to detect a difference in
  take-up between two arms with a two-proportion test (normal approximation with the pooled variance under
  the null, as in Fleiss, Levin & Paik, *Statistical Methods for Rates and Proportions*, 3rd ed., §4.2),
  optionally with Fleiss's continuity correction; 0.50 against 0.60 at α = 0.05 two-sided and 80 % power needs
  388 a arm uncorrected and 408 corrected.
* :func:`analyze_pilot` compares each variant with control on take-up, payment rate and complaint rate:
  each rate with its Wilson score interval, each difference with Newcombe's hybrid score interval (method 10
  of Newcombe 1998, *Statistics in Medicine* 17:873–890: good coverage for small counts and rates near 0,
  where the Wald interval fails) and a pooled two-proportion z-test p-value; and recommends roll out, change or
  stop by the rule in :class:`DecisionRule`, which it states with the result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy import stats

from runoff.errors import InvalidInput

FloatArray = npt.NDArray[np.float64]
CONTROL = "control"
METRICS: tuple[str, ...] = ("took_up", "paid", "complained")
"""The outcomes a pilot measures per account: took an offer (接受方案), paid as due, complained (投诉)."""


class PilotInvalid(InvalidInput):
    """Pilot inputs that cannot work: no units, an arm named twice, rates outside (0, 1), a missing column."""

    code = "pilot.invalid"


# --- assignment -----------------------------------------------------------------------------------------------------


def _check_arms(arms: Sequence[str]) -> tuple[str, ...]:
    names = tuple(arms)
    if len(names) < 2:
        raise PilotInvalid(
            f"`arms`: {list(names)} has fewer than two arms; expected a control and at least one variant"
        )
    dup = sorted({a for a in names if names.count(a) > 1})
    if dup:
        raise PilotInvalid(f"`arms`: {dup[0]!r} is named twice; expected each arm once", field="arms")
    if any(not a or not a.strip() for a in names):
        raise PilotInvalid("`arms`: an arm has an empty name", field="arms")
    return names


def _largest_remainder(sizes: npt.NDArray[np.int64], total: int) -> npt.NDArray[np.int64]:
    """Split ``total`` across strata in proportion to their sizes (Hamilton's method), never above a size."""
    n = int(sizes.sum())
    exact = sizes * total / n
    base = np.floor(exact).astype(np.int64)
    left = total - int(base.sum())
    order = np.lexsort((np.arange(len(sizes)), -(exact - base)))  # biggest remainder first, ties by position
    base[order[:left]] += 1
    out: npt.NDArray[np.int64] = np.minimum(base, sizes)
    return out


def assign_arms(
    units: pl.DataFrame,
    *,
    arms: Sequence[str],
    rng: np.random.Generator,
    sample_size: int | None = None,
    id_column: str = "account_id",
    stratum_column: str = "segment",
) -> pl.DataFrame:
    """Sample ``sample_size`` units (all when None) stratified by ``stratum_column`` and assign each to an arm.

    Each stratum gets its share of the sample in proportion to its size; within a stratum the arms get equal
    numbers (at most one apart, the extra ones drawn at random), so every segment is in every arm alike.
    Returns ``id_column``, ``stratum_column`` and ``arm``, sorted by id.
    """
    names = _check_arms(arms)
    for column in (id_column, stratum_column):
        if column not in units.columns:
            raise PilotInvalid(
                f"`units`: no column {column!r}; expected {id_column!r} and {stratum_column!r}", field="units"
            )
    frame = units.select(pl.col(id_column).cast(pl.String), pl.col(stratum_column).cast(pl.String))
    if frame.height == 0:
        raise PilotInvalid("`units`: no units to sample from", field="units")
    if frame.get_column(id_column).is_duplicated().any():
        dup = frame.filter(pl.col(id_column).is_duplicated()).get_column(id_column)[0]
        raise PilotInvalid(f"`units`: {dup!r} appears more than once; expected each unit once", field="units")
    frame = frame.with_columns(pl.col(stratum_column).fill_null("(none)")).sort(stratum_column, id_column)
    total = frame.height if sample_size is None else sample_size
    if not 1 <= total <= frame.height:
        raise PilotInvalid(
            f"`sample_size`: {total} is not allowed; expected 1 to {frame.height} (the units available)",
            field="sample_size",
        )
    strata = frame.group_by(stratum_column, maintain_order=True).len()
    sizes = strata.get_column("len").to_numpy().astype(np.int64)
    takes = _largest_remainder(sizes, total)
    k = len(names)
    ids: list[str] = []
    out_strata: list[str] = []
    out_arms: list[str] = []
    start = 0
    for name, size, take in zip(strata.get_column(stratum_column).to_list(), sizes, takes, strict=True):
        members = frame.get_column(id_column).slice(start, int(size)).to_list()
        start += int(size)
        if take == 0:
            continue
        chosen = rng.permutation(int(size))[: int(take)]
        counts = np.full(k, int(take) // k, dtype=np.int64)
        extra = int(take) % k
        if extra:
            counts[rng.choice(k, size=extra, replace=False)] += 1
        labels = np.repeat(np.arange(k), counts)
        rng.shuffle(labels)
        ids.extend(members[i] for i in chosen)
        out_strata.extend([name] * int(take))
        out_arms.extend(names[j] for j in labels)
    return pl.DataFrame(
        {id_column: ids, stratum_column: out_strata, "arm": out_arms},
        schema={id_column: pl.String, stratum_column: pl.String, "arm": pl.String},
    ).sort(id_column)


# --- sample size ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SampleSize:
    """Accounts needed per arm to detect ``p_treatment`` against ``p_control`` with the given error rates."""

    p_control: float
    p_treatment: float
    alpha: float
    power: float
    alternative: str
    continuity_correction: bool
    ratio: float
    n_control: int
    n_treatment: int

    @property
    def per_arm(self) -> int:
        return max(self.n_control, self.n_treatment)


def two_proportion_sample_size(
    p_control: float,
    p_treatment: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    alternative: Literal["two-sided", "one-sided"] = "two-sided",
    continuity_correction: bool = False,
) -> SampleSize:
    """Accounts per arm for a two-proportion z-test (pooled variance under the null).

    n_c = [z_α √(p̄ q̄ (1 + 1/r)) + z_β √(p_c q_c + p_t q_t / r)]² / Δ², with r = n_t / n_c and
    p̄ = (p_c + r p_t) / (1 + r); Fleiss's correction n' = n/4 · (1 + √(1 + 2(r + 1)/(r n Δ)))². Rounded up.
    """
    for name, value in (("p_control", p_control), ("p_treatment", p_treatment)):
        if not 0 < value < 1:
            raise PilotInvalid(
                f"`{name}`: {value} is not allowed; expected a rate strictly between 0 and 1", field=name
            )
    if p_control == p_treatment:
        raise PilotInvalid(
            "`p_treatment`: equal to `p_control`; expected the difference to detect", field="p_treatment"
        )
    if not 0 < alpha < 0.5:
        raise PilotInvalid(f"`alpha`: {alpha} is not allowed; expected a level between 0 and 0.5", field="alpha")
    if not 0.5 <= power < 1:
        raise PilotInvalid(f"`power`: {power} is not allowed; expected a power from 0.5 to below 1", field="power")
    if not ratio > 0:
        raise PilotInvalid(f"`ratio`: {ratio} is not allowed; expected n_treatment / n_control above 0", field="ratio")
    z_alpha = stats.norm.ppf(1 - alpha / 2 if alternative == "two-sided" else 1 - alpha)
    z_beta = stats.norm.ppf(power)
    delta = abs(p_treatment - p_control)
    p_bar = (p_control + ratio * p_treatment) / (1 + ratio)
    root = z_alpha * math.sqrt(p_bar * (1 - p_bar) * (1 + 1 / ratio)) + z_beta * math.sqrt(
        p_control * (1 - p_control) + p_treatment * (1 - p_treatment) / ratio
    )
    n = root**2 / delta**2
    if continuity_correction:
        n = n / 4 * (1 + math.sqrt(1 + 2 * (ratio + 1) / (ratio * n * delta))) ** 2
    n_control = math.ceil(n - 1e-9)
    return SampleSize(
        p_control=p_control,
        p_treatment=p_treatment,
        alpha=alpha,
        power=power,
        alternative=alternative,
        continuity_correction=continuity_correction,
        ratio=ratio,
        n_control=n_control,
        n_treatment=math.ceil(n_control * ratio - 1e-9),
    )


# --- intervals ------------------------------------------------------------------------------------------------------


def wilson_interval(
    successes: FloatArray | float, n: FloatArray | float, *, confidence: float = 0.95
) -> tuple[FloatArray, FloatArray]:
    """Wilson score interval for a proportion (vectorized); (nan, nan) where n is 0."""
    x = np.asarray(successes, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / m
        denom = 1 + z * z / m
        centre = (p + z * z / (2 * m)) / denom
        half = z * np.sqrt(p * (1 - p) / m + z * z / (4 * m * m)) / denom
    low: FloatArray = np.clip(centre - half, 0.0, 1.0)
    high: FloatArray = np.clip(centre + half, 0.0, 1.0)
    return low, high


def newcombe_interval(
    x1: FloatArray | float,
    n1: FloatArray | float,
    x2: FloatArray | float,
    n2: FloatArray | float,
    *,
    confidence: float = 0.95,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Newcombe's hybrid score interval (method 10) for p1 − p2, from the two Wilson intervals (vectorized).

    Returns (difference, lower, upper).
    """
    a1, m1 = np.asarray(x1, dtype=np.float64), np.asarray(n1, dtype=np.float64)
    a2, m2 = np.asarray(x2, dtype=np.float64), np.asarray(n2, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = a1 / m1, a2 / m2
    l1, u1 = wilson_interval(a1, m1, confidence=confidence)
    l2, u2 = wilson_interval(a2, m2, confidence=confidence)
    d: FloatArray = p1 - p2
    lower: FloatArray = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper: FloatArray = d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, lower, upper


def two_proportion_p_value(x1: float, n1: float, x2: float, n2: float) -> float:
    """Two-sided p-value of the pooled two-proportion z-test (1.0 when the pooled rate is 0 or 1)."""
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / se
    return float(2 * stats.norm.sf(abs(z)))


# --- analysis -------------------------------------------------------------------------------------------------------


class Recommendation(StrEnum):
    ROLL_OUT = "roll-out"  # 全面推广
    CHANGE = "change"  # 调整方案 (or extend the pilot)
    STOP = "stop"  # 停止


@dataclass(frozen=True, slots=True)
class DecisionRule:
    """How a variant is judged against control (differences are variant − control, as fractions).

    * **stop** when harm is shown: complaints significantly higher (the difference's lower bound above 0) or
      payment significantly lower (its upper bound below 0);
    * **roll out** when take-up is shown higher by more than ``min_take_up_lift`` (lower bound above it), the
      payment rate is not worse by more than ``max_payment_drop`` (lower bound at least −it) and complaints
      not higher by more than ``max_complaint_rise`` (upper bound at most it): superiority on take-up,
      non-inferiority on payment and complaints;
    * **change** otherwise: the pilot shows neither (too small, or a mixed result).

    The pilot recommends rolling out the variant with the largest take-up lift among those that qualify; stop
    when every variant shows harm; change otherwise.
    """

    min_take_up_lift: float = 0.0
    max_payment_drop: float = 0.02
    max_complaint_rise: float = 0.01

    def describe(self, confidence: float) -> str:
        level = f"{confidence:.0%}"
        return (
            f"{level} intervals of variant − control. stop: complaints CI lower > 0 or payment CI upper < 0. "
            f"roll-out: take-up CI lower > {self.min_take_up_lift:g}, payment CI lower >= -{self.max_payment_drop:g}, "
            f"complaints CI upper <= {self.max_complaint_rise:g}. change: otherwise."
        )


@dataclass(frozen=True, slots=True)
class RateEstimate:
    """One arm's rate on one metric with its Wilson interval."""

    arm: str
    metric: str
    n: int
    successes: int
    rate: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class Difference:
    """A variant's rate minus control's on one metric, with Newcombe's interval and the z-test p-value."""

    variant: str
    metric: str
    difference: float
    low: float
    high: float
    p_value: float


@dataclass(frozen=True, slots=True)
class VariantVerdict:
    variant: str
    recommendation: Recommendation
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PilotAnalysis:
    """Rates per arm, differences against control, a verdict per variant and the overall recommendation."""

    control: str
    confidence: float
    rates: tuple[RateEstimate, ...]
    differences: tuple[Difference, ...]
    verdicts: tuple[VariantVerdict, ...]
    recommendation: Recommendation
    chosen_variant: str | None
    rule: str
    sizes: dict[str, int] = field(default_factory=dict)

    def difference(self, variant: str, metric: str) -> Difference:
        for d in self.differences:
            if d.variant == variant and d.metric == metric:
                return d
        raise KeyError((variant, metric))


def _judge(diffs: dict[str, Difference], rule: DecisionRule) -> VariantVerdict:
    take, pay, compl = diffs.get("took_up"), diffs.get("paid"), diffs.get("complained")
    variant = next(iter(diffs.values())).variant
    harm: list[str] = []
    if compl is not None and compl.low > 0:
        harm.append(f"complaints higher by {compl.difference:+.4f} (CI {compl.low:+.4f} to {compl.high:+.4f})")
    if pay is not None and pay.high < 0:
        harm.append(f"payment rate lower by {pay.difference:+.4f} (CI {pay.low:+.4f} to {pay.high:+.4f})")
    if harm:
        return VariantVerdict(variant, Recommendation.STOP, tuple(harm))
    reasons: list[str] = []
    ok = True
    if take is None or not take.low > rule.min_take_up_lift:
        ok = False
        if take is not None:
            reasons.append(
                f"take-up lift {take.difference:+.4f} not shown above {rule.min_take_up_lift:g} "
                f"(CI {take.low:+.4f} to {take.high:+.4f})"
            )
    else:
        reasons.append(f"take-up higher by {take.difference:+.4f} (CI {take.low:+.4f} to {take.high:+.4f})")
    if pay is not None and pay.low < -rule.max_payment_drop:
        ok = False
        reasons.append(f"payment rate may drop by more than {rule.max_payment_drop:g} (CI lower {pay.low:+.4f})")
    if compl is not None and compl.high > rule.max_complaint_rise:
        ok = False
        reasons.append(f"complaints may rise by more than {rule.max_complaint_rise:g} (CI upper {compl.high:+.4f})")
    return VariantVerdict(variant, Recommendation.ROLL_OUT if ok else Recommendation.CHANGE, tuple(reasons))


def analyze_pilot(
    outcomes: pl.DataFrame,
    *,
    control: str = CONTROL,
    arm_column: str = "arm",
    metrics: Sequence[str] = METRICS,
    confidence: float = 0.95,
    rule: DecisionRule | None = None,
) -> PilotAnalysis:
    """Compare each variant arm with ``control`` on each metric (Boolean columns; nulls are left out)."""
    rule = rule or DecisionRule()
    if not 0.5 < confidence < 1:
        raise PilotInvalid(f"`confidence`: {confidence} is not allowed; expected a level between 0.5 and 1")
    missing = [c for c in (arm_column, *metrics) if c not in outcomes.columns]
    if missing:
        raise PilotInvalid(
            f"`outcomes`: no column {missing[0]!r}; expected {arm_column!r} and {', '.join(metrics)}", field="outcomes"
        )
    arms = sorted(outcomes.get_column(arm_column).cast(pl.String).unique().drop_nulls().to_list())
    if control not in arms:
        raise PilotInvalid(
            f"`control`: no arm {control!r} in the outcomes; expected one of {', '.join(arms) or '(none)'}",
            field="control",
        )
    variants = [a for a in arms if a != control]
    if not variants:
        raise PilotInvalid(
            "`outcomes`: only the control arm is present; expected at least one variant", field="outcomes"
        )
    counts = (
        outcomes.with_columns(pl.col(arm_column).cast(pl.String))
        .group_by(arm_column)
        .agg(
            pl.len().alias("units"),
            *[pl.col(m).cast(pl.Boolean).drop_nulls().len().alias(f"{m}__n") for m in metrics],
            *[pl.col(m).cast(pl.Boolean).drop_nulls().sum().alias(f"{m}__x") for m in metrics],
        )
    )
    by_arm = {row[arm_column]: row for row in counts.iter_rows(named=True)}
    rates: list[RateEstimate] = []
    for arm in [control, *variants]:
        for m in metrics:
            n, x = int(by_arm[arm][f"{m}__n"]), int(by_arm[arm][f"{m}__x"])
            low, high = wilson_interval(float(x), float(n), confidence=confidence)
            rates.append(RateEstimate(arm, m, n, x, x / n if n else math.nan, float(low), float(high)))
    diffs: list[Difference] = []
    verdicts: list[VariantVerdict] = []
    for v in variants:
        per_metric: dict[str, Difference] = {}
        for m in metrics:
            x1, n1 = float(by_arm[v][f"{m}__x"]), float(by_arm[v][f"{m}__n"])
            x2, n2 = float(by_arm[control][f"{m}__x"]), float(by_arm[control][f"{m}__n"])
            if n1 == 0 or n2 == 0:
                continue
            d, low, high = newcombe_interval(x1, n1, x2, n2, confidence=confidence)
            diff = Difference(v, m, float(d), float(low), float(high), two_proportion_p_value(x1, n1, x2, n2))
            diffs.append(diff)
            per_metric[m] = diff
        if per_metric:
            verdicts.append(_judge(per_metric, rule))
    rolling = [vv for vv in verdicts if vv.recommendation is Recommendation.ROLL_OUT]
    chosen: str | None = None
    if rolling:
        overall = Recommendation.ROLL_OUT
        lift = {d.variant: d.difference for d in diffs if d.metric == "took_up"}
        chosen = max(rolling, key=lambda vv: (lift.get(vv.variant, 0.0), vv.variant)).variant
    elif verdicts and all(vv.recommendation is Recommendation.STOP for vv in verdicts):
        overall = Recommendation.STOP
    else:
        overall = Recommendation.CHANGE
    return PilotAnalysis(
        control=control,
        confidence=confidence,
        rates=tuple(rates),
        differences=tuple(diffs),
        verdicts=tuple(verdicts),
        recommendation=overall,
        chosen_variant=chosen,
        rule=rule.describe(confidence),
        sizes={arm: int(by_arm[arm]["units"]) for arm in [control, *variants]},
    )
