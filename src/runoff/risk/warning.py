"""Early warning (动态风险预警): indicators per as-of date, rules as data, change detection, a watchlist.

**Indicators** are monthly series, each value dated the month end it becomes known: overdue rates
(M1+, M2+, M4+), roll rates (a roll from month t is known at t + 1), the M1 cure rate and the
collection rate of delinquent balances, first-payment default (FPD at MOB 1, FPD30 at MOB 2),
concentration (customer HHI, top-10 share), and the PSI of the PD distribution once scores exist.

**Rules** are YAML validated by pydantic (:class:`WarningRules`): a threshold rule compares a
statistic of an indicator over a window (its level, its change, or its relative change) with a
threshold in a direction; change detectors watch an indicator with a one-sided CUSUM or Shewhart
control limits against a baseline period, so a drift is caught before any fixed threshold is
crossed (Page 1954; Montgomery, *Introduction to Statistical Quality Control*, ch. 6 and 9).

Fired rules become :class:`Alert` values; their lifecycle (open → acknowledged → resolved) is
:mod:`runoff.risk.alerts`, the account watchlist :mod:`runoff.risk.watchlist`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from runoff.documents import yaml_data
from runoff.errors import InvalidInput, describe_validation_error, field_of_validation_error
from runoff.risk.delinquency import ALL, SEGMENTS, TOTAL

FloatArray = npt.NDArray[np.float64]

# --- indicators --------------------------------------------------------------------------------------------------

INDICATORS: dict[str, str] = {
    "m1plus_balance_rate": "M1+ (≥1 DPD) balance over open balance (M1+逾期率, 余额)",
    "m1plus_count_rate": "M1+ loans over open loans (M1+逾期率, 笔数)",
    "m2plus_balance_rate": "30+ DPD balance over open balance",
    "m4plus_balance_rate": "90+ DPD balance over open balance (不良率口径)",
    "roll_current_to_m1": "share of the current balance that rolled to M1 (known the month after)",
    "roll_m1_to_m2": "share of the M1 balance that rolled to M2",
    "roll_m2_to_m3": "share of the M2 balance that rolled to M3",
    "roll_m3_to_m4plus": "share of the M3 balance that rolled to M4+",
    "m1_cure_rate": "share of the M1 balance back to current or paid off the month after (催回率)",
    "collection_rate": "cash collected in the month over the amount overdue at its start (delinquent loans)",
    "fpd_rate": "loans M1+ at their first month end after the first due date, by vintage (首期逾期)",
    "fpd30_rate": "loans M2+ (30+ DPD) at MOB 2, by vintage",
    "hhi": "Herfindahl–Hirschman index of customers' shares of the open balance",
    "top10_share": "share of the open balance owed by the ten largest customers",
    "overdue_top10_share": "share of the M1+ balance owed by the ten largest delinquent customers",
    "score_psi": "population stability index of the PD distribution against the first scoring date",
    "feature_psi": "largest population stability index of the behaviour features, now against six months before",
}
"""Every indicator a rule can name."""

INDICATOR_COLUMNS = ("indicator", "dimension", "segment", "month_end", "value", "numerator", "denominator")

_ROLL_INDICATORS = {
    "current": "roll_current_to_m1",
    "M1": "roll_m1_to_m2",
    "M2": "roll_m2_to_m3",
    "M3": "roll_m3_to_m4plus",
}


def _next_month_end(col: str = "month_end") -> pl.Expr:
    return pl.col(col).dt.offset_by("1mo").dt.month_end()


def _series(frame: pl.DataFrame, indicator: str, value: str, num: str | None, den: str | None) -> pl.DataFrame:
    return frame.select(
        pl.lit(indicator).alias("indicator"),
        pl.col("dimension") if "dimension" in frame.columns else pl.lit(TOTAL).alias("dimension"),
        pl.col("segment") if "segment" in frame.columns else pl.lit(ALL).alias("segment"),
        pl.col("month_end"),
        pl.col(value).cast(pl.Float64).alias("value"),
        (pl.col(num).cast(pl.Float64) if num else pl.lit(None, dtype=pl.Float64)).alias("numerator"),
        (pl.col(den).cast(pl.Float64) if den else pl.lit(None, dtype=pl.Float64)).alias("denominator"),
    )


def build_indicators(
    *,
    rates: pl.DataFrame | None = None,
    rolls: pl.DataFrame | None = None,
    fpd: pl.DataFrame | None = None,
    concentration: pl.DataFrame | None = None,
    score_psi: pl.DataFrame | None = None,
    feature_psi: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The indicator series from the analytics' results (any may be absent), dated when each is known.

    ``rates``: :func:`runoff.risk.delinquency.overdue_rates`; ``rolls``: :func:`runoff.risk.roll_rates.roll_rates`;
    ``fpd``: :func:`runoff.risk.vintage.first_payment_default`; ``concentration``:
    :func:`runoff.risk.roll_rates.concentration`; ``score_psi``: :func:`psi_by_date`; ``feature_psi``:
    :func:`feature_drift` (the book's value is the largest; each feature is a segment of dimension ``feature``).
    """
    out: list[pl.DataFrame] = []
    if rates is not None and rates.height:
        for name, num, den in (
            ("m1plus_balance_rate", "m1plus_balance_fen", "open_balance_fen"),
            ("m1plus_count_rate", "m1plus_loans", "open_loans"),
            ("m2plus_balance_rate", "m2plus_balance_fen", "open_balance_fen"),
            ("m4plus_balance_rate", "m4plus_balance_fen", "open_balance_fen"),
        ):
            out.append(_series(rates, name, name, num, den))
    if rolls is not None and rolls.height:
        known = rolls.with_columns(_next_month_end())
        for bucket, name in _ROLL_INDICATORS.items():
            out.append(
                _series(
                    known.filter(pl.col("from_bucket") == bucket),
                    name,
                    "roll_forward_balance_rate",
                    "roll_forward_fen",
                    "from_balance_fen",
                )
            )
        out.append(
            _series(
                known.filter(pl.col("from_bucket") == "M1"),
                "m1_cure_rate",
                "cure_balance_rate",
                "cure_fen",
                "from_balance_fen",
            )
        )
        delinquent = (
            known.filter(pl.col("from_bucket") != "current")
            .group_by("dimension", "segment", "month_end")
            .agg(pl.col("collected_fen").sum(), pl.col("overdue_amount_fen").sum())
            .with_columns(
                pl.when(pl.col("overdue_amount_fen") > 0)
                .then(pl.col("collected_fen") / pl.col("overdue_amount_fen"))
                .alias("collection_rate")
            )
        )
        out.append(_series(delinquent, "collection_rate", "collection_rate", "collected_fen", "overdue_amount_fen"))
    if fpd is not None and fpd.height:
        for name, seen, num in (
            ("fpd_rate", "fpd_seen_on", "fpd_loans"),
            ("fpd30_rate", "fpd30_seen_on", "fpd30_loans"),
        ):
            known = fpd.filter(pl.col(name).is_not_null()).with_columns(pl.col(seen).alias("month_end"))
            out.append(_series(known, name, name, num, "originated_loans"))
    if concentration is not None and concentration.height:
        out.append(_series(concentration, "hhi", "hhi", None, None))
        out.append(_series(concentration, "top10_share", "top10_share", "top10_fen", "balance_fen"))
        out.append(
            _series(
                concentration, "overdue_top10_share", "overdue_top10_share", "overdue_top10_fen", "overdue_balance_fen"
            )
        )
    if score_psi is not None and score_psi.height:
        out.append(_series(score_psi, "score_psi", "psi", None, None))
    if feature_psi is not None and feature_psi.height:
        per_feature = feature_psi.select(
            pl.lit("feature").alias("dimension"), pl.col("feature").alias("segment"), "month_end", "psi"
        )
        largest = feature_psi.group_by("month_end").agg(pl.col("psi").max())
        out.append(_series(largest, "feature_psi", "psi", None, None))
        out.append(_series(per_feature, "feature_psi", "psi", None, None))
    if not out:
        return pl.DataFrame(
            schema={
                "indicator": pl.String,
                "dimension": pl.String,
                "segment": pl.String,
                "month_end": pl.Date,
                "value": pl.Float64,
                "numerator": pl.Float64,
                "denominator": pl.Float64,
            }
        )
    return pl.concat(out, how="vertical").sort("indicator", "dimension", "segment", "month_end")


