"""Vintage curves (账龄分析): how each origination month's loans go bad as they age.

For each vintage (放款月, the loans' origination month) and month on book (MOB, 账龄; 0 in the
origination month) the curves give:

* **coincident M1+ / M3+ rate**: principal in M1+ (≥1 DPD) or M3+ (61+ DPD) at that MOB over the
  vintage's originated principal (the usual vintage convention in Chinese consumer finance);
  ``*_open_rate`` divides by the vintage's open balance at that MOB instead;
* **ever M1+ / M3+ rate**: share of the vintage's loans that have been M1+ (M3+) at some month end
  up to that MOB (a cumulative bad rate);
* **cumulative charge-off rate**: principal written off up to that MOB over originated principal.

A vintage's curve runs to the MOB the book's as-of date allows, even where every loan has closed.
Per partition the module sums counts and fen by (vintage, MOB); the merge adds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import polars as pl

from runoff.risk.delinquency import (
    ROW_BUCKETS,
    THRESHOLDS,
    PartitionBook,
    merge_sums,
    require_columns,
    require_rows,
)

VINTAGE_LOAN_COLUMNS: tuple[str, ...] = ("loan_id", "vintage", "principal_fen")

MOB_SUMS: tuple[str, ...] = (
    "open_loans",
    "open_balance_fen",
    "m1plus_loans",
    "m1plus_fen",
    "m2plus_loans",
    "m2plus_fen",
    "m3plus_loans",
    "m3plus_fen",
    "charged_off_loans",
    "charged_off_fen",
    "first_m1plus_loans",
    "first_m3plus_loans",
)
ORIGINATION_SUMS: tuple[str, ...] = ("originated_loans", "originated_fen")


def _vintage_month(vintage: pl.Expr) -> pl.Expr:
    """Month index of a ``YYYY-MM`` vintage."""
    return vintage.str.slice(0, 4).cast(pl.Int32) * 12 + vintage.str.slice(5, 2).cast(pl.Int32) - 1


def vintage_partition(book: PartitionBook, loans: pl.LazyFrame | pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Partial vintage sums of one partition: ``originations`` by vintage (from the loans table) and
    ``mob`` by (vintage, MOB) from the performance rows, whose vintage is their month less their MOB.

    Loans originated after the book's as-of date are left out.
    """
    lf = loans.lazy()
    require_columns(lf, VINTAGE_LOAN_COLUMNS, table="loans")
    as_of_month = book.as_of.year * 12 + book.as_of.month - 1
    originations = (
        lf.select("vintage", "principal_fen")
        .filter(_vintage_month(pl.col("vintage")) <= as_of_month)
        .group_by("vintage")
        .agg(pl.len().cast(pl.Int64).alias("originated_loans"), pl.col("principal_fen").sum().alias("originated_fen"))
        .collect()
    )
    rows = book.rows.lazy().with_columns((pl.col("month") - pl.col("mob")).alias("vintage_month"))
    bucket = pl.col("bucket")
    codes = {b: ROW_BUCKETS.index(b) for b in ROW_BUCKETS}

    def worse(name: str) -> pl.Expr:
        return bucket.is_in([codes[b] for b in THRESHOLDS[name]])

    is_open = bucket <= codes["M4+"]
    bal = pl.col("balance_fen")
    charged = bucket == codes["charged-off"]
    per_mob = rows.group_by("vintage_month", "mob").agg(
        is_open.sum().cast(pl.Int64).alias("open_loans"),
        bal.filter(is_open).sum().alias("open_balance_fen"),
        *[
            x
            for name in ("m1plus", "m2plus", "m3plus")
            for x in (
                worse(name).sum().cast(pl.Int64).alias(f"{name}_loans"),
                bal.filter(worse(name)).sum().alias(f"{name}_fen"),
            )
        ],
        charged.sum().cast(pl.Int64).alias("charged_off_loans"),
        pl.col("charged_off_fen").sum(),
    )
    # first MOB at which each loan was M1+ (M3+); a write-off counts (it got there first)
    firsts = [
        rows.filter(worse(name) | charged)
        .group_by("loan_id")
        .agg(pl.col("vintage_month").first(), pl.col("mob").min())
        .group_by("vintage_month", "mob")
        .agg(pl.len().cast(pl.Int64).alias(f"first_{name}_loans"))
        for name in ("m1plus", "m3plus")
    ]
    per_mob_df, *first_dfs = pl.collect_all([per_mob, *firsts])
    keys = ["vintage_month", "mob"]
    mob = per_mob_df
    for f in first_dfs:
        mob = mob.join(f, on=keys, how="full", coalesce=True)
    mob = mob.with_columns([pl.col(c).fill_null(0) for c in MOB_SUMS]).select(
        _vintage_name(pl.col("vintage_month")).alias("vintage"), pl.col("mob").cast(pl.Int32), *MOB_SUMS
    )
    window = book.rows.select(pl.col("month_end").min().alias("first_month_end"))
    return {"originations": originations, "mob": mob, "window": window}


