"""What is in the book (资产概况): counts, balances by bucket, product and vintage, dates.

Computed per partition (:func:`summarise_partition`, Polars lazy scans in, small frames of sums
out) and merged (:func:`merge_summaries`) by adding the sums, so the answer is the same whether the
partitions ran here or on a cluster. Ratios are computed after the merge, always beside the counts
and amounts they come from (a closing book loses its good payers first: the denominator shrinks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl

from runoff.portfolio.schemas import BUCKETS

PartialSummary = dict[str, pl.DataFrame]

_OPEN_BUCKETS = ("current", "M1", "M2", "M3", "M4+")


def summarise_partition(
    *, loans: pl.LazyFrame | None, performance: pl.LazyFrame | None, row_counts: Mapping[str, int]
) -> PartialSummary:
    """Sums for one partition: table sizes, originations, and month-end balances by bucket × product × vintage."""
    out: PartialSummary = {"counts": pl.DataFrame({"table": list(row_counts), "rows": list(row_counts.values())})}
    if loans is not None:
        out["originations"] = (
            loans.group_by("vintage", "product_id", "method")
            .agg(
                pl.len().alias("loans"),
                pl.col("principal_fen").sum().alias("principal_fen"),
                pl.col("originated_on").min().alias("first_originated_on"),
                pl.col("originated_on").max().alias("last_originated_on"),
            )
            .collect()
        )
        if performance is not None:
            out["month_end"] = (
                performance.join(loans.select("loan_id", "product_id", "vintage"), on="loan_id", how="left")
                .group_by("month_end", "bucket", "product_id", "vintage")
                .agg(
                    pl.len().alias("loans"),
                    pl.col("principal_balance_fen").sum().alias("balance_fen"),
                    pl.col("overdue_amount_fen").sum().alias("overdue_fen"),
                    pl.col("charged_off_fen").sum().alias("charged_off_fen"),
                    (
                        pl.col("paid_principal_fen")
                        + pl.col("paid_interest_fen")
                        + pl.col("paid_fee_fen")
                        + pl.col("paid_penalty_fen")
                    )
                    .sum()
                    .alias("collected_fen"),
                )
                .collect()
            )
    return out


def merge_summaries(parts: Sequence[PartialSummary]) -> BookSummary:
    """Add the partial sums of every partition into the book's summary."""

    def combined(key: str, by: list[str], sums: list[str]) -> pl.DataFrame | None:
        frames = [p[key] for p in parts if key in p and p[key].height]
        if not frames:
            return None
        return pl.concat(frames).group_by(by).agg([pl.col(c).sum() for c in sums]).sort(by)

    counts = combined("counts", ["table"], ["rows"])
    originations_raw = [p["originations"] for p in parts if "originations" in p and p["originations"].height]
    originations = (
        pl.concat(originations_raw)
        .group_by("vintage", "product_id", "method")
        .agg(
            pl.col("loans").sum(),
            pl.col("principal_fen").sum(),
            pl.col("first_originated_on").min(),
            pl.col("last_originated_on").max(),
        )
        .sort("vintage", "product_id")
        if originations_raw
        else None
    )
    month_end = combined(
        "month_end",
        ["month_end", "bucket", "product_id", "vintage"],
        ["loans", "balance_fen", "overdue_fen", "charged_off_fen", "collected_fen"],
    )
    return BookSummary(
        row_counts={r["table"]: int(r["rows"]) for r in counts.to_dicts()} if counts is not None else {},
        originations=originations,
        month_end=month_end,
    )