# --- population stability ----------------------------------------------------------------------------------------

PD_BINS: tuple[float, ...] = (0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2, 0.35)
"""Inner edges of a fixed PD master scale (11 grades): fixed bins make score histograms add across partitions."""


def population_stability_index(
    expected: Sequence[float] | FloatArray, actual: Sequence[float] | FloatArray, *, floor: float = 1e-4
) -> float:
    """PSI = Σ (aᵢ − eᵢ) ln(aᵢ / eᵢ) over the bins' shares (counts are normalised; empty bins floored).

    Rule of thumb: below 0.1 stable, 0.1–0.25 some shift, above 0.25 a major shift.
    """
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape or e.size == 0:
        raise InvalidInput(f"`bins`: expected two histograms of the same size, got {e.size} and {a.size}", field="bins")
    if e.sum() <= 0 or a.sum() <= 0:
        raise InvalidInput("`bins`: a histogram is empty; expected counts that add up to more than zero", field="bins")
    e = np.maximum(e / e.sum(), floor)
    a = np.maximum(a / a.sum(), floor)
    return float(np.sum((a - e) * np.log(a / e)))


def score_histogram(
    scores: pl.LazyFrame | pl.DataFrame, *, date_column: str = "as_of", bins: Sequence[float] = PD_BINS
) -> pl.DataFrame:
    """Counts of customers per (date, PD bin) of a scores table: a partial that adds across partitions.

    Bin k holds PDs in (edge[k−1], edge[k]]; customers without a PD are left out.
    """
    edges = pl.lit(pl.Series("edges", [float(b) for b in bins], dtype=pl.Float64))
    return (
        scores.lazy()
        .filter(pl.col("pd").is_not_null())
        .select(
            pl.col(date_column).alias("month_end"),
            edges.search_sorted(pl.col("pd").cast(pl.Float64), side="left").cast(pl.Int32).alias("bin"),
        )
        .group_by("month_end", "bin")
        .agg(pl.len().cast(pl.Int64).alias("customers"))
        .collect()
    )


