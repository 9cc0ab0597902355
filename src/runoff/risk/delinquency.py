"""Delinquency analytics (逾期率分析): overdue rates by count and balance, per bucket and M1+/M2+/M3+/M4+.

Whole-book work is a per-partition function returning partial sums (counts and fen, never ratios)
plus a merge that adds them; ratios come last, beside the counts and amounts they come from (a
closing book loses its good payers first, so a ratio can rise while the bad balance falls).

Conventions (``docs/book.md``, DESIGN.md glossary): buckets current, M1 (1–30 DPD), M2 (31–60),
M3 (61–90), M4+ (90+); **M1+** is any arrears (≥1 DPD), **M2+** is 30+ DPD (the 30+ figure lenders
publish), **M3+** is 61+ DPD and **M4+** is 90+ DPD (the NPL convention). Denominators are the open
loans (and their principal balance) at the month end; closed and charged-off rows are counted apart.

A book's **segments** (product, term, channel, region, risk grade, ...) come from the loans and
customers tables; :func:`attach_segments` joins them onto the performance rows once per partition.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import polars as pl

from runoff.errors import InvalidInput

OPEN_BUCKETS: tuple[str, ...] = ("current", "M1", "M2", "M3", "M4+")
"""Buckets of a loan still on the book, in order of severity."""

OVERDUE_BUCKETS: tuple[str, ...] = ("M1", "M2", "M3", "M4+")

BUCKET_KEYS: dict[str, str] = {"current": "current", "M1": "m1", "M2": "m2", "M3": "m3", "M4+": "m4plus"}
"""Column-name stem of each bucket."""

THRESHOLDS: dict[str, tuple[str, ...]] = {
    "m1plus": ("M1", "M2", "M3", "M4+"),
    "m2plus": ("M2", "M3", "M4+"),
    "m3plus": ("M3", "M4+"),
    "m4plus": ("M4+",),
}
"""M1+ (≥1 DPD), M2+ (30+ DPD), M3+ (61+ DPD), M4+ (90+ DPD): the buckets each threshold adds up."""

TOTAL = "total"
ALL = "all"
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Segment:
    """A way to cut the book (分群维度): where its value comes from and what it is called."""

    name: str
    table: str  # "loans" or "customers"
    column: str
    label_zh: str
    label_en: str


SEGMENTS: dict[str, Segment] = {
    s.name: s
    for s in (
        Segment("product", "loans", "product_id", "产品", "product"),
        Segment("method", "loans", "method", "还款方式", "repayment method"),
        Segment("term", "loans", "term_months", "期限(月)", "term (months)"),
        Segment("vintage", "loans", "vintage", "放款月", "vintage"),
        Segment("channel", "customers", "channel", "获客渠道", "channel"),
        Segment("region", "customers", "city_tier", "地区(城市等级)", "region (city tier)"),
        Segment("grade", "customers", "risk_grade", "风险等级", "risk grade"),
        Segment("income", "customers", "income_band", "月收入", "income band"),
    )
}
"""Every dimension the analytics can cut by; ``region`` is the customer's city tier (城市等级)."""

DEFAULT_DIMENSIONS: tuple[str, ...] = ("product", "term", "channel", "region", "grade")

PERFORMANCE_COLUMNS: tuple[str, ...] = (
    "loan_id",
    "customer_id",
    "month_end",
    "bucket",
    "principal_balance_fen",
    "overdue_principal_fen",
    "overdue_amount_fen",
    "charged_off_fen",
)
"""What :func:`delinquency_partition` reads from the performance table."""

SUM_COLUMNS: tuple[str, ...] = (
    "loans",
    "balance_fen",
    "overdue_principal_fen",
    "overdue_amount_fen",
    "charged_off_fen",
)


# --- input checks ------------------------------------------------------------------------------------------------


def column_names(frame: pl.LazyFrame | pl.DataFrame) -> list[str]:
    return frame.collect_schema().names() if isinstance(frame, pl.LazyFrame) else frame.columns