def _vintage_name(month: pl.Expr) -> pl.Expr:
    """``YYYY-MM`` of a month index."""
    return pl.format("{}-{}", (month // 12).cast(pl.String), (month % 12 + 1).cast(pl.String).str.zfill(2))


def merge_vintages(parts: Sequence[dict[str, pl.DataFrame]]) -> dict[str, pl.DataFrame]:
    """The book's vintage sums: the partitions' sums added."""
    firsts = [p["window"] for p in parts if p["window"].height]
    return {
        "originations": merge_sums([p["originations"] for p in parts], keys=("vintage",), sums=ORIGINATION_SUMS),
        "mob": merge_sums([p["mob"] for p in parts], keys=("vintage", "mob"), sums=MOB_SUMS),
        "window": pl.concat(firsts).select(pl.col("first_month_end").min())
        if firsts
        else pl.DataFrame(schema={"first_month_end": pl.Date}),
    }


def _first_month(sums: dict[str, pl.DataFrame]) -> int | None:
    """Month index of the book's first month end (None for a book without rows)."""
    window = sums.get("window")
    first = window.get_column("first_month_end").min() if window is not None and window.height else None
    return None if first is None else first.year * 12 + first.month - 1  # type: ignore[union-attr]


def vintage_curves(sums: dict[str, pl.DataFrame], *, as_of: date) -> pl.DataFrame:
    """One row per (vintage, MOB) from MOB 0 to the last MOB ``as_of`` allows, with rates.

    Columns: the vintage's ``originated_loans``/``originated_fen``; at the MOB the open loans and
    balance, M1+/M2+/M3+ loans and fen, charged-off loans and fen in the month; the cumulative
    ``ever_m1plus_loans``, ``ever_m3plus_loans`` and ``cum_charged_off_fen``; and the rates
    ``m1plus_rate``, ``m2plus_rate``, ``m3plus_rate`` (over originated principal),
    ``m1plus_open_rate``, ``m3plus_open_rate`` (over the open balance), ``ever_m1plus_rate``,
    ``ever_m3plus_rate`` (over originated loans) and ``cum_charge_off_rate``. ``observed`` is false
    for MOBs before the book's first month end (a vintage older than the book is ``left_censored``:
    its figures there are null and its cumulative ones count from the first month end seen).
    """
    originations, mob = sums["originations"], sums["mob"]
    require_rows(originations, table="loans", what="loans originated by the as-of date")
    as_of_month = as_of.year * 12 + as_of.month - 1
    grid = (
        originations.select("vintage", *ORIGINATION_SUMS)
        .with_columns((as_of_month - _vintage_month(pl.col("vintage"))).alias("_last"))
        .with_columns(pl.int_ranges(0, pl.col("_last") + 1, dtype=pl.Int32).alias("mob"))
        .explode("mob")
        .drop("_last")
    )
    out = grid.join(mob, on=["vintage", "mob"], how="left").with_columns([pl.col(c).fill_null(0) for c in MOB_SUMS])
    out = out.sort("vintage", "mob").with_columns(
        pl.col("first_m1plus_loans").cum_sum().over("vintage").alias("ever_m1plus_loans"),
        pl.col("first_m3plus_loans").cum_sum().over("vintage").alias("ever_m3plus_loans"),
        pl.col("charged_off_fen").cum_sum().over("vintage").alias("cum_charged_off_fen"),
    )

    def rate(num: str, den: str) -> pl.Expr:
        return pl.when(pl.col(den) > 0).then(pl.col(num) / pl.col(den)).otherwise(None)

    first = _first_month(sums)
    start = _vintage_month(pl.col("vintage"))
    out = out.with_columns(
        (start + pl.col("mob") >= (first if first is not None else as_of_month + 1)).alias("observed"),
        (start < (first if first is not None else as_of_month + 1)).alias("left_censored"),
    )
    out = out.with_columns(
        rate("m1plus_fen", "originated_fen").alias("m1plus_rate"),
        rate("m2plus_fen", "originated_fen").alias("m2plus_rate"),
        rate("m3plus_fen", "originated_fen").alias("m3plus_rate"),
        rate("m1plus_fen", "open_balance_fen").alias("m1plus_open_rate"),
        rate("m3plus_fen", "open_balance_fen").alias("m3plus_open_rate"),
        rate("ever_m1plus_loans", "originated_loans").alias("ever_m1plus_rate"),
        rate("ever_m3plus_loans", "originated_loans").alias("ever_m3plus_rate"),
        rate("cum_charged_off_fen", "originated_fen").alias("cum_charge_off_rate"),
    ).drop("first_m1plus_loans", "first_m3plus_loans")
    hidden = [c for c in out.columns if c not in ("vintage", "mob", "observed", "left_censored", *ORIGINATION_SUMS)]
    return out.with_columns([pl.when(pl.col("observed")).then(pl.col(c)).alias(c) for c in hidden])


def first_payment_default(sums: dict[str, pl.DataFrame], *, as_of: date) -> pl.DataFrame:
    """First-payment default (首期逾期) by vintage: share of loans M1+ at MOB 1 (FPD) and M2+ at MOB 2 (FPD30).

    The first installment falls due one month after the drawing, so MOB 1 is the first month end after
    it. ``fpd_seen_on`` / ``fpd30_seen_on`` are the month ends an early-warning system learns each
    figure (null rates until ``as_of`` reaches them, and for month ends before the book's first).
    """
    originations, mob = sums["originations"], sums["mob"]
    as_of_month = as_of.year * 12 + as_of.month - 1
    wide = mob.group_by("vintage").agg(
        pl.col("m1plus_loans").filter(pl.col("mob") == 1).sum().alias("fpd_loans"),
        pl.col("m2plus_loans").filter(pl.col("mob") == 2).sum().alias("fpd30_loans"),
    )
    out = originations.join(wide, on="vintage", how="left").with_columns(
        pl.col("fpd_loans", "fpd30_loans").fill_null(0), _vintage_month(pl.col("vintage")).alias("_m")
    )
    first = _first_month(sums)
    seen = [
        ((as_of_month - pl.col("_m")) >= k) & (pl.col("_m") + k >= (first if first is not None else as_of_month + 1))
        for k in (1, 2)
    ]
    return out.select(
        "vintage",
        "originated_loans",
        "fpd_loans",
        "fpd30_loans",
        _month_end_of(pl.col("_m") + 1).alias("fpd_seen_on"),
        _month_end_of(pl.col("_m") + 2).alias("fpd30_seen_on"),
        pl.when(seen[0]).then(pl.col("fpd_loans") / pl.col("originated_loans")).alias("fpd_rate"),
        pl.when(seen[1]).then(pl.col("fpd30_loans") / pl.col("originated_loans")).alias("fpd30_rate"),
    ).sort("vintage")


def _month_end_of(month_index: pl.Expr) -> pl.Expr:
    """The last day of the month with index ``year × 12 + month − 1``."""
    return pl.date(month_index // 12, month_index % 12 + 1, 1).dt.month_end()
