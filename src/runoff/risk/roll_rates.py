"""Roll rates (迁徙率), monthly transition matrices, flow rates and concentration (集中度).

A loan's **state** at a month end is its delinquency cycle (账期): ``current``, then ``M1``…``M6``
and ``M7+`` counting the month ends its oldest unpaid installment has been past due (the buckets
M1–M3 are cycles 1–3, M4+ splits into M4, M5, M6, M7+ by the month of the oldest unpaid due
date, ``month_end − dpd``); a loan that leaves the book goes to an exit state: ``paid-off``
(结清), ``prepaid`` (提前结清) or ``charged-off`` (核销). A transition pairs a loan's state at one
month end with its state at the next; a loan with no row at the next month end goes to
``unobserved`` (counted, left out of the probabilities).

Counts are tracked loan by loan, by count and by principal balance at the start of the month,
per partition, and merged by adding; probabilities, roll rates and flow rates come after the
merge. Bucket-level matrices (current, M1, M2, M3, M4+) add the cycle-level counts up.

**Roll rate** from a bucket: the share moving to a worse bucket (or charged off) by the next
month end; **cure**: the share back to current or paid off. **Flow rate** current → charge-off: the
product of the one-cycle forward rolls current→M1→…→M6→(M7+ or charged off), the share of a
current balance expected to reach write-off if this month's rolls held.

**Concentration**: the Herfindahl–Hirschman index HHI = Σ sᵢ² of customers' (or segments') shares
of the balance (1/HHI is the effective number of borrowers) and the top-N customers' share, for
the open balance and for the overdue (M1+) balance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import polars as pl

from runoff.errors import InvalidInput
from runoff.risk.delinquency import (
    ALL,
    CYCLE_STATES,
    EXIT_STATES,
    OPEN_BUCKETS,
    STATES,
    TOTAL,
    UNOBSERVED,
    PartitionBook,
    grouped_sums,
    merge_sums,
    require_columns,
    require_rows,
    sort_segments,
)

BUCKET_STATES: tuple[str, ...] = (*OPEN_BUCKETS, *EXIT_STATES)
"""States of the bucket-level matrix."""

STATE_BUCKET: dict[str, str] = {
    **{s: s for s in ("current", "M1", "M2", "M3")},
    **{s: "M4+" for s in ("M4", "M5", "M6", "M7+")},
    **{s: s for s in (*EXIT_STATES, UNOBSERVED)},
}

_SEVERITY: dict[str, int] = {
    **{s: k for k, s in enumerate(CYCLE_STATES)},
    "charged-off": 99,
    "paid-off": -1,
    "prepaid": -1,
    UNOBSERVED: -2,
}
_BUCKET_SEVERITY: dict[str, int] = {
    **{s: k for k, s in enumerate(OPEN_BUCKETS)},
    "charged-off": 99,
    "paid-off": -1,
    "prepaid": -1,
    UNOBSERVED: -2,
}

TRANSITION_SUMS: tuple[str, ...] = ("loans", "balance_fen", "overdue_amount_fen", "collected_fen")
"""Sums per transition: loans, principal balance at the start (fen), amount overdue at the start, cash
collected from those loans in the month (principal, interest, fee and penalty)."""

FloatArray = npt.NDArray[np.float64]


def transition_partition(book: PartitionBook) -> pl.DataFrame:
    """Partial transition counts of one partition by (dimension, segment, month end, from, to).

    ``month_end`` is the month the transition starts from; the as-of month end starts none.
    """
    rows = book.rows.lazy()
    observed = (pl.col("loan_id").shift(-1) == pl.col("loan_id")) & (pl.col("month").shift(-1) == pl.col("month") + 1)
    unobserved = pl.lit(STATES.index(UNOBSERVED), pl.UInt8)
    pairs = (
        rows.with_columns(
            pl.when(observed).then(pl.col("state").shift(-1)).otherwise(unobserved).alias("to_state"),
            pl.when(observed).then(pl.col("paid_fen").shift(-1)).otherwise(0).alias("collected_fen"),
        )
        .filter((pl.col("state") < len(CYCLE_STATES)) & (pl.col("month_end") < book.as_of))
        .rename({"state": "from_state"})
        .select(
            "month_end",
            "from_state",
            "to_state",
            "balance_fen",
            "overdue_amount_fen",
            "collected_fen",
            "combo",
        )
    )
    aggs = [
        pl.len().cast(pl.Int64).alias("loans"),
        pl.col("balance_fen").sum(),
        pl.col("overdue_amount_fen").sum(),
        pl.col("collected_fen").sum(),
    ]
    long = grouped_sums(book, pairs, keys=["month_end", "from_state", "to_state"], aggs=aggs, sums=TRANSITION_SUMS)
    codes, names = list(range(len(STATES))), list(STATES)
    return long.with_columns(
        pl.col("from_state").replace_strict(codes, names, return_dtype=pl.String),
        pl.col("to_state").replace_strict(codes, names, return_dtype=pl.String),
    )


def merge_transitions(parts: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """The book's transition counts: the partitions' counts added."""
    return merge_sums(parts, keys=("dimension", "segment", "month_end", "from_state", "to_state"), sums=TRANSITION_SUMS)


# --- matrices ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TransitionMatrix:
    """Counts of transitions (rows: from-state, columns: to-state) and their row-normalised probabilities.

    ``weight`` says what is counted: ``loans`` or ``balance`` (fen of principal at the start of the
    month). ``unobserved`` holds the weight of rows whose next month end is missing (left out).
    """

    from_states: tuple[str, ...]
    to_states: tuple[str, ...]
    counts: FloatArray
    weight: str
    unobserved: FloatArray

    @property
    def row_totals(self) -> FloatArray:
        totals: FloatArray = self.counts.sum(axis=1)
        return totals

    @property
    def probabilities(self) -> FloatArray:
        """Row-normalised counts; a row with no observation is NaN."""
        totals = self.row_totals[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            p: FloatArray = np.where(totals > 0, self.counts / np.where(totals > 0, totals, 1.0), np.nan)
        return p

    def probability(self, from_state: str, to_state: str) -> float:
        return float(self.probabilities[self.from_states.index(from_state), self.to_states.index(to_state)])

    def frame(self) -> pl.DataFrame:
        """Long form: from_state, to_state, count, row total, probability (every cell, zeros included)."""
        f, t = np.meshgrid(np.arange(len(self.from_states)), np.arange(len(self.to_states)), indexing="ij")
        return pl.DataFrame(
            {
                "from_state": np.asarray(self.from_states)[f.ravel()],
                "to_state": np.asarray(self.to_states)[t.ravel()],
                "count": self.counts.ravel(),
                "row_total": np.repeat(self.row_totals, len(self.to_states)),
                "probability": self.probabilities.ravel(),
            }
        )

    def square(self, fallback: TransitionMatrix | None = None) -> FloatArray:
        """A square stochastic matrix over ``to_states``: exit states absorbing; an empty row takes
        ``fallback``'s row (e.g. the whole book's), else stays where it is."""
        n = len(self.to_states)
        out = np.eye(n)
        p = self.probabilities
        fb = fallback.probabilities if fallback is not None else None
        for i, state in enumerate(self.from_states):
            row = p[i]
            if np.isnan(row).any() and fb is not None:
                row = fb[fallback.from_states.index(state)] if fallback is not None else row
            if not np.isnan(row).any():
                out[self.to_states.index(state)] = row
        return out


def transition_matrix(
    counts: pl.DataFrame,
    *,
    dimension: str = TOTAL,
    segment: str = ALL,
    months: Sequence[date] | None = None,
    weight: str = "loans",
    states: str = "bucket",
) -> TransitionMatrix:
    """The transition matrix of one segment, pooled over ``months`` (default: every month).

    ``states`` is ``bucket`` (current, M1, M2, M3, M4+ → the same plus the exits) or ``cycle``
    (current, M1…M7+ → the same plus the exits); ``weight`` is ``loans`` or ``balance``.
    """
    if weight not in ("loans", "balance"):
        raise InvalidInput(f"`weight`: {weight!r} is not allowed; expected loans or balance", field="weight")
    if states not in ("bucket", "cycle"):
        raise InvalidInput(f"`states`: {states!r} is not allowed; expected bucket or cycle", field="states")
    require_columns(
        counts,
        ("dimension", "segment", "month_end", "from_state", "to_state", "loans", "balance_fen"),
        table="transitions",
    )
    rows = counts.filter((pl.col("dimension") == dimension) & (pl.col("segment") == segment))
    if months is not None:
        rows = rows.filter(pl.col("month_end").is_in(list(months)))
    if states == "bucket":
        rows = rows.with_columns(
            pl.col("from_state").replace_strict(STATE_BUCKET, return_dtype=pl.String),
            pl.col("to_state").replace_strict(STATE_BUCKET, return_dtype=pl.String),
        )
        from_states, to_states = OPEN_BUCKETS, BUCKET_STATES
    else:
        from_states, to_states = CYCLE_STATES, (*CYCLE_STATES, *EXIT_STATES)
    col = "loans" if weight == "loans" else "balance_fen"
    agg = rows.group_by("from_state", "to_state").agg(pl.col(col).sum().cast(pl.Float64).alias("w"))
    matrix = np.zeros((len(from_states), len(to_states)))
    unobserved = np.zeros(len(from_states))
    for f, t, w in agg.iter_rows():
        if f not in from_states:
            continue
        if t == UNOBSERVED:
            unobserved[from_states.index(f)] += w
        elif t in to_states:
            matrix[from_states.index(f), to_states.index(t)] += w
    return TransitionMatrix(tuple(from_states), tuple(to_states), matrix, weight, unobserved)


def segment_matrices(
    counts: pl.DataFrame,
    *,
    dimension: str,
    months: Sequence[date] | None = None,
    weight: str = "loans",
    states: str = "cycle",
) -> dict[str, TransitionMatrix]:
    """One matrix per segment of ``dimension`` (``{"all": ...}`` for the total)."""
    segments = counts.filter(pl.col("dimension") == dimension).get_column("segment").unique().sort().to_list()
    return {
        s: transition_matrix(counts, dimension=dimension, segment=s, months=months, weight=weight, states=states)
        for s in segments
    }


# --- roll, cure and flow rates -----------------------------------------------------------------------------------


def _bucket_transitions(counts: pl.DataFrame) -> pl.DataFrame:
    return counts.with_columns(
        pl.col("from_state").replace_strict(STATE_BUCKET, return_dtype=pl.String).alias("from_bucket"),
        pl.col("to_state").replace_strict(STATE_BUCKET, return_dtype=pl.String).alias("to_bucket"),
    ).with_columns(
        pl.col("from_bucket").replace_strict(_BUCKET_SEVERITY, return_dtype=pl.Int32).alias("_from_rank"),
        pl.col("to_bucket").replace_strict(_BUCKET_SEVERITY, return_dtype=pl.Int32).alias("_to_rank"),
    )


def roll_rates(counts: pl.DataFrame) -> pl.DataFrame:
    """Roll, cure and collection rates per (dimension, segment, month end, from bucket).

    For each open bucket at the month end: ``from_loans``/``from_balance_fen``; then loans and fen that
    rolled forward (to a worse bucket or charged off), stayed, improved without curing, cured (to
    current or paid off), prepaid, charged off and went unobserved; each with a count rate and a
    balance rate over the observed total; ``collection_rate`` = cash collected in the month over the
    amount overdue at the start (delinquent buckets only).
    """
    require_columns(
        counts, ("dimension", "segment", "month_end", "from_state", "to_state", *TRANSITION_SUMS), table="transitions"
    )
    require_rows(counts, table="performance", what="pairs of consecutive month ends")
    t = _bucket_transitions(counts)
    outcomes: dict[str, pl.Expr] = {
        "roll_forward": (pl.col("_to_rank") > pl.col("_from_rank")) & (pl.col("to_bucket") != UNOBSERVED),
        "stay": pl.col("_to_rank") == pl.col("_from_rank"),
        "improve": (pl.col("_to_rank") < pl.col("_from_rank")) & (pl.col("_to_rank") > 0),
        "cure": pl.col("to_bucket").is_in(["current", "paid-off"]) & (pl.col("from_bucket") != "current"),
        "prepaid": pl.col("to_bucket") == "prepaid",
        "paid_off": pl.col("to_bucket") == "paid-off",
        "charged_off": pl.col("to_bucket") == "charged-off",
        "unobserved": pl.col("to_bucket") == UNOBSERVED,
    }
    observed = pl.col("to_bucket") != UNOBSERVED
    aggs = [
        pl.col("loans").filter(observed).sum().alias("from_loans"),
        pl.col("balance_fen").filter(observed).sum().alias("from_balance_fen"),
        pl.col("overdue_amount_fen").sum(),
        pl.col("collected_fen").sum(),
    ]
    for name, cond in outcomes.items():
        aggs += [
            pl.col("loans").filter(cond).sum().alias(f"{name}_loans"),
            pl.col("balance_fen").filter(cond).sum().alias(f"{name}_fen"),
        ]
    out = t.group_by("dimension", "segment", "month_end", "from_bucket").agg(aggs)
    rates = []
    for name in outcomes:
        if name == "unobserved":
            continue
        rates += [
            _safe_div(pl.col(f"{name}_loans"), pl.col("from_loans")).alias(f"{name}_count_rate"),
            _safe_div(pl.col(f"{name}_fen"), pl.col("from_balance_fen")).alias(f"{name}_balance_rate"),
        ]
    rates.append(
        pl.when(pl.col("from_bucket") != "current")
        .then(_safe_div(pl.col("collected_fen"), pl.col("overdue_amount_fen")))
        .otherwise(None)
        .alias("collection_rate")
    )
    bucket_rank = {b: k for k, b in enumerate(OPEN_BUCKETS)}
    out = out.with_columns(rates).with_columns(
        pl.col("from_bucket").replace_strict(bucket_rank, return_dtype=pl.Int32).alias("_b")
    )
    return sort_segments(out, then=("month_end", "_b")).drop("_b")


def _safe_div(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    return pl.when(den > 0).then(num / den).otherwise(None)


FLOW_STEPS: tuple[tuple[str, str], ...] = (
    ("current", "M1"),
    ("M1", "M2"),
    ("M2", "M3"),
    ("M3", "M4"),
    ("M4", "M5"),
    ("M5", "M6"),
    ("M6", "M7+/charged-off"),
)
"""The one-cycle forward rolls a current balance flows through on its way to write-off."""


def flow_rates(
    counts: pl.DataFrame, *, dimension: str = TOTAL, segment: str = ALL, weight: str = "balance"
) -> pl.DataFrame:
    """Flow rates by month: each one-cycle forward roll and their product, current → charge-off.

    ``current_to_charge_off`` multiplies the steps of the same month (point in time);
    ``current_to_charge_off_lagged`` follows a cohort, step k taken k months later (null until
    the book has the months to see it).
    """
    col = "loans" if weight == "loans" else "balance_fen"
    rows = counts.filter(
        (pl.col("dimension") == dimension) & (pl.col("segment") == segment) & (pl.col("to_state") != UNOBSERVED)
    )
    months = sorted(rows.get_column("month_end").unique().to_list())
    require_rows(rows, table="performance", what="pairs of consecutive month ends")
    steps = []
    for k, (src, dst) in enumerate(FLOW_STEPS):
        targets = ["M7+", "charged-off"] if dst == "M7+/charged-off" else [dst]
        step = (
            rows.filter(pl.col("from_state") == src)
            .group_by("month_end")
            .agg(
                pl.col(col).sum().alias("_den"),
                pl.col(col).filter(pl.col("to_state").is_in(targets)).sum().alias("_num"),
            )
        )
        steps.append(step.select("month_end", _safe_div(pl.col("_num"), pl.col("_den")).alias(f"step_{k}")))
    out = pl.DataFrame({"month_end": months}, schema={"month_end": pl.Date})
    for s in steps:
        out = out.join(s, on="month_end", how="left")
    names = [f"step_{k}" for k in range(len(FLOW_STEPS))]
    labels = {
        f"step_{k}": f"{a.lower().replace('+', 'plus')}_to_{b.split('/')[0].lower().replace('+', 'plus')}"
        for k, (a, b) in enumerate(FLOW_STEPS)
    }
    point = pl.lit(1.0)
    for n in names:
        point = point * pl.col(n)
    out = out.sort("month_end").with_columns(point.alias("current_to_charge_off"))
    lagged = pl.lit(1.0)
    for k, n in enumerate(names):
        lagged = lagged * pl.col(n).shift(-k)
    out = out.with_columns(lagged.alias("current_to_charge_off_lagged")).rename(labels)
    return out.with_columns(pl.lit(weight).alias("weight"))


# --- concentration -----------------------------------------------------------------------------------------------


DENSE_CELLS_LIMIT = 50_000_000
"""Above this many (month × customer) cells a partition's customer balances are grouped by hash instead."""