def psi_by_date(histogram: pl.DataFrame, *, baseline: date | None = None, bins: int = len(PD_BINS) + 1) -> pl.DataFrame:
    """PSI of each date's histogram against the baseline date's (default: the first date)."""
    if histogram.height == 0:
        return pl.DataFrame(schema={"month_end": pl.Date, "psi": pl.Float64})
    merged = histogram.group_by("month_end", "bin").agg(pl.col("customers").sum())
    dates = sorted(merged.get_column("month_end").unique().to_list())
    base_date = baseline or dates[0]

    def counts(d: date) -> FloatArray:
        at = merged.filter(pl.col("month_end") == d)
        out = np.zeros(bins)
        out[at.get_column("bin").to_numpy()] = at.get_column("customers").to_numpy()
        return out

    base = counts(base_date)
    return pl.DataFrame(
        {"month_end": dates, "psi": [population_stability_index(base, counts(d)) for d in dates]},
        schema={"month_end": pl.Date, "psi": pl.Float64},
    )


def feature_drift(histogram: pl.DataFrame, *, as_of: date) -> pl.DataFrame:
    """PSI of each behaviour feature, ``current`` against ``baseline`` customers, dated ``as_of``."""
    if histogram.height == 0:
        return pl.DataFrame(schema={"feature": pl.String, "month_end": pl.Date, "psi": pl.Float64})
    merged = histogram.group_by("feature", "period", "bin").agg(pl.col("customers").sum())
    rows = []
    for feature in sorted(merged.get_column("feature").unique().to_list()):
        f = merged.filter(pl.col("feature") == feature)
        n_bins = int(f.get_column("bin").max()) + 1  # type: ignore[arg-type]
        counts = {}
        for period in ("baseline", "current"):
            at = f.filter(pl.col("period") == period)
            c = np.zeros(n_bins)
            c[at.get_column("bin").to_numpy()] = at.get_column("customers").to_numpy()
            counts[period] = c
        if counts["baseline"].sum() > 0 and counts["current"].sum() > 0:
            rows.append((feature, as_of, population_stability_index(counts["baseline"], counts["current"])))
    return pl.DataFrame(rows, schema={"feature": pl.String, "month_end": pl.Date, "psi": pl.Float64}, orient="row")


