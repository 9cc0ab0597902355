"""Segments (客户分群): the account feature table as of a date, and every account placed in exactly one segment.

Features (:data:`runoff.plan.features.FEATURES`) are aggregated from the open loans' states
(:func:`runoff.plan.loan_state.loan_states`): the worst delinquency, the balance, the largest loan's product,
the months left, the next month's payments over income (还款收入比) and a PD. The PD is, in order: a
``pd`` column of a scores table (by loan, account or customer; a PD model's output), else the plan's
``assumptions.pd_by_bucket``, else the book's own observed roll-forward (:func:`observed_pd_by_bucket`:
the share of balance in each bucket at a month end that was charged off within the next 12 months).

Assignment is first match: each account lands in the first segment whose condition it meets. The plan
check reports accounts that met the conditions of more than one segment (the later ones never see them)
and accounts no segment takes; a catch-all segment (no condition) is not counted as an overlap.
Everything here works per partition: summaries are sums, merged with :func:`merge_summaries`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import polars as pl

from runoff.errors import InvalidInput
from runoff.plan.features import AFFORDABILITY, BUCKET_VALUES, PD_BANDS
from runoff.plan.model import Plan
from runoff.servicing.delinquency import BUCKET_UPPER_DAYS

PD_HORIZON_MONTHS = 12
SCORE_KEYS = ("loan_id", "account_id", "customer_id")

SUMMARY_SCHEMA: dict[str, pl.DataType] = {
    "segment": pl.String(),
    "accounts": pl.Int64(),
    "loans": pl.Int64(),
    "balance_fen": pl.Int64(),
    "overdue_fen": pl.Int64(),
    "defaulted_accounts": pl.Int64(),
    "defaulted_balance_fen": pl.Int64(),
    "pd_balance_fen": pl.Float64(),  # Σ pd × balance, for the balance-weighted PD after a merge
}
OVERLAP_SCHEMA: dict[str, pl.DataType] = {"segment": pl.String(), "other": pl.String(), "accounts": pl.Int64()}


def bucket_expr(dpd: pl.Expr) -> pl.Expr:
    """The delinquency bucket (账龄段) of a DPD column: current, M1 1–30, M2 31–60, M3 61–90, M4+."""
    out = pl.lit(BUCKET_VALUES[-1])
    for value, upper in zip(reversed(BUCKET_VALUES[:-1]), reversed(BUCKET_UPPER_DAYS), strict=True):
        out = pl.when(dpd <= upper).then(pl.lit(value)).otherwise(out)
    return out


def _rank(column: str, vocabulary: Sequence[str]) -> pl.Expr:
    return pl.col(column).replace_strict(list(vocabulary), list(range(len(vocabulary))), default=None).cast(pl.Int8)


def observed_pd_counts(performance: pl.LazyFrame, *, horizon_months: int = PD_HORIZON_MONTHS) -> pl.DataFrame:
    """Per bucket: balance exposed at month ends with ``horizon_months`` of history after them, and the part
    of it charged off (核销) within that horizon. One partition's counts; add them up across partitions."""
    last = performance.select(pl.col("month_end").max()).collect().item()
    if last is None:
        return pl.DataFrame(schema={"bucket": pl.String, "exposed_fen": pl.Int64, "defaulted_fen": pl.Int64})
    offset = f"{horizon_months}mo"
    charged = performance.filter(pl.col("bucket") == "charged-off").select(
        "loan_id", pl.col("month_end").alias("charged_off_on")
    )
    rows = (
        performance.filter(
            pl.col("status").eq("active")
            & pl.col("bucket").is_in(list(BUCKET_VALUES))
            & (pl.col("month_end").dt.offset_by(offset) <= last)
        )
        .select("loan_id", "month_end", "bucket", "principal_balance_fen")
        .join(charged, on="loan_id", how="left")
        .with_columns(
            (
                pl.col("charged_off_on").is_not_null()
                & (pl.col("charged_off_on") > pl.col("month_end"))
                & (pl.col("charged_off_on") <= pl.col("month_end").dt.offset_by(offset))
            ).alias("defaulted")
        )
    )
    return (
        rows.group_by("bucket")
        .agg(
            pl.col("principal_balance_fen").sum().alias("exposed_fen"),
            pl.col("principal_balance_fen").filter(pl.col("defaulted")).sum().alias("defaulted_fen"),
        )
        .collect()
    )