def concentration_partition(book: PartitionBook, *, top_n: int = 100) -> dict[str, pl.DataFrame]:
    """Partial concentration sums of one partition, per month end.

    ``sums``: customers with a balance, Σ balance and Σ balance² (float), the same for the overdue
    (M1+) balance; ``top``: the partition's ``top_n`` largest customer balances and overdue balances
    each month (the book's top N are among the partitions' top N, since partitions hold whole
    customers), with the customer ids at the as-of month end.
    Customer balances are summed on a dense month × customer grid with :func:`numpy.bincount`
    (exact: fen sums stay far below 2⁵³), the step a hash group-by makes slow.
    """
    state = book.rows.get_column("state").to_numpy()
    keep = state < len(CYCLE_STATES)
    empty_sums = pl.DataFrame(schema={"month_end": pl.Date, **dict.fromkeys(CONCENTRATION_SUMS, pl.Int64)}).cast(
        {"balance_sq": pl.Float64, "overdue_sq": pl.Float64}
    )
    empty_top = pl.DataFrame(
        schema={"month_end": pl.Date, "kind": pl.String, "customer_id": pl.Int64, "amount_fen": pl.Int64}
    )
    if not keep.any():
        return {"sums": empty_sums, "top": empty_top}
    month = book.rows.get_column("month").to_numpy()[keep].astype(np.int64)
    customer = book.rows.get_column("customer").to_numpy()[keep]
    weights = book.rows.get_column("balance_fen").to_numpy()[keep].astype(np.float64)
    late = weights * (state[keep] > 0)
    first, last = int(month.min()), int(month.max())
    n_months, n_cust = last - first + 1, book.customers
    size = n_months * n_cust
    if size > DENSE_CELLS_LIMIT:  # a partition far larger than planned: group by hash instead
        per = (
            pl.DataFrame({"cell": (month - first) * n_cust + customer, "b": weights, "o": late})
            .group_by("cell")
            .agg(pl.col("b").sum(), pl.col("o").sum())
        )
        flat_balance: FloatArray = np.zeros(size)
        flat_overdue: FloatArray = np.zeros(size)
        flat_balance[per["cell"].to_numpy()] = per["b"].to_numpy()
        flat_overdue[per["cell"].to_numpy()] = per["o"].to_numpy()
    else:
        cells = (month - first) * n_cust + customer
        flat_balance = np.asarray(np.bincount(cells, weights=weights, minlength=size), dtype=np.float64)
        flat_overdue = np.asarray(np.bincount(cells, weights=late, minlength=size), dtype=np.float64)
    balance, overdue = flat_balance.reshape(n_months, n_cust), flat_overdue.reshape(n_months, n_cust)
    months = pl.select(_month_end_of(pl.Series(np.arange(first, last + 1), dtype=pl.Int32))).to_series()
    sums = pl.DataFrame(
        {
            "month_end": months,
            "customers": (balance > 0).sum(axis=1).astype(np.int64),
            "balance_fen": np.rint(balance.sum(axis=1)).astype(np.int64),
            "balance_sq": np.einsum("ij,ij->i", balance, balance),
            "overdue_customers": (overdue > 0).sum(axis=1).astype(np.int64),
            "overdue_balance_fen": np.rint(overdue.sum(axis=1)).astype(np.int64),
            "overdue_sq": np.einsum("ij,ij->i", overdue, overdue),
        }
    ).filter(pl.col("customers") > 0)
    k = min(top_n, n_cust)
    ids = book.customer_ids.to_numpy()
    as_of_row = book.as_of.year * 12 + book.as_of.month - 1 - first
    tops = []
    for kind, grid in (("balance", balance), ("overdue", overdue)):
        # the k largest amounts of every month (ids only where they are shown: the as-of month);
        # zeros are dropped first, as introselect slows down on many equal values
        for m in range(n_months):  # a loop over months, not customers
            if m == as_of_row:
                continue
            values = grid[m][grid[m] > 0]
            largest = np.partition(values, values.size - k)[values.size - k :] if values.size > k else values
            tops.append(
                pl.DataFrame(
                    {
                        "month_end": pl.Series([months[m]] * largest.size, dtype=pl.Date),
                        "kind": kind,
                        "customer_id": pl.Series([None] * largest.size, dtype=pl.Int64),
                        "amount_fen": np.rint(largest).astype(np.int64),
                    }
                )
            )
        if 0 <= as_of_row < n_months:
            row = grid[as_of_row]
            present = np.flatnonzero(row > 0)
            best = (
                present[np.argpartition(row[present], present.size - k)[present.size - k :]]
                if present.size > k
                else present
            )
            tops.append(
                pl.DataFrame(
                    {
                        "month_end": pl.Series([book.as_of] * best.size, dtype=pl.Date),
                        "kind": kind,
                        "customer_id": ids[best],
                        "amount_fen": np.rint(row[best]).astype(np.int64),
                    }
                )
            )
    return {"sums": sums, "top": pl.concat(tops)}