# --- change detection --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChangeSignal:
    """The result of watching one series: its baseline, the statistic per point and the first alarm (if any)."""

    mean: float
    sigma: float
    statistic: FloatArray  # CUSUM S (in σ) or the standardized value, per point; NaN in the baseline
    alarm_index: int | None  # first point that signalled
    current: bool  # whether the last point is signalling


def _baseline(values: FloatArray, baseline: int) -> tuple[float, float]:
    ref = values[:baseline]
    mean = float(np.mean(ref))
    sigma = float(np.std(ref, ddof=1)) if ref.size > 1 else 0.0
    # a flat baseline would make any move an alarm: floor σ at 1 % of the level (or 1e-9)
    return mean, max(sigma, 0.01 * abs(mean), 1e-9)


def cusum(
    values: Sequence[float] | FloatArray, *, baseline: int, k: float = 0.5, h: float = 4.0, direction: str = "above"
) -> ChangeSignal:
    """One-sided tabular CUSUM in σ units: Sₜ = max(0, Sₜ₋₁ + zₜ − k), alarm when Sₜ > h.

    The first ``baseline`` points fix the in-control mean and σ; ``direction`` ``above`` watches for an
    upward shift (``below`` for a downward one). k = 0.5, h = 4 detect a one-σ shift in about eight
    points while a Shewhart 3σ chart needs about 44 on average (Montgomery, table 9.3).
    """
    x = np.asarray(values, dtype=np.float64)
    _check_baseline(x, baseline)
    mean, sigma = _baseline(x, baseline)
    sign = 1.0 if direction == "above" else -1.0
    s = np.full(x.size, np.nan)
    acc = 0.0
    alarm: int | None = None
    for t in range(baseline, x.size):  # a loop over months, not loans
        acc = max(0.0, acc + sign * (x[t] - mean) / sigma - k)
        s[t] = acc
        if acc > h and alarm is None:
            alarm = t
    return ChangeSignal(mean, sigma, s, alarm, bool(x.size > baseline and s[-1] > h))


def control_limits(
    values: Sequence[float] | FloatArray, *, baseline: int, limit_sigma: float = 3.0, direction: str = "above"
) -> ChangeSignal:
    """Shewhart individuals chart: alarm when a point leaves mean ± ``limit_sigma`` σ of the baseline."""
    x = np.asarray(values, dtype=np.float64)
    _check_baseline(x, baseline)
    mean, sigma = _baseline(x, baseline)
    z = np.full(x.size, np.nan)
    z[baseline:] = (x[baseline:] - mean) / sigma * (1.0 if direction == "above" else -1.0)
    hits = np.flatnonzero(z[baseline:] > limit_sigma)
    alarm = int(hits[0]) + baseline if hits.size else None
    return ChangeSignal(mean, sigma, z, alarm, bool(x.size > baseline and z[-1] > limit_sigma))


def _check_baseline(x: FloatArray, baseline: int) -> None:
    if baseline < 2:
        raise InvalidInput(
            f"`baseline_months`: {baseline} is not allowed; expected at least 2", field="baseline_months"
        )
    if np.isnan(x).any():
        raise InvalidInput("`values`: the series has gaps (NaN); expected one value per month", field="values")


# --- rules as data -----------------------------------------------------------------------------------------------


