"""Delinquency analytics (逾期率分析): overdue rates by count and balance, per bucket and M1+/M2+/M3+/M4+.

Whole-book work is a per-partition function returning partial sums (counts and fen, never ratios)
plus a merge that adds them; ratios come last, beside the counts and amounts they come from (a
closing book loses its good payers first, so a ratio can rise while the bad balance falls).

Conventions (``docs/book.md``, DESIGN.md glossary): buckets current, M1 (1–30 DPD), M2 (31–60),
M3 (61–90), M4+ (90+); **M1+** is any arrears (≥1 DPD), **M2+** is 30+ DPD (the 30+ figure lenders
publish), **M3+** is 61+ DPD and **M4+** is 90+ DPD (the NPL convention). Denominators are the open
loans (and their principal balance) at the month end; closed and charged-off rows are counted apart.

A book's **segments** (product, term, channel, region, risk grade, ...) come from the loans and
customers tables. :func:`prepare_book` reads a partition once and codes it (states, buckets,
segments and customers as small integers), so each metric is a few low-cardinality group-bys run
together; segment names come back after grouping.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
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

SUM_COLUMNS: tuple[str, ...] = (
    "loans",
    "balance_fen",
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


# --- states ------------------------------------------------------------------------------------------------------

CYCLE_STATES: tuple[str, ...] = ("current", "M1", "M2", "M3", "M4", "M5", "M6", "M7+")
"""Open states by delinquency cycle (账期): month ends the oldest unpaid installment has been past due."""

EXIT_STATES: tuple[str, ...] = ("paid-off", "prepaid", "charged-off")
"""States of a loan that left the book: repaid on schedule (结清), settled early (提前结清), written off (核销)."""

UNOBSERVED = "unobserved"
STATES: tuple[str, ...] = (*CYCLE_STATES, *EXIT_STATES, UNOBSERVED)
"""Every state, in code order (a state's code is its index)."""

ROW_BUCKETS: tuple[str, ...] = ("current", "M1", "M2", "M3", "M4+", "charged-off", "closed")
"""The performance table's buckets, in code order."""

STATE_ROW_BUCKET: tuple[int, ...] = (0, 1, 2, 3, 4, 4, 4, 4, 6, 6, 5, 6)
"""Bucket code of each state code (M4…M7+ are M4+; paid off and prepaid rows are ``closed``)."""

PARTITION_COLUMNS: tuple[str, ...] = (
    "loan_id",
    "customer_id",
    "month_end",
    "mob",
    "status",
    "bucket",
    "dpd",
    "principal_balance_fen",
    "overdue_amount_fen",
    "charged_off_fen",
    "due_fen",
    "paid_principal_fen",
    "paid_interest_fen",
    "paid_fee_fen",
    "paid_penalty_fen",
)
"""What :func:`prepare_book` reads from the performance table."""


def state_code(cycles: pl.Expr | None = None) -> pl.Expr:
    """The state code (index into :data:`STATES`) of each performance row, as ``UInt8``.

    Buckets current, M1–M3 are cycles 0–3; an M4+ row's cycle is counted from the month of its
    oldest unpaid due date (``month_end − dpd``): the 4th month end past due is M4, and so on to M7+.
    Closed rows take their exit from ``status`` (paid-off, early-settled → prepaid, charged-off).
    ``cycles`` may give the month ends past due already computed (:func:`prepare_book` looks them up).
    """
    if cycles is None:
        me, dpd = pl.col("month_end"), pl.col("dpd")
        oldest_due = me - pl.duration(days=dpd)
        cycles = (
            (me.dt.year().cast(pl.Int32) * 12 + me.dt.month().cast(pl.Int32))
            - (oldest_due.dt.year().cast(pl.Int32) * 12 + oldest_due.dt.month().cast(pl.Int32))
            + 1
        )
    status, bucket = pl.col("status"), pl.col("bucket")
    code = (
        pl.when(status == "paid-off")
        .then(pl.lit(STATES.index("paid-off")))
        .when(status == "early-settled")
        .then(pl.lit(STATES.index("prepaid")))
        .when((status == "charged-off") | (bucket == "charged-off"))
        .then(pl.lit(STATES.index("charged-off")))
        .when(bucket == "closed")
        .then(pl.lit(STATES.index("paid-off")))
        .when(bucket == "current")
        .then(pl.lit(0))
        .when(bucket == "M1")
        .then(pl.lit(1))
        .when(bucket == "M2")
        .then(pl.lit(2))
        .when(bucket == "M3")
        .then(pl.lit(3))
        .otherwise(cycles.clip(4, 7))
    )
    return code.cast(pl.UInt8)


def _months_of_days(days: npt.NDArray[np.int64]) -> tuple[int, npt.NDArray[np.int32]]:
    """A lookup from day number (since 1970-01-01) to month index over ``days``' range: a gather per row
    instead of a calendar decomposition."""
    lo, hi = int(days.min()), int(days.max())
    span = np.arange(lo, hi + 1).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    return lo, (span + 1970 * 12).astype(np.int32)


def month_index(d: pl.Expr) -> pl.Expr:
    """Months since year 0 (``year × 12 + month − 1``) of a date."""
    return d.dt.year().cast(pl.Int32) * 12 + d.dt.month().cast(pl.Int32) - 1


# --- the prepared partition --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartitionBook:
    """One partition's performance rows up to ``as_of``, coded for fast grouping.

    ``rows`` is sorted by (loan_id, month_end) and holds: ``loan_id``, ``customer_id``, ``month_end``,
    ``month`` (:func:`month_index`), ``mob``, ``state`` (code into :data:`STATES`), ``bucket`` (code
    into :data:`ROW_BUCKETS`), ``dpd``, ``balance_fen`` (principal), ``overdue_amount_fen``, ``charged_off_fen``, ``due_fen``, ``paid_fen`` (everything received in the month),
    ``customer`` (dense customer number within the partition) and ``combo``: the loan's combination
    of segments, a row of ``combos`` (``combo`` and one column of segment names per dimension).
    Grouping by ``combo`` once and rolling up per dimension is cheaper than one pass per dimension.
    """

    rows: pl.DataFrame
    as_of: date
    dimensions: tuple[str, ...]
    combos: pl.DataFrame
    customer_ids: pl.Series  # customer_id of each dense ``customer`` number

    @property
    def customers(self) -> int:
        return self.customer_ids.len()

    def at(self, as_of: date) -> PartitionBook:
        """The same book seen at an earlier month end: only its rows up to ``as_of``."""
        return PartitionBook(
            rows=self.rows.filter(pl.col("month_end") <= as_of),
            as_of=as_of,
            dimensions=self.dimensions,
            combos=self.combos,
            customer_ids=self.customer_ids,
        )

    def segment(self, dimension: str) -> pl.Expr:
        """Each row's segment name in ``dimension`` (from its ``combo``)."""
        return pl.col("combo").replace_strict(
            self.combos.get_column("combo"), self.combos.get_column(dimension), return_dtype=pl.String
        )


def _segment_codes(
    frame: pl.LazyFrame | None, *, key: str, wanted: Sequence[Segment], row_keys: pl.Series
) -> dict[str, tuple[pl.Series, tuple[str, ...]]]:
    """Per dimension: the code of each of ``row_keys`` and the dictionary of names, looked up by ``key`` in ``frame``."""
    out: dict[str, tuple[pl.Series, tuple[str, ...]]] = {}
    if not wanted:
        return out
    have = set(column_names(frame)) if frame is not None else set()
    if frame is None or key not in have:
        for s in wanted:
            out[s.name] = (pl.Series(np.zeros(row_keys.len(), dtype=np.uint32)), (UNKNOWN,))
        return out
    present = [s for s in wanted if s.column in have]
    table = frame.select(
        pl.col(key), *[pl.col(c).cast(pl.String) for c in sorted({s.column for s in present})]
    ).collect()
    if not table.select((pl.col(key).diff() > 0).fill_null(True).all()).item():  # tables are written sorted
        table = table.unique(subset=[key], keep="first").sort(key)
    ids = table.get_column(key)
    if ids.len():
        at = ids.search_sorted(row_keys).cast(pl.Int64).clip(0, ids.len() - 1)
        found = (ids.gather(at) == row_keys).fill_null(False)
    else:
        at, found = pl.Series(np.zeros(row_keys.len(), dtype=np.int64)), pl.Series(np.zeros(row_keys.len(), bool))
    for s in wanted:
        if s not in present or not ids.len():
            out[s.name] = (pl.Series(np.zeros(row_keys.len(), dtype=np.uint32)), (UNKNOWN,))
            continue
        names = table.get_column(s.column).fill_null(UNKNOWN)
        values = tuple(sorted({*names.unique().to_list(), UNKNOWN}))
        codes = names.replace_strict(list(values), list(range(len(values))), return_dtype=pl.UInt32)
        unknown = values.index(UNKNOWN)
        row_codes = pl.select(
            pl.when(found).then(codes.gather(at)).otherwise(pl.lit(unknown, pl.UInt32)).alias(s.name)
        ).to_series()
        out[s.name] = (row_codes, values)
    return out


def prepare_book(
    performance: pl.LazyFrame | pl.DataFrame,
    *,
    loans: pl.LazyFrame | pl.DataFrame | None = None,
    customers: pl.LazyFrame | pl.DataFrame | None = None,
    dimensions: Sequence[str] = (),
    as_of: date,
) -> PartitionBook:
    """Read one partition's performance rows up to ``as_of`` and code them (states, segments, customers).

    Segments come from the loans and customers tables (looked up by id); a missing table, column or
    row leaves the segment ``unknown`` rather than failing: the book-level figures still hold. The
    partition must hold every row of its loans and customers (partitions hold whole customers).
    """
    dims = check_dimensions(dimensions)
    perf = performance.lazy()
    require_columns(perf, PARTITION_COLUMNS, table="performance")
    rows = (
        perf.filter(pl.col("month_end") <= as_of)
        .select(
            pl.col("loan_id").cast(pl.Int64),
            pl.col("customer_id").cast(pl.Int64),
            "month_end",
            pl.col("mob").cast(pl.Int32),
            "status",
            "bucket",
            pl.col("dpd").cast(pl.Int32),
            pl.col("principal_balance_fen").alias("balance_fen"),
            "overdue_amount_fen",
            "charged_off_fen",
            "due_fen",
            (
                pl.col("paid_principal_fen")
                + pl.col("paid_interest_fen")
                + pl.col("paid_fee_fen")
                + pl.col("paid_penalty_fen")
            ).alias("paid_fen"),
        )
        .collect()
    )
    if rows.height:
        days = rows.get_column("month_end").to_physical().to_numpy().astype(np.int64)
        oldest = days - np.maximum(rows.get_column("dpd").to_numpy(), 0)
        lo, months = _months_of_days(np.asarray([min(int(oldest.min()), int(days.min())), int(days.max())]))
        month, oldest_month = months[days - lo], months[oldest - lo]
        rows = rows.with_columns(pl.Series("month", month), pl.Series("_cycles", month - oldest_month + 1))
    else:
        rows = rows.with_columns(pl.lit(0, pl.Int32).alias("month"), pl.lit(0, pl.Int32).alias("_cycles"))
    rows = rows.with_columns(state_code(pl.col("_cycles")).alias("state")).drop("status", "bucket", "_cycles")
    ordered = rows.select(
        (
            (pl.col("loan_id").diff() > 0)
            | ((pl.col("loan_id").diff() == 0) & (pl.col("month_end").diff().dt.total_days() > 0))
        )
        .fill_null(True)
        .all()
    ).item()
    if not ordered:
        rows = rows.sort("loan_id", "month_end")
    bucket_of_state = np.asarray(STATE_ROW_BUCKET, dtype=np.uint8)
    rows = rows.with_columns(pl.Series("bucket", bucket_of_state[rows.get_column("state").to_numpy()]))

    # Look segments up once per loan (rows are sorted by loan), then spread them over the loan's rows.
    first_row = (rows.get_column("loan_id") != rows.get_column("loan_id").shift(1)).fill_null(True)
    run = (first_row.cast(pl.Int64).cum_sum() - 1).to_numpy()
    loan_ids, loan_customers = (
        rows.get_column("loan_id").filter(first_row),
        rows.get_column("customer_id").filter(first_row),
    )
    loan_dims = [SEGMENTS[d] for d in dims if SEGMENTS[d].table == "loans"]
    cust_dims = [SEGMENTS[d] for d in dims if SEGMENTS[d].table == "customers"]
    codes = {
        **_segment_codes(
            loans.lazy() if loans is not None else None, key="loan_id", wanted=loan_dims, row_keys=loan_ids
        ),
        **_segment_codes(
            customers.lazy() if customers is not None else None,
            key="customer_id",
            wanted=cust_dims,
            row_keys=loan_customers,
        ),
    }
    customer_ids, dense = np.unique(loan_customers.to_numpy(), return_inverse=True)
    combo_codes, combos = _combinations(codes, dims, loan_ids.len())
    rows = rows.with_columns(
        pl.Series("customer", dense.astype(np.uint32)[run]), pl.Series("combo", combo_codes.astype(np.uint32)[run])
    )
    return PartitionBook(
        rows=rows,
        as_of=as_of,
        dimensions=dims,
        combos=combos,
        customer_ids=pl.Series("customer_id", customer_ids, dtype=pl.Int64),
    )


def _combinations(
    codes: dict[str, tuple[pl.Series, tuple[str, ...]]], dims: tuple[str, ...], n_loans: int
) -> tuple[npt.NDArray[np.int64], pl.DataFrame]:
    """Each loan's combination number and the table of combinations (``combo`` and a name per dimension)."""
    if not dims:
        return np.zeros(n_loans, dtype=np.int64), pl.DataFrame({"combo": pl.Series([0], dtype=pl.UInt32)})
    columns = np.column_stack([codes[d][0].to_numpy().astype(np.int64) for d in dims])
    sizes = [len(codes[d][1]) for d in dims]
    if float(np.prod(np.asarray(sizes, dtype=np.float64))) < 2.0**62:  # mixed-radix key: one sort of integers
        key = np.zeros(n_loans, dtype=np.int64)
        for k, size in enumerate(sizes):
            key = key * size + columns[:, k]
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    else:
        _, first, inverse = np.unique(columns, axis=0, return_index=True, return_inverse=True)
    table = pl.DataFrame(
        {
            "combo": pl.Series(np.arange(first.size), dtype=pl.UInt32),
            **{d: pl.Series(list(codes[d][1]), dtype=pl.String).gather(columns[first, k]) for k, d in enumerate(dims)},
        }
    )
    return inverse.reshape(-1).astype(np.int64), table


def grouped_sums(
    book: PartitionBook, frame: pl.LazyFrame, *, keys: Sequence[str], aggs: Sequence[pl.Expr], sums: Sequence[str]
) -> pl.DataFrame:
    """Long sums per dimension: one row per (dimension, segment, *keys); ``total``/``all`` is the whole book.

    One group-by over (keys, combination of segments), then a small roll-up per dimension.
    """
    cube = frame.group_by([*keys, "combo"]).agg(aggs).collect()
    totals = [pl.col(c).sum() for c in sums]
    frames = [
        cube.group_by(list(keys))
        .agg(totals)
        .select(pl.lit(TOTAL).alias("dimension"), pl.lit(ALL).alias("segment"), *keys, *sums)
    ]
    for d in book.dimensions:
        named = cube.join(book.combos.select("combo", pl.col(d).alias("segment")), on="combo", how="left")
        frames.append(
            named.group_by(["segment", *keys]).agg(totals).select(pl.lit(d).alias("dimension"), "segment", *keys, *sums)
        )
    return pl.concat(frames, how="vertical")


def merge_sums(parts: Sequence[pl.DataFrame], *, keys: Sequence[str], sums: Sequence[str]) -> pl.DataFrame:
    """Add the partial sums of every partition (empty partitions allowed)."""
    frames = [p for p in parts if p.height]
    if not frames:
        return parts[0].clear() if parts else pl.DataFrame()
    return pl.concat(frames, how="vertical").group_by(list(keys)).agg([pl.col(c).sum() for c in sums]).sort(keys)


# --- overdue rates -----------------------------------------------------------------------------------------------


def delinquency_partition(book: PartitionBook) -> pl.DataFrame:
    """Partial sums of one partition: loans and fen by (dimension, segment, month end, bucket).

    Sums: ``loans``, ``balance_fen`` (principal), ``overdue_amount_fen`` and ``charged_off_fen``.
    """
    aggs = [
        pl.len().cast(pl.Int64).alias("loans"),
        pl.col("balance_fen").sum(),
        pl.col("overdue_amount_fen").sum(),
        pl.col("charged_off_fen").sum(),
    ]
    long = grouped_sums(book, book.rows.lazy(), keys=["month_end", "bucket"], aggs=aggs, sums=SUM_COLUMNS)
    return long.with_columns(
        pl.col("bucket").replace_strict(list(range(len(ROW_BUCKETS))), list(ROW_BUCKETS), return_dtype=pl.String)
    )


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