def require_columns(frame: pl.LazyFrame | pl.DataFrame, columns: Iterable[str], *, table: str) -> None:
    """A clear :class:`InvalidInput` naming the table and every column it lacks."""
    have = set(column_names(frame))
    missing = [c for c in columns if c not in have]
    if missing:
        raise InvalidInput(
            f"`{table}`: columns {missing} are missing; expected at least {sorted(set(columns))} "
            "(see docs/book.md for the table's schema)",
            code="risk.missing_columns",
            field=table,
            details={"missing": missing},
        )


def require_rows(frame: pl.DataFrame, *, table: str, what: str = "month-end rows") -> None:
    """A clear :class:`InvalidInput` when a table (or everything merged from it) is empty."""
    if frame.height == 0:
        raise InvalidInput(
            f"`{table}`: the table has no {what}; expected at least one "
            "(run `runoff generate` or `runoff import` to load a book)",
            code="risk.empty_table",
            field=table,
        )


def check_dimensions(dimensions: Iterable[str]) -> tuple[str, ...]:
    """The dimensions as a tuple, each one checked against :data:`SEGMENTS`."""
    out = tuple(dimensions)
    for d in out:
        if d not in SEGMENTS:
            raise InvalidInput(
                f"`by`: {d!r} is not a segment; expected one of {', '.join(SEGMENTS)}",
                code="risk.unknown_segment",
                field="by",
            )
    return out


def segment_column(dimension: str) -> str:
    """Name of the column :func:`attach_segments` adds for ``dimension``."""
    return f"seg_{dimension}"


# --- segments ----------------------------------------------------------------------------------------------------


def attach_segments(
    performance: pl.LazyFrame,
    *,
    loans: pl.LazyFrame | None,
    customers: pl.LazyFrame | None,
    dimensions: Sequence[str],
) -> pl.LazyFrame:
    """The performance rows with one string column ``seg_<dimension>`` per dimension (``unknown`` when absent).

    A missing loans or customers table (an imported tape without them) leaves its dimensions
    ``unknown`` rather than failing: the book-level figures still hold.
    """
    dims = check_dimensions(dimensions)
    out = performance
    for table, frame, key in (("loans", loans, "loan_id"), ("customers", customers, "customer_id")):
        wanted = [SEGMENTS[d] for d in dims if SEGMENTS[d].table == table]
        if not wanted:
            continue
        have = set(column_names(frame)) if frame is not None else set()
        present = [s for s in wanted if s.column in have]
        if frame is not None and present and key in have:
            cols = sorted({s.column for s in present})
            right = frame.select(pl.col(key), *[pl.col(c).cast(pl.String).alias(f"_{table}_{c}") for c in cols]).unique(
                subset=[key], keep="first"
            )
            out = out.join(right, on=key, how="left")
        for s in wanted:
            if frame is not None and s in present and key in have:
                expr = pl.col(f"_{table}_{s.column}").fill_null(UNKNOWN)
            else:
                expr = pl.lit(UNKNOWN)
            out = out.with_columns(expr.alias(segment_column(s.name)))
    helper = [c for c in column_names(out) if c.startswith(("_loans_", "_customers_"))]
    return out.drop(helper) if helper else out


def rollup(cube: pl.DataFrame, *, keys: Sequence[str], dimensions: Sequence[str], sums: Sequence[str]) -> pl.DataFrame:
    """Long partial sums per dimension from a cube grouped by ``keys`` × every segment column.

    One row per (dimension, segment, *keys); ``dimension == "total"`` carries the whole book
    (segment ``all``). Grouping once by all segments and rolling up is cheaper than one pass
    over the rows per dimension.
    """
    frames = [
        cube.group_by(list(keys))
        .agg([pl.col(c).sum() for c in sums])
        .select(pl.lit(TOTAL).alias("dimension"), pl.lit(ALL).alias("segment"), *keys, *sums)
    ]
    for d in dimensions:
        col = segment_column(d)
        frames.append(
            cube.group_by([col, *keys])
            .agg([pl.col(c).sum() for c in sums])
            .select(pl.lit(d).alias("dimension"), pl.col(col).alias("segment"), *keys, *sums)
        )
    return pl.concat(frames, how="vertical")