class Direction(StrEnum):
    ABOVE = "above"
    BELOW = "below"


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Statistic(StrEnum):
    """What a threshold rule compares: the mean ``level`` over the window, or the ``change`` (absolute or
    relative) between the latest value and the one ``window`` months before it."""

    LEVEL = "level"
    CHANGE = "change"
    RELATIVE_CHANGE = "relative-change"


_RULE_ID = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


def _check_indicator(value: str) -> str:
    if value not in INDICATORS:
        raise ValueError(f"{value!r} is not an indicator; expected one of {', '.join(INDICATORS)}")
    return value


def _check_segment(value: str) -> str:
    if value == ALL:
        return value
    dimension, _, name = value.partition("=")
    if dimension not in SEGMENTS or not name:
        raise ValueError(
            f"{value!r} is not a segment; expected 'all' or DIMENSION=VALUE with DIMENSION one of {', '.join(SEGMENTS)}"
        )
    return value


class ThresholdRule(BaseModel):
    """``indicator``'s ``statistic`` over ``window`` months crossing ``threshold`` in ``direction`` raises an alert."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_RULE_ID, description="stable rule id, e.g. m1plus-high")
    indicator: str = Field(description="an indicator name (see INDICATORS)")
    threshold: float = Field(description="the value the statistic is compared with (rates as fractions)")
    direction: Direction = Field(default=Direction.ABOVE, description="alert when the statistic is above / below")
    window: int = Field(default=1, ge=1, le=36, description="months: averaged for a level, looked back for a change")
    statistic: Statistic = Statistic.LEVEL
    severity: Severity = Severity.MEDIUM
    segment: str = Field(default=ALL, description="'all' or DIMENSION=VALUE, e.g. grade=E")
    description: str = ""

    _indicator = field_validator("indicator")(_check_indicator)
    _segment = field_validator("segment")(_check_segment)

    @model_validator(mode="after")
    def _finite(self) -> ThresholdRule:
        if not math.isfinite(self.threshold):
            raise ValueError(f"`threshold`: {self.threshold} is not allowed; expected a finite number")
        return self


class ChangeDetector(BaseModel):
    """Watch ``indicator`` with CUSUM or control limits against a baseline period: its first ``baseline_months``
    values, or (with ``monitor_months``) the ``baseline_months`` just before the last ``monitor_months``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_RULE_ID)
    indicator: str
    method: Literal["cusum", "control-limits"] = "cusum"
    baseline_months: int = Field(default=6, ge=2, le=60, description="months that fix the in-control mean and σ")
    monitor_months: int | None = Field(
        default=None,
        ge=1,
        le=60,
        description="watch only the last N months against the baseline_months just before them "
        "(a trailing baseline, for a book still seasoning); none: the baseline is the series' first months",
    )
    k: float = Field(default=0.5, ge=0.0, le=5.0, description="CUSUM allowance, in σ")
    h: float = Field(default=4.0, gt=0.0, le=20.0, description="CUSUM decision interval, in σ")
    limit_sigma: float = Field(default=3.0, gt=0.0, le=10.0, description="control-limit width, in σ")
    direction: Direction = Direction.ABOVE
    severity: Severity = Severity.MEDIUM
    segment: str = ALL
    description: str = ""

    _indicator = field_validator("indicator")(_check_indicator)
    _segment = field_validator("segment")(_check_segment)


