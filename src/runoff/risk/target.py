"""The default target (违约定义): did the customer reach 90+ DPD (or a write-off) within 12 months after D?

Configurable: the DPD threshold, the horizon, whether a write-off counts, and which loans count — the
loans active at the observation date (``observed``, the exposure a PD is applied to) or every loan of the
customer including new drawings (``all``). Customers already in default at D are excluded from development
samples (they are not a prediction). The target reads the months after D by design; the features never do.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from runoff.calendar import add_months
from runoff.errors import InvalidInput
from runoff.risk.features import observation_month_end


class TargetDefinition(BaseModel):
    """What counts as a default: ``dpd_threshold``+ DPD within ``horizon_months`` month ends after D."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dpd_threshold: int = Field(default=90, ge=1, le=360, description="days past due that count as default")
    horizon_months: int = Field(default=12, ge=1, le=36, description="months after the observation date")
    include_charge_off: bool = Field(default=True, description="a write-off (核销) in the window is a default")
    loans: Literal["observed", "all"] = Field(
        default="observed", description="loans active at D only, or also loans drawn later"
    )
    exclude_defaulted: bool = Field(default=True, description="drop customers already in default at D")

    def window(self, as_of: date) -> tuple[date, date]:
        """The outcome window: month ends after the observation month end, up to and including the last."""
        obs = observation_month_end(as_of)
        return obs, add_months(obs, self.horizon_months, anchor_day=31)

    def describe(self) -> str:
        what = f"{self.dpd_threshold}+ DPD" + (" or write-off" if self.include_charge_off else "")
        return f"{what} within {self.horizon_months} months ({self.loans} loans)"


def _lazy(frame: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    return frame.lazy() if isinstance(frame, pl.DataFrame) else frame


def default_flags(
    performance: pl.DataFrame | pl.LazyFrame,
    *,
    as_of: date,
    definition: TargetDefinition | None = None,
) -> pl.DataFrame:
    """Per customer with an active loan at D: ``bad`` (1/0) and the first month end it defaulted (or null)."""
    d = definition or TargetDefinition()
    obs, end = d.window(as_of)
    perf = _lazy(performance)
    observed = perf.filter((pl.col("month_end") == obs) & (pl.col("status") == "active"))
    population = observed.select("customer_id").unique()
    after = perf.filter((pl.col("month_end") > obs) & (pl.col("month_end") <= end))
    if d.loans == "observed":
        after = after.join(observed.select("loan_id"), on="loan_id", how="semi")
    hit = pl.col("dpd") >= d.dpd_threshold
    if d.include_charge_off:
        hit = hit | (pl.col("bucket") == "charged-off")
    first = after.filter(hit).group_by("customer_id").agg(pl.col("month_end").min().alias("default_month_end"))
    return (
        population.join(first, on="customer_id", how="left")
        .with_columns(pl.col("default_month_end").is_not_null().cast(pl.Int8).alias("bad"))
        .select("customer_id", "bad", "default_month_end")
        .sort("customer_id")
        .collect()
    )


def check_window(*, as_of: date, last_month_end: date | None, definition: TargetDefinition) -> None:
    """A clear error when the data stop before the outcome window ends (the target would be incomplete)."""
    obs, end = definition.window(as_of)
    if last_month_end is None:
        raise InvalidInput("`performance`: the table is empty; expected month-end rows to build the target")
    if last_month_end < end:
        latest = add_months(last_month_end, -definition.horizon_months, anchor_day=31)
        raise InvalidInput(
            f"`observation`: {obs.isoformat()} needs performance up to {end.isoformat()} for a "
            f"{definition.horizon_months}-month outcome, but the data end at {last_month_end.isoformat()}; "
            f"expected an observation date on or before {latest.isoformat()}",
            field="observation",
        )


def attach_target(features: pl.DataFrame, flags: pl.DataFrame, *, definition: TargetDefinition) -> pl.DataFrame:
    """Features joined with ``bad``; customers in default at D dropped when the definition says so."""
    out = features.join(flags.select("customer_id", "bad"), on="customer_id", how="left").with_columns(
        pl.col("bad").fill_null(0).cast(pl.Int8)
    )
    if definition.exclude_defaulted and "dpd_now" in out.columns:
        out = out.filter(pl.col("dpd_now").fill_null(0) < definition.dpd_threshold)
    return out