def merge_sums(parts: Sequence[pl.DataFrame], *, keys: Sequence[str], sums: Sequence[str]) -> pl.DataFrame:
    """Add the partial sums of every partition (empty partitions allowed)."""
    frames = [p for p in parts if p.height]
    if not frames:
        return parts[0].clear() if parts else pl.DataFrame()
    return pl.concat(frames, how="vertical").group_by(list(keys)).agg([pl.col(c).sum() for c in sums]).sort(keys)


# --- overdue rates -----------------------------------------------------------------------------------------------


def delinquency_partition(book: pl.LazyFrame, *, as_of: date, dimensions: Sequence[str] = ()) -> pl.DataFrame:
    """Partial sums of one partition: loans and fen by (dimension, segment, month end, bucket).

    ``book`` is the performance table with segment columns (:func:`attach_segments`); rows after
    ``as_of`` are left out. Sums: ``loans``, ``balance_fen`` (principal), ``overdue_principal_fen``,
    ``overdue_amount_fen`` and ``charged_off_fen``.
    """
    dims = check_dimensions(dimensions)
    require_columns(book, [*PERFORMANCE_COLUMNS, *(segment_column(d) for d in dims)], table="performance")
    keys = ["month_end", "bucket"]
    cube = (
        book.filter(pl.col("month_end") <= as_of)
        .group_by([*keys, *(segment_column(d) for d in dims)])
        .agg(
            pl.len().cast(pl.Int64).alias("loans"),
            pl.col("principal_balance_fen").sum().alias("balance_fen"),
            pl.col("overdue_principal_fen").sum(),
            pl.col("overdue_amount_fen").sum(),
            pl.col("charged_off_fen").sum(),
        )
        .collect()
    )
    return rollup(cube, keys=keys, dimensions=dims, sums=SUM_COLUMNS)