@dataclass(frozen=True, slots=True)
class BookSummary:
    """The merged summary; the views (`by_bucket`, `by_product`, ...) are at the book's last month end."""

    row_counts: dict[str, int]
    originations: pl.DataFrame | None
    month_end: pl.DataFrame | None

    @property
    def last_month_end(self) -> date | None:
        if self.month_end is None:
            return None
        value = self.month_end.get_column("month_end").max()
        return value if isinstance(value, date) else None

    @property
    def first_month_end(self) -> date | None:
        if self.month_end is None:
            return None
        value = self.month_end.get_column("month_end").min()
        return value if isinstance(value, date) else None

    def _last(self) -> pl.DataFrame:
        assert self.month_end is not None
        return self.month_end.filter(pl.col("month_end") == self.last_month_end)

    def by_bucket(self) -> pl.DataFrame:
        """Loans and principal by delinquency bucket at the last month end, with the share of open balance."""
        if self.month_end is None:
            return pl.DataFrame(schema={"bucket": pl.String, "loans": pl.UInt32, "balance_fen": pl.Int64})
        frame = (
            self._last()
            .group_by("bucket")
            .agg(pl.col("loans").sum(), pl.col("balance_fen").sum(), pl.col("charged_off_fen").sum())
        )
        order = pl.DataFrame({"bucket": list(BUCKETS), "_order": list(range(len(BUCKETS)))})
        open_balance = frame.filter(pl.col("bucket").is_in(_OPEN_BUCKETS)).get_column("balance_fen").sum()
        return (
            order.join(frame, on="bucket", how="left")
            .sort("_order")
            .drop("_order")
            .fill_null(0)
            .with_columns((pl.col("balance_fen") / max(open_balance, 1)).alias("share_of_balance"))
        )

    def by_product(self) -> pl.DataFrame:
        """Open loans and balance by product at the last month end, with the 90+ (M4+) balance."""
        if self.month_end is None or self.originations is None:
            return pl.DataFrame()
        last = self._last().filter(pl.col("bucket").is_in(_OPEN_BUCKETS))
        methods = self.originations.select("product_id", "method").unique()
        orig = self.originations.group_by("product_id").agg(
            pl.col("loans").sum().alias("originated"), pl.col("principal_fen").sum().alias("originated_fen")
        )
        return (
            last.group_by("product_id")
            .agg(
                pl.col("loans").sum().alias("open_loans"),
                pl.col("balance_fen").sum(),
                pl.col("balance_fen").filter(pl.col("bucket") == "M4+").sum().alias("m4plus_fen"),
            )
            .join(orig, on="product_id", how="full", coalesce=True)
            .join(methods, on="product_id", how="left")
            .fill_null(0)
            .with_columns((pl.col("m4plus_fen") / pl.col("balance_fen").clip(lower_bound=1)).alias("m4plus_ratio"))
            .select(
                "product_id",
                "method",
                "originated",
                "originated_fen",
                "open_loans",
                "balance_fen",
                "m4plus_fen",
                "m4plus_ratio",
            )
            .sort("product_id")
        )

    def by_vintage(self) -> pl.DataFrame:
        """Per origination month: loans and principal lent, open balance now, 90+ now, written off to date."""
        if self.month_end is None or self.originations is None:
            return pl.DataFrame()
        orig = self.originations.group_by("vintage").agg(
            pl.col("loans").sum().alias("originated"), pl.col("principal_fen").sum().alias("originated_fen")
        )
        now = (
            self._last()
            .filter(pl.col("bucket").is_in(_OPEN_BUCKETS))
            .group_by("vintage")
            .agg(
                pl.col("loans").sum().alias("open_loans"),
                pl.col("balance_fen").sum(),
                pl.col("balance_fen").filter(pl.col("bucket") == "M4+").sum().alias("m4plus_fen"),
            )
        )
        written = self.month_end.group_by("vintage").agg(pl.col("charged_off_fen").sum())
        return (
            orig.join(now, on="vintage", how="left")
            .join(written, on="vintage", how="left")
            .fill_null(0)
            .with_columns((pl.col("charged_off_fen") / pl.col("originated_fen").clip(lower_bound=1)).alias("loss_rate"))
            .sort("vintage")
        )

    def by_month(self) -> pl.DataFrame:
        """The book over time: open loans, balance, 30+ and 90+ balance and their ratios, write-offs."""
        if self.month_end is None:
            return pl.DataFrame()
        open_ = pl.col("bucket").is_in(_OPEN_BUCKETS)
        return (
            self.month_end.group_by("month_end")
            .agg(
                pl.col("loans").filter(open_).sum().alias("open_loans"),
                pl.col("balance_fen").filter(open_).sum(),
                pl.col("balance_fen").filter(pl.col("bucket").is_in(["M2", "M3", "M4+"])).sum().alias("m2plus_fen"),
                pl.col("balance_fen").filter(pl.col("bucket") == "M4+").sum().alias("m4plus_fen"),
                pl.col("charged_off_fen").sum(),
                pl.col("collected_fen").sum(),
            )
            .with_columns(
                (pl.col("m2plus_fen") / pl.col("balance_fen").clip(lower_bound=1)).alias("m2plus_ratio"),
                (pl.col("m4plus_fen") / pl.col("balance_fen").clip(lower_bound=1)).alias("m4plus_ratio"),
            )
            .sort("month_end")
        )

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain data (the ``--json`` shape)."""
        orig = self.originations
        first = orig.get_column("first_originated_on").min() if orig is not None else None
        last = orig.get_column("last_originated_on").max() if orig is not None else None
        return {
            "row_counts": self.row_counts,
            "originated": {
                "loans": int(orig.get_column("loans").sum()) if orig is not None else 0,
                "principal_fen": int(orig.get_column("principal_fen").sum()) if orig is not None else 0,
                "first_originated_on": first,
                "last_originated_on": last,
            },
            "first_month_end": self.first_month_end,
            "as_of": self.last_month_end,
            "by_bucket": self.by_bucket().to_dicts(),
            "by_product": self.by_product().to_dicts(),
            "by_vintage": self.by_vintage().to_dicts(),
            "by_month": self.by_month().to_dicts(),
        }
