"""Customer profiles (用户画像): the book's customers segmented by attributes and by behaviour.

For every customer with an open loan at the as-of month end the module builds behaviour features
from the last twelve month ends (worst DPD over 3/6/12 months, months delinquent, payment ratio,
utilization of the credit line, active loans, balance, tenure) and reads the attributes (age band,
city tier, income band, channel, risk grade, tenure band). Behaviour clusters come from scikit-learn
``KMeans`` on the standardized (log where skewed) features, fitted on a seeded sample.

Each segment — one attribute value, or one behaviour cluster — gets its size, balance, overdue
rates (M1+ and M3+ by count of customers and by balance) and mean PD when a scores table exists,
with its **lift** over the book (segment M1+ balance rate ÷ the book's): the internal risk screening
(内部审计与风险排查) starts from the segments flagged with a high lift.

Scale: features are per partition (partitions hold whole customers); the cluster sample is the
``size`` customers with the smallest seeded hash of their id (bottom-k), the same however the book
is partitioned; segment sums are added across partitions and ratios come last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import polars as pl
from sklearn.cluster import KMeans
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from runoff.errors import InvalidInput
from runoff.risk.delinquency import (
    ALL,
    ROW_BUCKETS,
    TOTAL,
    PartitionBook,
    column_names,
    merge_sums,
    require_rows,
)

BEHAVIOUR_FEATURES: dict[str, tuple[str, str]] = {
    "balance_fen": ("余额", "balance"),
    "active_loans": ("在贷笔数", "active loans"),
    "utilization": ("额度使用率", "utilization"),
    "worst_dpd_3m": ("近3月最大逾期天数", "worst DPD 3m"),
    "worst_dpd_6m": ("近6月最大逾期天数", "worst DPD 6m"),
    "worst_dpd_12m": ("近12月最大逾期天数", "worst DPD 12m"),
    "months_delinquent_12m": ("近12月逾期月数", "months delinquent 12m"),
    "payment_ratio_6m": ("近6月还款率", "payment ratio 6m"),
    "tenure_months": ("在网月数", "tenure (months)"),
}
"""Behaviour features (Chinese and English labels)."""

CLUSTER_FEATURES: tuple[str, ...] = (
    "balance_fen",
    "active_loans",
    "utilization",
    "worst_dpd_12m",
    "months_delinquent_12m",
    "payment_ratio_6m",
    "tenure_months",
)
"""What the behaviour clusters are fitted on."""

_LOG_FEATURES = frozenset({"balance_fen", "worst_dpd_12m", "active_loans", "tenure_months"})

ATTRIBUTE_DIMENSIONS: dict[str, tuple[str, str]] = {
    "age_band": ("年龄段", "age band"),
    "city_tier": ("城市等级", "city tier"),
    "income_band": ("月收入", "income band"),
    "channel": ("获客渠道", "channel"),
    "risk_grade": ("风险等级", "risk grade"),
    "tenure_band": ("在网时长", "tenure band"),
}
CLUSTER_DIMENSION = "cluster"

AGE_BANDS: tuple[tuple[int, str], ...] = ((25, "18-24"), (35, "25-34"), (45, "35-44"), (55, "45-54"), (200, "55+"))
TENURE_BANDS: tuple[tuple[int, str], ...] = ((6, "<6m"), (12, "6-11m"), (24, "1-2y"), (48, "2-4y"), (10_000, "4y+"))

PROFILE_SUMS: tuple[str, ...] = (
    "customers",
    "balance_fen",
    "m1plus_customers",
    "m1plus_fen",
    "m3plus_customers",
    "m3plus_fen",
    "scored_customers",
    "pd_sum",
)

FloatArray = npt.NDArray[np.float64]


def _band(column: str, bands: Sequence[tuple[int, str]]) -> pl.Expr:
    expr: pl.Expr = pl.lit("unknown")
    for upper, label in reversed(bands):
        expr = pl.when(pl.col(column) < upper).then(pl.lit(label)).otherwise(expr)
    return pl.when(pl.col(column).is_null()).then(pl.lit("unknown")).otherwise(expr)


def latest_scores(scores: pl.LazyFrame | pl.DataFrame, *, as_of: date) -> pl.LazyFrame:
    """Each customer's latest PD on or before ``as_of`` from a scores table (``customer_id``, ``pd`` and,
    optionally, a date column ``as_of``, ``scored_on`` or ``month_end``)."""
    lf = scores.lazy()
    names = column_names(lf)
    missing = [c for c in ("customer_id", "pd") if c not in names]
    if missing:
        raise InvalidInput(
            f"`scores`: columns {missing} are missing; expected customer_id and pd (and optionally as_of)",
            code="risk.missing_columns",
            field="scores",
        )
    when = next((c for c in ("as_of", "scored_on", "month_end") if c in names), None)
    if when is None:
        return lf.group_by("customer_id").agg(pl.col("pd").mean())
    return (
        lf.filter(pl.col(when) <= as_of)
        .sort(when)
        .group_by("customer_id")
        .agg(pl.col("pd").last())
        .select("customer_id", pl.col("pd").cast(pl.Float64))
    )


def customer_features(
    book: PartitionBook,
    *,
    customers: pl.LazyFrame | pl.DataFrame | None = None,
    accounts: pl.LazyFrame | pl.DataFrame | None = None,
    scores: pl.LazyFrame | pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per customer with an open loan at the book's as-of month end: attributes, behaviour
    features, whether M1+/M3+ now (and the balance there), and PD when ``scores`` is given.

    Reads only month ends up to the as-of date, so nothing later leaks in.
    """
    as_of_month = book.as_of.year * 12 + book.as_of.month - 1
    rows = book.rows.lazy().filter(pl.col("month") > as_of_month - 12)
    age = as_of_month - pl.col("month")  # 0 at the as-of month end
    is_open = pl.col("bucket") <= ROW_BUCKETS.index("M4+")
    now = (age == 0) & is_open
    m3 = pl.col("bucket").is_in([ROW_BUCKETS.index("M3"), ROW_BUCKETS.index("M4+")])
    per_customer = rows.group_by("customer_id").agg(
        pl.col("balance_fen").filter(now).sum(),
        now.sum().cast(pl.Int32).alias("active_loans"),
        pl.col("balance_fen").filter(now & (pl.col("state") > 0)).sum().alias("m1plus_fen"),
        pl.col("balance_fen").filter(now & m3).sum().alias("m3plus_fen"),
        *[pl.col("dpd").filter(is_open & (age < k)).max().fill_null(0).alias(f"worst_dpd_{k}m") for k in (3, 6, 12)],
        pl.col("month")
        .filter(is_open & (pl.col("state") > 0))
        .n_unique()
        .cast(pl.Int32)
        .alias("months_delinquent_12m"),
        pl.col("paid_fen").filter(age < 6).sum().alias("_paid6"),
        pl.col("due_fen").filter(age < 6).sum().alias("_due6"),
    )
    out = per_customer.filter(pl.col("active_loans") > 0).with_columns(
        (pl.col("m1plus_fen") > 0).alias("m1plus"),
        (pl.col("m3plus_fen") > 0).alias("m3plus"),
        pl.when(pl.col("_due6") > 0)
        .then((pl.col("_paid6") / pl.col("_due6")).clip(0.0, 2.0))
        .otherwise(1.0)
        .alias("payment_ratio_6m"),
    )
    attrs = _customer_attributes(customers)
    out = out.join(attrs, on="customer_id", how="left") if attrs is not None else out.with_columns(tenure_months=None)
    out = out.with_columns(
        *[pl.col(c).fill_null("unknown") for c in ATTRIBUTE_DIMENSIONS if attrs is not None],
        pl.col("tenure_months").cast(pl.Float64).fill_null(0.0),
    )
    if attrs is None:
        out = out.with_columns([pl.lit("unknown").alias(c) for c in ATTRIBUTE_DIMENSIONS])
    limits = _credit_limits(accounts)
    if limits is not None:
        out = out.join(limits, on="customer_id", how="left").with_columns(
            pl.when(pl.col("credit_limit_fen") > 0)
            .then(pl.col("balance_fen") / pl.col("credit_limit_fen"))
            .otherwise(None)
            .alias("utilization")
        )
    else:
        out = out.with_columns(pl.lit(None, dtype=pl.Float64).alias("utilization"))
    if scores is not None:
        out = out.join(latest_scores(scores, as_of=book.as_of), on="customer_id", how="left")
    else:
        out = out.with_columns(pl.lit(None, dtype=pl.Float64).alias("pd"))
    return (
        out.select(
            "customer_id",
            *ATTRIBUTE_DIMENSIONS,
            *BEHAVIOUR_FEATURES,
            "m1plus",
            "m1plus_fen",
            "m3plus",
            "m3plus_fen",
            "pd",
        )
        .sort("customer_id")
        .collect()
    )