def observed_pd_by_bucket(counts: Sequence[pl.DataFrame]) -> dict[str, float] | None:
    """The 12-month PD per bucket from per-partition counts; None when the book is too short to observe it.

    A bucket never observed takes the PD of the nearest worse bucket that was (1.0 past the last).
    """
    merged = (
        pl.concat(counts).group_by("bucket").agg(pl.col("exposed_fen").sum(), pl.col("defaulted_fen").sum())
        if counts
        else None
    )
    if merged is None or merged.height == 0 or merged.get_column("exposed_fen").sum() == 0:
        return None
    found = {
        r["bucket"]: r["defaulted_fen"] / r["exposed_fen"] for r in merged.to_dicts() if (r["exposed_fen"] or 0) > 0
    }
    out: dict[str, float] = {}
    worse = 1.0
    for bucket in reversed(BUCKET_VALUES):
        worse = found.get(bucket, worse)
        out[bucket] = worse
    return {b: out[b] for b in BUCKET_VALUES}


def _largest_loan(states: pl.DataFrame) -> pl.DataFrame:
    return (
        states.sort(["account_id", "outstanding_principal_fen", "loan_id"], descending=[False, True, False])
        .group_by("account_id", maintain_order=True)
        .agg(pl.col("product_id").first().alias("product"), pl.col("method").first())
    )


def account_features(
    states: pl.DataFrame,
    customers: pl.DataFrame | None,
    *,
    plan: Plan,
    scores: pl.DataFrame | None = None,
    pd_by_bucket: Mapping[str, float] | None = None,
) -> pl.DataFrame:
    """One row per account: the features of :data:`runoff.plan.features.FEATURES` (and rank columns).

    ``customers`` gives ``monthly_income_fen`` and optionally ``city_tier`` and ``region`` (by ``customer_id``);
    without it income and affordability are null. ``scores`` carries ``pd`` by one of :data:`SCORE_KEYS`.
    ``pd_by_bucket`` is the fallback (the plan's assumption wins over it).
    """
    a = plan.assumptions
    accounts = states.group_by("account_id", maintain_order=True).agg(
        pl.col("customer_id").first(),
        pl.col("dpd").max(),
        pl.col("outstanding_principal_fen").sum().alias("balance_fen"),
        pl.col("overdue_fen").sum(),
        pl.len().cast(pl.Int64).alias("loans"),
        pl.col("n_future").max().cast(pl.Int64).alias("term_left"),
        pl.col("next_payment_fen").sum().alias("account_payment_fen"),
    )
    accounts = accounts.join(_largest_loan(states), on="account_id", how="left").with_columns(
        bucket_expr(pl.col("dpd")).alias("bucket")
    )
    key = accounts.schema["customer_id"]
    if customers is not None:
        wanted = [c for c in ("monthly_income_fen", "city_tier", "region") if c in customers.columns]
        people = customers.select(pl.col("customer_id").cast(key), *wanted).rename({"monthly_income_fen": "income_fen"})
        accounts = accounts.join(people, on="customer_id", how="left")
    for name, dtype in (("income_fen", pl.Int64), ("city_tier", pl.String), ("region", pl.String)):
        if name not in accounts.columns:
            accounts = accounts.with_columns(pl.lit(None, dtype=dtype).alias(name))
    accounts = accounts.with_columns(pl.col("region").fill_null(plan.region))
    accounts = _with_pd(accounts, states, scores, a.pd_by_bucket or pd_by_bucket)
    bands = [float(b) for b in a.pd_bands]
    band = pl.lit(PD_BANDS[-1])
    for label, cut in zip(reversed(PD_BANDS[:-1]), reversed(bands), strict=True):
        band = pl.when(pl.col("pd") < cut).then(pl.lit(label)).otherwise(band)
    income = pl.col("income_fen").cast(pl.Float64)
    ratio = pl.when(income > 0).then(pl.col("account_payment_fen") / income).otherwise(None)
    afford = (
        pl.when(pl.col("payment_to_income").is_null())
        .then(None)
        .when(pl.col("payment_to_income") > float(a.max_payment_to_income))
        .then(pl.lit(AFFORDABILITY[2]))
        .when(pl.col("payment_to_income") > float(a.stretched_payment_to_income))
        .then(pl.lit(AFFORDABILITY[1]))
        .otherwise(pl.lit(AFFORDABILITY[0]))
    )
    return (
        accounts.with_columns(
            pl.when(pl.col("pd").is_null()).then(None).otherwise(band).alias("pd_band"),
            ratio.alias("payment_to_income"),
        )
        .with_columns(afford.alias("affordability"))
        .with_columns(
            _rank("bucket", BUCKET_VALUES).alias("bucket_rank"),
            _rank("pd_band", PD_BANDS).alias("pd_band_rank"),
            _rank("affordability", AFFORDABILITY).alias("affordability_rank"),
        )
    )