def _month_end_of(index: pl.Series | pl.Expr) -> pl.Expr:
    """The last day of the month with index ``year × 12 + month − 1``."""
    expr = pl.lit(index) if isinstance(index, pl.Series) else index
    return pl.date(expr // 12, expr % 12 + 1, 1).dt.month_end()


CONCENTRATION_SUMS = (
    "customers",
    "balance_fen",
    "balance_sq",
    "overdue_customers",
    "overdue_balance_fen",
    "overdue_sq",
)
TOP_SHARES: tuple[int, ...] = (10, 100)


def merge_concentration(parts: Sequence[dict[str, pl.DataFrame]], *, top_n: int = 100) -> dict[str, pl.DataFrame]:
    """The book's concentration sums and its top ``top_n`` customers per month end and kind."""
    sums = merge_sums([p["sums"] for p in parts], keys=("month_end",), sums=CONCENTRATION_SUMS)
    tops = [p["top"] for p in parts if p["top"].height]
    top = (
        pl.concat(tops)
        .sort(["amount_fen", "customer_id"], descending=[True, False])
        .group_by("month_end", "kind", maintain_order=True)
        .head(top_n)
        .sort("month_end", "kind", "amount_fen", descending=[False, False, True])
        if tops
        else pl.DataFrame(
            schema={"month_end": pl.Date, "kind": pl.String, "customer_id": pl.Int64, "amount_fen": pl.Int64}
        )
    )
    return {"sums": sums, "top": top}


def concentration(merged: dict[str, pl.DataFrame], *, tops: Sequence[int] = TOP_SHARES) -> pl.DataFrame:
    """Per month end: customers, balance, HHI, effective number of borrowers and the top-N shares
    (``top10_share``, ...; N up to the ``top_n`` kept per partition), for the open balance and the
    overdue (M1+) balance."""
    sums, top = merged["sums"], merged["top"]
    require_rows(sums, table="performance")
    ranked = top.with_columns(
        pl.col("amount_fen").rank("ordinal", descending=True).over("month_end", "kind").alias("rank")
    )
    shares = ranked.group_by("month_end").agg(
        *[
            pl.col("amount_fen")
            .filter((pl.col("kind") == kind) & (pl.col("rank") <= n))
            .sum()
            .alias(f"{prefix}top{n}_fen")
            for kind, prefix in (("balance", ""), ("overdue", "overdue_"))
            for n in tops
        ]
    )
    out = sums.join(shares, on="month_end", how="left").with_columns(pl.col(r"^.*top\d+_fen$").fill_null(0))
    bal, od = pl.col("balance_fen").cast(pl.Float64), pl.col("overdue_balance_fen").cast(pl.Float64)
    out = out.with_columns(
        _safe_div(pl.col("balance_sq"), bal**2).alias("hhi"),
        _safe_div(pl.col("overdue_sq"), od**2).alias("overdue_hhi"),
        *[_safe_div(pl.col(f"top{n}_fen"), bal).alias(f"top{n}_share") for n in tops],
        *[_safe_div(pl.col(f"overdue_top{n}_fen"), od).alias(f"overdue_top{n}_share") for n in tops],
    ).with_columns(
        _safe_div(pl.lit(1.0), pl.col("hhi")).alias("effective_borrowers"),
        _safe_div(pl.lit(1.0), pl.col("overdue_hhi")).alias("overdue_effective_borrowers"),
    )
    return out.drop("balance_sq", "overdue_sq").sort("month_end")


def segment_concentration(rates: pl.DataFrame, *, as_of: date) -> pl.DataFrame:
    """HHI of the segments' shares of the open and of the overdue (M1+) balance, per dimension, at ``as_of``.

    ``rates`` is :func:`runoff.risk.delinquency.overdue_rates`; a dimension whose balance sits in one
    segment has HHI 1.
    """
    at = rates.filter((pl.col("month_end") == as_of) & (pl.col("dimension") != TOTAL))
    out = at.group_by("dimension").agg(
        pl.len().alias("segments"),
        pl.col("open_balance_fen").sum().alias("balance_fen"),
        pl.col("m1plus_balance_fen").sum().alias("overdue_balance_fen"),
        (pl.col("open_balance_fen").cast(pl.Float64) ** 2).sum().alias("_sq"),
        (pl.col("m1plus_balance_fen").cast(pl.Float64) ** 2).sum().alias("_osq"),
        pl.col("segment").sort_by("open_balance_fen", descending=True).first().alias("largest_segment"),
        pl.col("open_balance_fen").max().alias("_max"),
        pl.col("segment").sort_by("m1plus_balance_fen", descending=True).first().alias("largest_overdue_segment"),
        pl.col("m1plus_balance_fen").max().alias("_omax"),
    )
    bal, od = pl.col("balance_fen").cast(pl.Float64), pl.col("overdue_balance_fen").cast(pl.Float64)
    return (
        out.with_columns(
            _safe_div(pl.col("_sq"), bal**2).alias("hhi"),
            _safe_div(pl.col("_osq"), od**2).alias("overdue_hhi"),
            _safe_div(pl.col("_max").cast(pl.Float64), bal).alias("largest_share"),
            _safe_div(pl.col("_omax").cast(pl.Float64), od).alias("largest_overdue_share"),
        )
        .drop("_sq", "_osq", "_max", "_omax")
        .with_columns(pl.lit(as_of).alias("month_end"))
        .sort("dimension")
    )