def _customer_attributes(customers: pl.LazyFrame | pl.DataFrame | None) -> pl.LazyFrame | None:
    if customers is None:
        return None
    lf = customers.lazy()
    names = set(column_names(lf))
    if "customer_id" not in names:
        return None

    def text(col: str) -> pl.Expr:
        return pl.col(col).cast(pl.String) if col in names else pl.lit(None, dtype=pl.String)

    def number(col: str) -> pl.Expr:
        return pl.col(col).cast(pl.Float64) if col in names else pl.lit(None, dtype=pl.Float64)

    return (
        lf.select(
            "customer_id",
            number("age").alias("age"),
            number("tenure_months").alias("tenure_months"),
            text("city_tier").alias("city_tier"),
            text("income_band").alias("income_band"),
            text("channel").alias("channel"),
            text("risk_grade").alias("risk_grade"),
        )
        .unique(subset=["customer_id"], keep="first")
        .with_columns(
            _band("age", AGE_BANDS).alias("age_band"), _band("tenure_months", TENURE_BANDS).alias("tenure_band")
        )
        .drop("age")
    )


def _credit_limits(accounts: pl.LazyFrame | pl.DataFrame | None) -> pl.LazyFrame | None:
    if accounts is None:
        return None
    lf = accounts.lazy()
    names = set(column_names(lf))
    if not {"customer_id", "credit_limit_fen"} <= names:
        return None
    status = pl.col("status") != "closed" if "status" in names else pl.lit(True)
    return lf.filter(status).group_by("customer_id").agg(pl.col("credit_limit_fen").sum())