def merge_delinquency(parts: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """The book's sums by (dimension, segment, month end, bucket): the partitions' sums added."""
    return merge_sums(parts, keys=("dimension", "segment", "month_end", "bucket"), sums=SUM_COLUMNS)


def overdue_rates(sums: pl.DataFrame) -> pl.DataFrame:
    """Overdue rates by count and by balance, one row per (dimension, segment, month end).

    Columns: ``open_loans`` and ``open_balance_fen`` (the denominators); per bucket ``<b>_loans``,
    ``<b>_balance_fen``, ``<b>_count_rate``, ``<b>_balance_rate`` (b = current, m1, m2, m3, m4plus);
    the same four for the thresholds m1plus, m2plus, m3plus, m4plus; ``overdue_amount_fen``;
    ``charged_off_loans`` and ``charged_off_fen`` written off in the month. A rate is null when its
    denominator is zero.
    """
    require_columns(sums, ("dimension", "segment", "month_end", "bucket", *SUM_COLUMNS), table="delinquency sums")
    require_rows(sums, table="performance")
    keys = ["dimension", "segment", "month_end"]
    aggs: list[pl.Expr] = []
    for bucket, stem in BUCKET_KEYS.items():
        here = pl.col("bucket") == bucket
        aggs += [
            pl.col("loans").filter(here).sum().alias(f"{stem}_loans"),
            pl.col("balance_fen").filter(here).sum().alias(f"{stem}_balance_fen"),
        ]
    open_rows = pl.col("bucket").is_in(OPEN_BUCKETS)
    written = pl.col("bucket") == "charged-off"
    aggs += [
        pl.col("loans").filter(open_rows).sum().alias("open_loans"),
        pl.col("balance_fen").filter(open_rows).sum().alias("open_balance_fen"),
        pl.col("overdue_amount_fen").filter(open_rows).sum().alias("overdue_amount_fen"),
        pl.col("loans").filter(written).sum().alias("charged_off_loans"),
        pl.col("charged_off_fen").sum().alias("charged_off_fen"),
    ]
    wide = sums.group_by(keys).agg(aggs)
    wide = wide.with_columns(
        *[
            pl.sum_horizontal([pl.col(f"{BUCKET_KEYS[b]}_loans") for b in members]).alias(f"{name}_loans")
            for name, members in THRESHOLDS.items()
            if name != "m4plus"
        ],
        *[
            pl.sum_horizontal([pl.col(f"{BUCKET_KEYS[b]}_balance_fen") for b in members]).alias(f"{name}_balance_fen")
            for name, members in THRESHOLDS.items()
            if name != "m4plus"
        ],
    )
    stems = [*BUCKET_KEYS.values(), *(t for t in THRESHOLDS if t != "m4plus")]
    wide = wide.with_columns(
        *[_ratio(f"{s}_loans", "open_loans").alias(f"{s}_count_rate") for s in stems],
        *[_ratio(f"{s}_balance_fen", "open_balance_fen").alias(f"{s}_balance_rate") for s in stems],
    )
    return sort_segments(wide)


def _ratio(numerator: str, denominator: str) -> pl.Expr:
    den = pl.col(denominator)
    return pl.when(den > 0).then(pl.col(numerator) / den).otherwise(None)


def _order_segments(frame: pl.DataFrame) -> pl.DataFrame:
    """An ``_order`` column: total first, then the dimensions; numeric segments (terms) sort as numbers."""
    dim_rank = {TOTAL: 0, **{d: k + 1 for k, d in enumerate(SEGMENTS)}}
    return frame.with_columns(
        pl.col("dimension").replace_strict(dim_rank, default=len(dim_rank), return_dtype=pl.Int32).alias("_order"),
        pl.col("segment").str.zfill(6).alias("_segment_key"),
    ).with_columns(
        pl.when(pl.col("segment").str.contains(r"^\d+$"))
        .then(pl.col("_segment_key"))
        .otherwise(pl.col("segment"))
        .alias("_segment_key")
    )


def latest(rates: pl.DataFrame, *, as_of: date | None = None) -> pl.DataFrame:
    """The rows of ``rates`` at ``as_of`` (default: its last month end), segments in display order."""
    require_rows(rates, table="delinquency rates", what="rows")
    when = as_of or rates.get_column("month_end").max()
    out = rates.filter(pl.col("month_end") == when)
    return _order_segments(out).sort(["_order", "_segment_key"]).drop("_order", "_segment_key")


def sort_segments(frame: pl.DataFrame, *, then: Sequence[str] = ("month_end",)) -> pl.DataFrame:
    """``frame`` (with dimension and segment columns) sorted for display: total first, terms numerically,
    then by the columns ``then`` that it has."""
    extra = [c for c in then if c in frame.columns]
    return _order_segments(frame).sort(["_order", "_segment_key", *extra]).drop("_order", "_segment_key")


def book_as_of(performance: pl.LazyFrame, as_of: date | None = None) -> date:
    """The month end the analytics stand on: the last snapshot on or before ``as_of`` (default: the last one)."""
    require_columns(performance, ["month_end"], table="performance")
    frame = performance.select(pl.col("month_end"))
    if as_of is not None:
        frame = frame.filter(pl.col("month_end") <= as_of)
    when = frame.select(pl.col("month_end").max()).collect().item()
    if when is None:
        if as_of is not None:
            raise InvalidInput(
                f"`as_of`: {as_of.isoformat()} is before the book's first month end; expected a date on or after it",
                code="risk.as_of_out_of_range",
                field="as_of",
            )
        raise InvalidInput(
            "`performance`: the table has no month-end rows; expected at least one "
            "(run `runoff generate` or `runoff import` to load a book)",
            code="risk.empty_table",
            field="performance",
        )
    if not isinstance(when, date):  # pragma: no cover - schema guarantees a Date
        raise InvalidInput(f"`month_end`: expected dates, got {type(when).__name__}", field="month_end")
    return when
