"""The account watchlist (预警名单) from a next-month roll-forward model.

Each segment's monthly transition matrix over the delinquency cycles (:mod:`runoff.risk.roll_rates`),
pooled over the last few months, is applied to every open loan's state at the as-of date: the
probability it rolls to a worse state next month (a later cycle or write-off) and the probability
of write-off within a horizon (the matrix raised to that power, exits absorbing). Accounts are
ranked by the probability that any of their loans rolls, with the balance expected to roll beside
it, so collections can call the right customers before the next bill date.

Accounts are listed by the balance expected to roll (Σ balance × probability), the exposure a collector
saves by reaching the customer first; the probability is shown beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from runoff.errors import InvalidInput
from runoff.risk.delinquency import ALL, CYCLE_STATES, EXIT_STATES, TOTAL, PartitionBook
from runoff.risk.roll_rates import TransitionMatrix, transition_matrix

ROLL_STATES: tuple[str, ...] = (*CYCLE_STATES, *EXIT_STATES)
_CHARGED_OFF = ROLL_STATES.index("charged-off")


@dataclass(frozen=True, slots=True)
class RollForward:
    """Per segment: next-month probability of rolling to a worse state, and of write-off within ``horizon``."""

    dimension: str
    horizon: int
    months: tuple[date, ...]
    table: pl.DataFrame  # segment, state, p_roll, p_charge_off, observations


def roll_forward_model(counts: pl.DataFrame, *, dimension: str, months: int = 6, horizon: int = 12) -> RollForward:
    """Estimate each segment's cycle-state matrix over the last ``months`` months of ``counts`` (falling back to
    the book's row where a segment has no observation) and derive the roll and write-off probabilities."""
    all_months = sorted(counts.get_column("month_end").unique().to_list())
    window = tuple(all_months[-months:])
    book = transition_matrix(counts, months=window, states="cycle")
    total_square = book.square()
    frames = []
    dims = [(TOTAL, ALL)]
    if dimension != TOTAL:
        segs = counts.filter(pl.col("dimension") == dimension).get_column("segment").unique().sort().to_list()
        dims = [(dimension, s) for s in segs]
    for dim, seg in dims:
        m: TransitionMatrix = (
            book
            if dim == TOTAL
            else transition_matrix(counts, dimension=dim, segment=seg, months=window, states="cycle")
        )
        square = m.square(fallback=book) if dim != TOTAL else total_square
        p_h = np.linalg.matrix_power(square, horizon)
        n_open = len(CYCLE_STATES)
        p_roll = [float(square[i, i + 1 : n_open].sum() + square[i, _CHARGED_OFF]) for i in range(n_open)]
        frames.append(
            pl.DataFrame(
                {
                    "segment": seg,
                    "state": list(CYCLE_STATES),
                    "p_roll": p_roll,
                    "p_charge_off": [float(p_h[i, _CHARGED_OFF]) for i in range(n_open)],
                    "observations": m.row_totals.astype(np.int64),
                }
            )
        )
    return RollForward(dimension=dimension, horizon=horizon, months=window, table=pl.concat(frames))


def watchlist_partition(
    book: PartitionBook, model: RollForward, *, top_n: int = 100, min_probability: float = 0.0
) -> dict[str, pl.DataFrame]:
    """Roll this partition's open loans at the as-of date forward: the top accounts (by expected roll) and
    per-state sums.

    An account here is a customer (the generated book has one credit line each): ``p_roll`` is the
    probability that at least one of its loans rolls to a worse state next month (loans taken as
    independent), ``expected_roll_fen`` the balance expected to roll, ``expected_charge_off_fen`` the
    balance expected to be written off within the horizon.
    """
    now = book.rows.filter((pl.col("month_end") == book.as_of) & (pl.col("state") < len(CYCLE_STATES)))
    if model.dimension == TOTAL:
        seg = pl.lit(ALL)
    elif model.dimension in book.dimensions:
        seg = book.segment(model.dimension)
    else:
        raise InvalidInput(
            f"`watchlist.dimension`: {model.dimension!r} was not prepared with the book; expected one of {', '.join(book.dimensions) or 'total'}",
            field="watchlist.dimension",
        )
    names = list(CYCLE_STATES)
    loans = now.select(
        "loan_id",
        "customer_id",
        seg.alias("segment"),
        pl.col("state").replace_strict(list(range(len(names))), names, return_dtype=pl.String).alias("state"),
        "balance_fen",
    ).join(model.table.select("segment", "state", "p_roll", "p_charge_off"), on=["segment", "state"], how="left")
    fallback = model.table.group_by("state").agg(
        pl.col("p_roll").mean().alias("_r"), pl.col("p_charge_off").mean().alias("_c")
    )
    loans = (
        loans.join(fallback, on="state", how="left")
        .with_columns(pl.col("p_roll").fill_null(pl.col("_r")), pl.col("p_charge_off").fill_null(pl.col("_c")))
        .drop("_r", "_c")
    )
    summary = loans.group_by("state").agg(
        pl.len().cast(pl.Int64).alias("loans"),
        pl.col("balance_fen").sum(),
        (pl.col("balance_fen") * pl.col("p_roll")).sum().alias("expected_roll_fen"),
        (pl.col("balance_fen") * pl.col("p_charge_off")).sum().alias("expected_charge_off_fen"),
    )
    rank = {s: k for k, s in enumerate(names)}
    accounts = (
        loans.with_columns(pl.col("state").replace_strict(rank, return_dtype=pl.Int32).alias("_rank"))
        .group_by("customer_id")
        .agg(
            pl.len().cast(pl.Int64).alias("loans"),
            pl.col("balance_fen").sum(),
            pl.col("state").sort_by("_rank").last().alias("worst_state"),
            pl.col("segment").first(),
            (1.0 - (1.0 - pl.col("p_roll")).product()).alias("p_roll"),
            (pl.col("balance_fen") * pl.col("p_roll")).sum().alias("expected_roll_fen"),
            (pl.col("balance_fen") * pl.col("p_charge_off")).sum().alias("expected_charge_off_fen"),
        )
        .filter(pl.col("p_roll") >= min_probability)
        .sort(["expected_roll_fen", "p_roll", "customer_id"], descending=[True, True, False])
        .head(top_n)
    )
    return {"top": accounts, "summary": summary}


def merge_watchlists(parts: Sequence[Mapping[str, pl.DataFrame]], *, top_n: int = 100) -> dict[str, pl.DataFrame]:
    """The book's watchlist: the top ``top_n`` accounts of all partitions and the per-state sums added."""
    tops = [p["top"] for p in parts if p["top"].height]
    top = (
        pl.concat(tops).sort(["expected_roll_fen", "p_roll", "customer_id"], descending=[True, True, False]).head(top_n)
        if tops
        else pl.DataFrame()
    )
    sums = [p["summary"] for p in parts if p["summary"].height]
    rank = {s: k for k, s in enumerate(CYCLE_STATES)}
    summary = (
        pl.concat(sums)
        .group_by("state")
        .agg(pl.col("loans", "balance_fen", "expected_roll_fen", "expected_charge_off_fen").sum())
        .with_columns(pl.col("state").replace_strict(rank, return_dtype=pl.Int32).alias("_r"))
        .sort("_r")
        .drop("_r")
        if sums
        else pl.DataFrame()
    )
    return {"top": top.with_row_index("rank", offset=1) if top.height else top, "summary": summary}