# --- feature drift ---------------------------------------------------------------------------------------------

FEATURE_BINS: dict[str, tuple[float, ...]] = {
    "balance_fen": (50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000, 5_000_000),
    "active_loans": (1.5, 2.5, 3.5, 5.5, 8.5),
    "utilization": (0.1, 0.25, 0.5, 0.75, 0.9, 1.0),
    "worst_dpd_12m": (0.5, 30.5, 60.5, 90.5, 180.5),
    "months_delinquent_12m": (0.5, 1.5, 2.5, 4.5, 6.5),
    "payment_ratio_6m": (0.5, 0.9, 0.999, 1.001, 1.2),
    "tenure_months": (6, 12, 24, 48),
}
"""Fixed inner bin edges of the behaviour features whose drift (PSI) the early warning watches; fixed edges
make the histograms add across partitions. A missing value has a bin of its own (the last)."""


def feature_histogram(features: pl.DataFrame, *, period: str) -> pl.DataFrame:
    """Customers per (feature, bin) of ``features``, labelled ``period`` (baseline or current)."""
    frames = []
    for name, edges in FEATURE_BINS.items():
        values = features.get_column(name).cast(pl.Float64)
        bins = pl.select(
            pl.when(values.is_null())
            .then(pl.lit(len(edges) + 1))
            .otherwise(pl.lit(pl.Series([float(e) for e in edges])).search_sorted(values, side="left"))
            .cast(pl.Int32)
        ).to_series()
        frames.append(
            pl.DataFrame({"feature": name, "period": period, "bin": bins})
            .group_by("feature", "period", "bin")
            .agg(pl.len().cast(pl.Int64).alias("customers"))
        )
    return pl.concat(frames) if frames else pl.DataFrame()


# --- behaviour clusters ------------------------------------------------------------------------------------------


def _sample_keys(customer_ids: npt.NDArray[np.int64], seed: int) -> npt.NDArray[np.uint64]:
    """A seeded 64-bit hash of each customer id (SplitMix64's finaliser): stable across runs and versions."""
    with np.errstate(over="ignore"):
        x = customer_ids.astype(np.uint64) + np.uint64(seed + 1) * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        out: npt.NDArray[np.uint64] = x ^ (x >> np.uint64(31))
    return out