class WatchlistSettings(BaseModel):
    """How the next-month roll-forward watchlist is built."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dimension: str = Field(default="grade", description="segment whose own transition matrix each loan rolls with")
    months: int = Field(default=6, ge=1, le=36, description="recent months pooled into each matrix")
    horizon: int = Field(default=12, ge=1, le=36, description="months for the write-off probability")
    top_n: int = Field(default=100, ge=1, le=100_000, description="accounts listed")
    min_probability: float = Field(
        default=0.0, ge=0.0, le=1.0, description="list only accounts at least this likely to roll"
    )

    @field_validator("dimension")
    @classmethod
    def _dimension(cls, value: str) -> str:
        if value != TOTAL and value not in SEGMENTS:
            raise ValueError(f"{value!r} is not a segment; expected total or one of {', '.join(SEGMENTS)}")
        return value


class WarningRules(BaseModel):
    """An early-warning rule file: threshold rules, change detectors and the watchlist settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    rules: tuple[ThresholdRule, ...] = ()
    change_detection: tuple[ChangeDetector, ...] = ()
    watchlist: WatchlistSettings = WatchlistSettings()

    @model_validator(mode="after")
    def _unique_ids(self) -> WarningRules:
        seen: set[str] = set()
        items: list[ThresholdRule | ChangeDetector] = [*self.rules, *self.change_detection]
        for r in items:
            if r.id in seen:
                raise ValueError(f"`id`: {r.id!r} is used twice; expected each rule and detector id once")
            seen.add(r.id)
        return self

    def segments(self) -> set[str]:
        """The dimensions the rules name (so the analytics compute them)."""
        items: list[ThresholdRule | ChangeDetector] = [*self.rules, *self.change_detection]
        out = {r.segment.partition("=")[0] for r in items if r.segment != ALL}
        if self.watchlist.dimension != TOTAL:
            out.add(self.watchlist.dimension)
        return out


def parse_warning_rules(data: Any, *, source: str = "warning rules") -> WarningRules:
    """Validate already-loaded rule data; errors name the field (``rules.0.threshold``) and the bad value."""
    if not isinstance(data, Mapping):
        raise InvalidInput(
            f"{source}: expected a mapping with `rules` and `change_detection`, got {type(data).__name__}",
            code="warning.rules_invalid",
        )
    try:
        return WarningRules.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(
            describe_validation_error(exc, source=source),
            code="warning.rules_invalid",
            field=field_of_validation_error(exc),
        ) from None


def load_warning_rules(text: str, *, source: str = "warning rules") -> WarningRules:
    """Parse a YAML rule file's text into :class:`WarningRules`."""
    return parse_warning_rules(yaml_data(text, source=source, code="warning.rules_invalid"), source=source)


def default_warning_rules() -> WarningRules:
    """The rules used without a file (``examples/warning-rules.yaml`` holds the same, to copy and edit).

    Levels follow ``shared/research/credit-models.md`` §4: 90+ of balance 1–3.5 % in normal times, a
    current → 30 DPD roll near 0.6–1 % a cycle, a 30-day cure near 86 %.
    """
    return WarningRules(
        rules=(
            ThresholdRule(id="m1plus-high", indicator="m1plus_balance_rate", threshold=0.08, window=1, severity=Severity.HIGH,
                          description="M1+ balance above 8 % of the open balance"),
            ThresholdRule(id="m4plus-high", indicator="m4plus_balance_rate", threshold=0.035, severity=Severity.HIGH,
                          description="90+ DPD above the top of the normal 1–3.5 % range"),
            ThresholdRule(id="m1plus-rising", indicator="m1plus_balance_rate", statistic=Statistic.RELATIVE_CHANGE,
                          threshold=0.2, window=3, severity=Severity.MEDIUM,
                          description="M1+ balance rate up 20 % or more in three months"),
            ThresholdRule(id="entry-roll-jump", indicator="roll_current_to_m1", statistic=Statistic.RELATIVE_CHANGE,
                          threshold=0.3, window=1, severity=Severity.MEDIUM,
                          description="current → M1 roll up 30 % on the month"),
            ThresholdRule(id="m1-cure-low", indicator="m1_cure_rate", direction=Direction.BELOW, threshold=0.45,
                          window=2, severity=Severity.MEDIUM, description="fewer than 45 % of M1 balances cured"),
            ThresholdRule(id="fpd-high", indicator="fpd_rate", threshold=0.05, severity=Severity.MEDIUM,
                          description="first-payment default above 5 % of a vintage"),
            ThresholdRule(id="top10-concentration", indicator="top10_share", threshold=0.05, severity=Severity.LOW,
                          description="ten customers owe more than 5 % of the balance"),
            ThresholdRule(id="score-drift", indicator="score_psi", threshold=0.25, severity=Severity.HIGH,
                          description="PD distribution shifted (PSI above 0.25)"),
            ThresholdRule(id="feature-drift", indicator="feature_psi", threshold=0.25, severity=Severity.MEDIUM,
                          description="a behaviour feature shifted against six months before (PSI above 0.25)"),
        ),
        change_detection=(
            ChangeDetector(id="m1plus-cusum", indicator="m1plus_balance_rate", method="cusum", baseline_months=6,
                           monitor_months=6, severity=Severity.HIGH,
                           description="upward drift of the M1+ balance rate against the six months before"),
            ChangeDetector(id="entry-roll-cusum", indicator="roll_current_to_m1", method="cusum", baseline_months=6,
                           monitor_months=6, severity=Severity.MEDIUM, description="upward drift of the entry roll rate"),
            ChangeDetector(id="cure-control", indicator="m1_cure_rate", method="control-limits", direction=Direction.BELOW,
                           baseline_months=6, monitor_months=6, severity=Severity.MEDIUM,
                           description="M1 cure rate below its control limit"),
        ),
    )  # fmt: skip