def _with_pd(
    accounts: pl.DataFrame,
    states: pl.DataFrame,
    scores: pl.DataFrame | None,
    by_bucket: Mapping[str, object] | None,
) -> pl.DataFrame:
    """The account's PD: the scores table's (worst loan for loan scores), else by its worst bucket."""
    if scores is not None and "pd" in scores.columns:
        key = next((k for k in SCORE_KEYS if k in scores.columns), None)
        if key is None:
            raise InvalidInput(f"`scores`: a pd table needs one of {', '.join(SCORE_KEYS)} to join on", field="scores")
        pd = scores.select(pl.col(key), pl.col("pd").cast(pl.Float64))
        if key == "loan_id":
            pd = (
                states.select("loan_id", "account_id")
                .join(pd.with_columns(pl.col("loan_id").cast(states.schema["loan_id"])), on="loan_id")
                .group_by("account_id")
                .agg(pl.col("pd").max())
            )
            key = "account_id"
        pd = pd.with_columns(pl.col(key).cast(accounts.schema[key])).group_by(key).agg(pl.col("pd").max())
        return accounts.join(pd, on=key, how="left")
    if by_bucket is None:
        return accounts.with_columns(pl.lit(None, dtype=pl.Float64).alias("pd"))
    table = {b: float(str(v)) for b, v in by_bucket.items()}
    return accounts.with_columns(pl.col("bucket").replace_strict(table, return_dtype=pl.Float64).alias("pd"))


@dataclass(frozen=True, slots=True)
class Assignment:
    """Accounts with their segment (null: none) and wave, the per-segment summary and the overlaps."""

    features: pl.DataFrame
    summary: pl.DataFrame
    overlaps: pl.DataFrame
    unassigned: int
    in_several: int


def assign_segments(features: pl.DataFrame, plan: Plan) -> Assignment:
    """Place each account in the first segment whose condition it meets; count overlaps and gaps."""
    conditions = {s.id: s.when.to_polars() for s in plan.segments}
    choice: pl.Expr = pl.lit(None, dtype=pl.String)
    for seg in reversed(plan.segments):
        choice = pl.when(conditions[seg.id]).then(pl.lit(seg.id)).otherwise(choice)
    checked = [s.id for s in plan.segments if not s.catch_all]
    waves = {sid: w.wave for w in plan.wave_timelines() for sid in w.segments}
    flags = features.select(*(conditions[sid].alias(sid) for sid in checked)) if checked else pl.DataFrame()
    placed = features.with_columns(
        choice.alias("segment"),
    ).with_columns(pl.col("segment").replace_strict(waves, default=None, return_dtype=pl.String).alias("wave"))
    in_several = 0
    overlaps: list[dict[str, object]] = []
    if len(checked) > 1:
        in_several = int(flags.select(pl.sum_horizontal(pl.all().cast(pl.Int32)) > 1).to_series().sum())
        pairs = flags.select(
            [
                (pl.col(a) & pl.col(b)).sum().alias(f"{i}|{j}")
                for i, a in enumerate(checked)
                for j, b in enumerate(checked)
                if i < j
            ]
        ).row(0, named=True)
        for name, count in pairs.items():
            if count:
                i, j = (int(x) for x in name.split("|"))
                overlaps.append({"segment": checked[i], "other": checked[j], "accounts": int(count)})
    unassigned = int(placed.get_column("segment").null_count())
    return Assignment(
        features=placed,
        summary=segment_summary(placed, plan),
        overlaps=pl.DataFrame(overlaps, schema=OVERLAP_SCHEMA, orient="row"),
        unassigned=unassigned,
        in_several=in_several,
    )