def sample_customers(features: pl.DataFrame, *, size: int, seed: int) -> pl.DataFrame:
    """The ``size`` customers of ``features`` with the smallest seeded hash (bottom-k sample)."""
    keys = _sample_keys(features.get_column("customer_id").to_numpy(), seed)
    return features.with_columns(pl.Series("_key", keys, dtype=pl.UInt64)).sort("_key").head(size)


def merge_samples(parts: Sequence[pl.DataFrame], *, size: int) -> pl.DataFrame:
    """The book's bottom-k sample: the same customers however the book is partitioned."""
    frames = [p for p in parts if p.height]
    if not frames:
        return parts[0].clear() if parts else pl.DataFrame()
    return pl.concat(frames, how="vertical").sort("_key").head(size).drop("_key")


def _matrix(frame: pl.DataFrame) -> FloatArray:
    cols = []
    for f in CLUSTER_FEATURES:
        values = frame.get_column(f).cast(pl.Float64).fill_null(0.0).to_numpy()
        cols.append(np.log1p(np.maximum(values, 0.0)) if f in _LOG_FEATURES else values)
    out: FloatArray = np.column_stack(cols).astype(np.float64)
    return out


@dataclass(frozen=True, slots=True)
class BehaviourClusters:
    """A fitted scaler + KMeans and a name per cluster (clusters numbered from the least to the most delinquent)."""

    pipeline: Pipeline
    order: tuple[int, ...]  # KMeans label → cluster number
    names: tuple[str, ...]  # by cluster number
    centers: pl.DataFrame  # cluster, feature means in original units

    def assign(self, features: pl.DataFrame) -> pl.Series:
        """The cluster name of each customer of ``features``."""
        if features.height == 0:
            return pl.Series("cluster", [], dtype=pl.String)
        labels = self.pipeline.predict(_matrix(features))
        numbers = np.asarray(self.order)[labels]
        return pl.Series("cluster", np.asarray(self.names, dtype=object)[numbers], dtype=pl.String)


def fit_behaviour_clusters(sample: pl.DataFrame, *, n_clusters: int = 5, seed: int = 0) -> BehaviourClusters:
    """Fit ``StandardScaler`` + ``KMeans(n_clusters, random_state=seed)`` on the sample's behaviour features.

    Clusters are numbered by their mean 12-month worst DPD (0 the best) and named after the two
    features whose standardized centre is furthest from the book's average.
    """
    if n_clusters < 1:
        raise InvalidInput(f"`clusters`: {n_clusters} is not allowed; expected at least 1", field="clusters")
    require_rows(sample, table="performance", what="customers with an open loan at the as-of date")
    k = min(n_clusters, sample.height)
    x = _matrix(sample)
    pipeline = Pipeline([("scale", StandardScaler()), ("kmeans", KMeans(n_clusters=k, random_state=seed, n_init=10))])
    labels = pipeline.fit_predict(x)
    centres_z = pipeline.named_steps["kmeans"].cluster_centers_
    means = (
        sample.with_columns(pl.Series("_label", labels))
        .group_by("_label")
        .agg([pl.col(f).cast(pl.Float64).mean() for f in CLUSTER_FEATURES] + [pl.len().alias("sample_customers")])
        .sort("_label")
    )
    dpd_rank = np.argsort(means.get_column("worst_dpd_12m").to_numpy(), kind="stable")
    order = np.empty(k, dtype=np.int64)
    order[means.get_column("_label").to_numpy()[dpd_rank]] = np.arange(k)
    names = [""] * k
    for label in range(k):
        z = centres_z[label]
        top = np.argsort(-np.abs(z), kind="stable")[:2]
        parts = [f"{'high' if z[i] > 0 else 'low'} {BEHAVIOUR_FEATURES[CLUSTER_FEATURES[i]][1]}" for i in top]
        names[order[label]] = f"C{order[label]}: " + ", ".join(parts)
    centers = means.with_columns(
        pl.col("_label")
        .replace_strict(list(range(k)), [names[o] for o in order], return_dtype=pl.String)
        .alias("cluster")
    ).drop("_label")
    centers = centers.sort("cluster").select("cluster", "sample_customers", *CLUSTER_FEATURES)
    return BehaviourClusters(pipeline=pipeline, order=tuple(int(o) for o in order), names=tuple(names), centers=centers)