# --- evaluation --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Alert:
    """One rule or detector that fires at ``as_of``."""

    rule_id: str
    kind: str  # threshold, cusum, control-limits
    indicator: str
    segment: str
    severity: str
    as_of: date
    observed_on: date  # month end of the latest value used
    value: float  # the statistic compared (a rate, a change, or the CUSUM / z value)
    threshold: float
    direction: str
    message: str
    first_signal_on: date | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "kind": self.kind,
            "indicator": self.indicator,
            "segment": self.segment,
            "severity": self.severity,
            "as_of": self.as_of,
            "observed_on": self.observed_on,
            "value": self.value,
            "threshold": self.threshold,
            "direction": self.direction,
            "message": self.message,
            "first_signal_on": self.first_signal_on,
        }


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """What each rule saw at ``as_of`` (fired or not, or why it could not be evaluated)."""

    rule_id: str
    indicator: str
    segment: str
    status: str  # fired, quiet, insufficient-data
    value: float | None
    threshold: float | None
    observed_on: date | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "indicator": self.indicator,
            "segment": self.segment,
            "status": self.status,
            "value": self.value,
            "threshold": self.threshold,
            "observed_on": self.observed_on,
        }


def _segment_filter(segment: str) -> pl.Expr:
    if segment == ALL:
        return (pl.col("dimension") == TOTAL) & (pl.col("segment") == ALL)
    dimension, _, name = segment.partition("=")
    return (pl.col("dimension") == dimension) & (pl.col("segment") == name)


def indicator_series(indicators: pl.DataFrame, indicator: str, *, segment: str = ALL, as_of: date) -> pl.DataFrame:
    """The (month_end, value) series of one indicator and segment up to ``as_of``, nulls dropped."""
    return (
        indicators.filter(
            (pl.col("indicator") == indicator) & _segment_filter(segment) & (pl.col("month_end") <= as_of)
        )
        .filter(pl.col("value").is_not_null() & pl.col("value").is_finite())
        .sort("month_end")
        .select("month_end", "value")
    )


def _breaches(value: float, threshold: float, direction: Direction) -> bool:
    return value > threshold if direction is Direction.ABOVE else value < threshold