def segment_summary(placed: pl.DataFrame, plan: Plan) -> pl.DataFrame:
    """Accounts, loans, balance, arrears and accounts in default per segment (every segment, empty ones too)."""
    default_dpd = plan.assumptions.default_dpd
    in_default = pl.col("dpd") > default_dpd
    got = (
        placed.filter(pl.col("segment").is_not_null())
        .group_by("segment")
        .agg(
            pl.len().cast(pl.Int64).alias("accounts"),
            pl.col("loans").sum().cast(pl.Int64),
            pl.col("balance_fen").sum().cast(pl.Int64),
            pl.col("overdue_fen").sum().cast(pl.Int64),
            in_default.sum().cast(pl.Int64).alias("defaulted_accounts"),
            pl.col("balance_fen").filter(in_default).sum().cast(pl.Int64).alias("defaulted_balance_fen"),
            (pl.col("pd").fill_null(0.0) * pl.col("balance_fen")).sum().cast(pl.Float64).alias("pd_balance_fen"),
        )
    )
    order = pl.DataFrame({"segment": [s.id for s in plan.segments]})
    return (
        order.join(got, on="segment", how="left")
        .with_columns(pl.exclude("segment").fill_null(0))
        .select([pl.col(c).cast(t) for c, t in SUMMARY_SCHEMA.items()])
    )


def merge_summaries(parts: Sequence[pl.DataFrame], plan: Plan) -> pl.DataFrame:
    """Per-partition summaries added up, in the plan's segment order."""
    if not parts:
        return segment_summary(pl.DataFrame(schema={"segment": pl.String}), plan)
    order = pl.DataFrame({"segment": [s.id for s in plan.segments]})
    summed = pl.concat(parts).group_by("segment").agg(pl.exclude("segment").sum())
    return (
        order.join(summed, on="segment", how="left")
        .with_columns(pl.exclude("segment").fill_null(0))
        .select([pl.col(c).cast(t) for c, t in SUMMARY_SCHEMA.items()])
    )


def merge_overlaps(parts: Sequence[pl.DataFrame]) -> pl.DataFrame:
    if not parts:
        return pl.DataFrame(schema=OVERLAP_SCHEMA)
    return pl.concat(parts).group_by(["segment", "other"], maintain_order=True).agg(pl.col("accounts").sum())


def offer_candidates(states: pl.DataFrame, placed: pl.DataFrame, values: pl.DataFrame) -> pl.DataFrame:
    """Each loan's state with its account's segment, PD, income and payments, and its original-schedule value."""
    account = placed.select("account_id", "segment", "wave", "pd", "income_fen", "account_payment_fen", "region")
    return (
        states.join(account, on="account_id", how="inner")
        .join(values, on="loan_id", how="left")
        .filter(pl.col("segment").is_not_null())
    )


def as_of_default(performance: pl.LazyFrame) -> date:
    """The book's last month end: the default offer date."""
    last = performance.select(pl.col("month_end").max()).collect().item()
    if last is None:
        raise InvalidInput("the book has no performance snapshots; generate or import a book first")
    day: date = last
    return day