# --- segment figures ---------------------------------------------------------------------------------------------


def profile_partition(features: pl.DataFrame, clusters: BehaviourClusters | None = None) -> pl.DataFrame:
    """Partial sums per (dimension, segment): customers, balance, M1+/M3+ customers and balance, PD sum."""
    frame = features.with_columns(clusters.assign(features)) if clusters is not None else features
    dims = [*ATTRIBUTE_DIMENSIONS, *([CLUSTER_DIMENSION] if clusters is not None else [])]
    aggs = [
        pl.len().cast(pl.Int64).alias("customers"),
        pl.col("balance_fen").sum(),
        pl.col("m1plus").sum().cast(pl.Int64).alias("m1plus_customers"),
        pl.col("m1plus_fen").sum(),
        pl.col("m3plus").sum().cast(pl.Int64).alias("m3plus_customers"),
        pl.col("m3plus_fen").sum(),
        pl.col("pd").is_not_null().sum().cast(pl.Int64).alias("scored_customers"),
        pl.col("pd").sum().fill_null(0.0).cast(pl.Float64).alias("pd_sum"),
    ]
    lf = frame.lazy()
    plans = [lf.select(aggs).with_columns(pl.lit(TOTAL).alias("dimension"), pl.lit(ALL).alias("segment"))]
    plans += [
        lf.group_by(pl.col(d).alias("segment")).agg(aggs).with_columns(pl.lit(d).alias("dimension")) for d in dims
    ]
    results = pl.collect_all(plans)
    return pl.concat([r.select("dimension", "segment", *PROFILE_SUMS) for r in results], how="vertical")


def merge_profiles(parts: Sequence[pl.DataFrame]) -> pl.DataFrame:
    return merge_sums(parts, keys=("dimension", "segment"), sums=PROFILE_SUMS)


def profile_table(sums: pl.DataFrame, *, lift_flag: float = 1.5, min_customers: int = 30) -> pl.DataFrame:
    """Each segment's size, share, balance, M1+/M3+ rates by count and balance, mean PD and lift.

    ``lift`` is the segment's M1+ balance rate over the book's; ``flag`` marks segments with at
    least ``min_customers`` customers and a lift of ``lift_flag`` or more (where to look first).
    """
    totals = sums.filter((pl.col("dimension") == TOTAL) & (pl.col("customers") > 0))
    require_rows(totals, table="performance", what="customers with an open loan at the as-of date")
    total = totals.row(0, named=True)
    book_rate = total["m1plus_fen"] / total["balance_fen"] if total["balance_fen"] else None

    def rate(num: str, den: str) -> pl.Expr:
        return pl.when(pl.col(den) > 0).then(pl.col(num) / pl.col(den)).otherwise(None)

    out = sums.with_columns(
        (pl.col("customers") / total["customers"]).alias("customer_share"),
        (pl.col("balance_fen") / total["balance_fen"] if total["balance_fen"] else pl.lit(None)).alias("balance_share"),
        rate("m1plus_customers", "customers").alias("m1plus_count_rate"),
        rate("m1plus_fen", "balance_fen").alias("m1plus_balance_rate"),
        rate("m3plus_customers", "customers").alias("m3plus_count_rate"),
        rate("m3plus_fen", "balance_fen").alias("m3plus_balance_rate"),
        rate("pd_sum", "scored_customers").alias("mean_pd"),
    ).with_columns(
        (pl.col("m1plus_balance_rate") / book_rate if book_rate else pl.lit(None, dtype=pl.Float64)).alias("lift"),
    )
    out = out.with_columns(
        ((pl.col("lift") >= lift_flag) & (pl.col("customers") >= min_customers)).fill_null(False).alias("flag")
    )
    order = {TOTAL: 0, **{d: k + 1 for k, d in enumerate([*ATTRIBUTE_DIMENSIONS, CLUSTER_DIMENSION])}}
    return (
        out.with_columns(pl.col("dimension").replace_strict(order, default=99, return_dtype=pl.Int32).alias("_d"))
        .sort("_d", "segment")
        .drop("_d", "pd_sum")
    )