def evaluate_rules(
    indicators: pl.DataFrame, rules: WarningRules, *, as_of: date
) -> tuple[list[Alert], list[RuleOutcome]]:
    """Every threshold rule and change detector at ``as_of``: the alerts that fire and what each rule saw."""
    alerts: list[Alert] = []
    outcomes: list[RuleOutcome] = []
    for rule in rules.rules:
        series = indicator_series(indicators, rule.indicator, segment=rule.segment, as_of=as_of)
        values = series.get_column("value").to_numpy()
        need = rule.window if rule.statistic is Statistic.LEVEL else rule.window + 1
        if values.size < need:
            outcomes.append(
                RuleOutcome(rule.id, rule.indicator, rule.segment, "insufficient-data", None, rule.threshold, None)
            )
            continue
        observed_on = series.get_column("month_end")[-1]
        if rule.statistic is Statistic.LEVEL:
            stat = float(np.mean(values[-rule.window :]))
        elif rule.statistic is Statistic.CHANGE:
            stat = float(values[-1] - values[-1 - rule.window])
        else:
            before = values[-1 - rule.window]
            if before == 0:
                outcomes.append(
                    RuleOutcome(
                        rule.id, rule.indicator, rule.segment, "insufficient-data", None, rule.threshold, observed_on
                    )
                )
                continue
            stat = float(values[-1] / before - 1.0)
        fired = _breaches(stat, rule.threshold, rule.direction)
        outcomes.append(
            RuleOutcome(
                rule.id, rule.indicator, rule.segment, "fired" if fired else "quiet", stat, rule.threshold, observed_on
            )
        )
        if fired:
            what = {"level": "level", "change": "change", "relative-change": "relative change"}[rule.statistic.value]
            over = f" over {rule.window} months" if rule.window > 1 else ""
            alerts.append(
                Alert(
                    rule_id=rule.id, kind="threshold", indicator=rule.indicator, segment=rule.segment,
                    severity=rule.severity.value, as_of=as_of, observed_on=observed_on, value=stat,
                    threshold=rule.threshold, direction=rule.direction.value,
                    message=f"{rule.indicator} {what}{over} {stat:.4g} is {rule.direction.value} {rule.threshold:.4g}"
                    + (f" ({rule.description})" if rule.description else ""),
                )
            )  # fmt: skip
    for det in rules.change_detection:
        series = indicator_series(indicators, det.indicator, segment=det.segment, as_of=as_of)
        if det.monitor_months is not None:
            series = series.tail(det.baseline_months + det.monitor_months)
        values = series.get_column("value").to_numpy()
        if values.size <= det.baseline_months:
            outcomes.append(RuleOutcome(det.id, det.indicator, det.segment, "insufficient-data", None, None, None))
            continue
        if det.method == "cusum":
            signal = cusum(values, baseline=det.baseline_months, k=det.k, h=det.h, direction=det.direction.value)
            limit = det.h
        else:
            signal = control_limits(
                values, baseline=det.baseline_months, limit_sigma=det.limit_sigma, direction=det.direction.value
            )
            limit = det.limit_sigma
        dates = series.get_column("month_end").to_list()
        last = float(signal.statistic[-1])
        outcomes.append(
            RuleOutcome(
                det.id, det.indicator, det.segment, "fired" if signal.current else "quiet", last, limit, dates[-1]
            )
        )
        if signal.current:
            start = _excursion_start(signal.statistic, limit)
            alerts.append(
                Alert(
                    rule_id=det.id, kind=det.method, indicator=det.indicator, segment=det.segment,
                    severity=det.severity.value, as_of=as_of, observed_on=dates[-1], value=last, threshold=limit,
                    direction=det.direction.value, first_signal_on=dates[start],
                    message=f"{det.indicator} shifted {det.direction.value} its baseline "
                    f"{signal.mean:.4g} (σ {signal.sigma:.3g}) since {dates[start].isoformat()}: "
                    f"{'CUSUM' if det.method == 'cusum' else 'z'} {last:.2f} > {limit:g}"
                    + (f" ({det.description})" if det.description else ""),
                )
            )  # fmt: skip
    return alerts, outcomes


def _excursion_start(statistic: FloatArray, limit: float) -> int:
    """First point of the run of signalling points that ends at the last point."""
    k = statistic.size - 1
    while k > 0 and statistic[k - 1] > limit:
        k -= 1
    return k


def segment_of(rule_segment: str) -> tuple[str, str]:
    """(dimension, segment) of a rule's ``segment`` field."""
    if rule_segment == ALL:
        return TOTAL, ALL
    dimension, _, name = rule_segment.partition("=")
    return dimension, name
