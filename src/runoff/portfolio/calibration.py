"""Delinquency figures of a book, side by side with the published ranges the generator is calibrated to.

The ranges come from ``shared/research/credit-models.md`` §4 (Qifu, Lexin, Ant, JD disclosures; see
``docs/book.md``). Each figure is computed per partition as sums of counts and fen amounts
(:func:`calibration_partition`) and merged by adding them (:func:`merge_calibration`); ratios come
last, reported with their numerators and denominators.

* **day-1 delinquency (D1)**: share of amounts falling due on loans current at the previous month end
  that were not paid on the due date (paid late within the month, or still unpaid at the month end);
* **cured within 30 days**: share of those D1 amounts paid within 30 days (late in the month, or the
  M1 borrower paid the missed installment by the next bill date);
* **current → 30 DPD**: share of those amounts that reached 30+ DPD (M2 at the next month end);
* **90+ ratio**: principal in M4+ (91–180 DPD) over open principal at a month end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

PUBLISHED_RANGES: dict[str, tuple[float, float]] = {
    "d1_rate": (0.04, 0.06),  # Qifu D1 5.5 % at a five-year high (Q3 2025); placeholder ≈ 5 %
    "cured_30d_rate": (0.85, 0.89),  # Qifu 30-day collection 85.7–88.1 %
    "to_30dpd_rate": (0.006, 0.010),  # derived D1 × (1 − cure30); Lexin FPD30 < 1 %
    "m4plus_ratio": (0.010, 0.035),  # 90+ DPD of balance: Ant 1.05 %, JD 1.65 %, Lexin 1.84 %, Qifu 2.09–3.4 %
}
"""Calibration targets: (low, high) of each figure in normal times."""

_OPEN = ["current", "M1", "M2", "M3", "M4+"]


def calibration_partition(performance: pl.LazyFrame, payments: pl.LazyFrame) -> pl.DataFrame:
    """Per month end: amounts due from current loans, D1, cured within 30 days, reaching 30 DPD, balances."""
    late = (
        payments.filter(pl.col("kind") == "late")
        .select("loan_id", pl.col("paid_on").dt.month_end().alias("month_end"))
        .unique()
        .with_columns(pl.lit(True).alias("paid_late"))
    )
    perf = (
        performance.select("loan_id", "month_end", "bucket", "due_fen", "principal_balance_fen")
        .sort("loan_id", "month_end")
        .with_columns(
            pl.col("bucket").shift(1).over("loan_id").alias("prev_bucket"),
            pl.col("bucket").shift(-1).over("loan_id").alias("next_bucket"),
        )
        .join(late, on=["loan_id", "month_end"], how="left")
        .with_columns(pl.col("paid_late").fill_null(False))
    )
    last = pl.col("month_end").max()
    from_current = (pl.col("prev_bucket") == "current") & (pl.col("due_fen") > 0)
    missed = from_current & (pl.col("bucket") == "M1")
    late_in_month = from_current & pl.col("paid_late") & (pl.col("bucket") != "M1")
    d1 = missed | late_in_month
    cured = late_in_month | (missed & pl.col("next_bucket").is_in(["current", "M1", "closed"]))
    to_30 = missed & (pl.col("next_bucket") == "M2")
    has_next = pl.col("month_end") < last

    def fen(cond: pl.Expr) -> pl.Expr:
        return pl.col("due_fen").filter(cond).sum()

    return (
        perf.with_columns(has_next.alias("has_next"))
        .group_by("month_end")
        .agg(
            fen(from_current).alias("due_current_fen"),
            fen(d1).alias("d1_fen"),
            fen(from_current & pl.col("has_next")).alias("due_current_seen_fen"),
            fen(d1 & pl.col("has_next")).alias("d1_seen_fen"),
            fen(cured & pl.col("has_next")).alias("cured_30d_fen"),
            fen(to_30 & pl.col("has_next")).alias("to_30dpd_fen"),
            pl.col("principal_balance_fen").filter(pl.col("bucket").is_in(_OPEN)).sum().alias("balance_fen"),
            pl.col("principal_balance_fen").filter(pl.col("bucket") == "M4+").sum().alias("m4plus_fen"),
            pl.col("principal_balance_fen")
            .filter(pl.col("bucket").is_in(["M2", "M3", "M4+"]))
            .sum()
            .alias("m2plus_fen"),
            pl.col("bucket").is_in(_OPEN).sum().alias("open_loans"),
            (pl.col("bucket") == "M4+").sum().alias("m4plus_loans"),
        )
        .collect()
    )


@dataclass(frozen=True, slots=True)
class Calibration:
    """The book's delinquency figures by month and over the whole history."""

    by_month: pl.DataFrame

    def figures(self) -> dict[str, dict[str, Any]]:
        """Each figure with numerator, denominator, ratio and the published range."""
        m = self.by_month
        tail = m.tail(12)

        def total(col: str, frame: pl.DataFrame = m) -> int:
            return int(frame.get_column(col).sum())

        out: dict[str, dict[str, Any]] = {}
        for name, num, den, frame in (
            ("d1_rate", "d1_fen", "due_current_fen", m),
            ("cured_30d_rate", "cured_30d_fen", "d1_seen_fen", m),
            ("to_30dpd_rate", "to_30dpd_fen", "due_current_seen_fen", m),
            ("m4plus_ratio", "m4plus_fen", "balance_fen", tail),
        ):
            n, d = total(num, frame), total(den, frame)
            low, high = PUBLISHED_RANGES[name]
            ratio = n / d if d else None
            out[name] = {
                "numerator_fen": n,
                "denominator_fen": d,
                "ratio": ratio,
                "published_range": [low, high],
                "within": ratio is not None and low <= ratio <= high,
            }
        out["m4plus_ratio"]["months"] = tail.height
        stock = total("m2plus_fen", tail)
        out["m4plus_over_m2plus"] = {
            "numerator_fen": total("m4plus_fen", tail),
            "denominator_fen": stock,
            "ratio": total("m4plus_fen", tail) / stock if stock else None,
            "published_range": None,
            "note": "30+ → 90+ stock conversion; Ant end-2019 ≈ 0.67",
        }
        return out


def merge_calibration(parts: Sequence[pl.DataFrame]) -> Calibration:
    """Add the per-partition sums by month end."""
    frames = [p for p in parts if p.height]
    if not frames:
        return Calibration(by_month=pl.DataFrame())
    merged = pl.concat(frames).group_by("month_end").agg(pl.all().sum()).sort("month_end")
    ratios = merged.with_columns(
        (pl.col("d1_fen") / pl.col("due_current_fen")).alias("d1_rate"),
        (pl.col("cured_30d_fen") / pl.col("d1_seen_fen")).alias("cured_30d_rate"),
        (pl.col("to_30dpd_fen") / pl.col("due_current_seen_fen")).alias("to_30dpd_rate"),
        (pl.col("m4plus_fen") / pl.col("balance_fen")).alias("m4plus_ratio"),
    )
    return Calibration(by_month=ratios)
