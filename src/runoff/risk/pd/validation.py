"""Model validation (模型验证): discrimination, stability and calibration of a PD model.

* discrimination: AUC and Gini (= 2·AUC − 1) from :func:`sklearn.metrics.roc_auc_score`; KS, the largest
  gap between the cumulative shares of bads and goods over the score (:func:`sklearn.metrics.roc_curve`);
* stability: the population stability index PSI = Σ (a − e)·ln(a / e) over shares per bin, for the score and
  for each feature (CSI); the usual reading is < 0.10 stable, 0.10–0.25 watch, > 0.25 shifted;
* calibration: observed against predicted default rate by decile of PD, the Brier score
  (:func:`sklearn.metrics.brier_score_loss`) and the Hosmer–Lemeshow statistic
  Σ (O − E)² / (E·(1 − E/n)) over G risk groups, χ² with G − 2 degrees of freedom
  (Hosmer & Lemeshow, *Applied Logistic Regression*, 2nd ed., §5.2.2), plus an exact binomial test per group;
* score distributions: counts, bads and bad rates by score band, with the cumulative shares behind KS.

Every function takes ``y`` (1 = bad, 0 = good) and ``pd`` (a probability, higher = riskier); points scores
(higher = safer) are used only for the distribution tables. Floats are fine here: these are analytics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy import stats
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve

from runoff.risk.pd import ModelInputError

FloatArray = npt.NDArray[np.float64]

PSI_EPSILON = 1e-4
"""Share used in place of an empty bin's 0 so ln(a / e) stays finite (the usual convention)."""

PSI_STABLE, PSI_SHIFTED = 0.10, 0.25
"""Reading of a PSI: below 0.10 stable, 0.10–0.25 watch, above 0.25 the population has shifted."""


def _arrays(y: npt.ArrayLike, pd: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    yy = np.asarray(y, dtype=np.float64).ravel()
    pp = np.asarray(pd, dtype=np.float64).ravel()
    if yy.size != pp.size:
        raise ModelInputError(f"`pd`: {pp.size} values for {yy.size} outcomes; expected one PD per outcome")
    if yy.size == 0:
        raise ModelInputError("`y`: no rows; expected at least one good and one bad outcome")
    if not np.isin(yy, (0.0, 1.0)).all():
        bad = np.unique(yy[~np.isin(yy, (0.0, 1.0))])[:5].tolist()
        raise ModelInputError(f"`y`: values {bad} are not outcomes; expected 1 (bad) or 0 (good)")
    if not np.isfinite(pp).all():
        raise ModelInputError("`pd`: has missing or infinite values; expected a probability for every row")
    return yy, pp


def _two_classes(y: FloatArray) -> None:
    n_bad = int(y.sum())
    if n_bad == 0 or n_bad == y.size:
        only = "bad" if n_bad else "good"
        raise ModelInputError(
            f"`y`: every one of the {y.size} outcomes is {only}; expected both goods and bads to measure discrimination"
        )


def auc(y: npt.ArrayLike, pd: npt.ArrayLike) -> float:
    """Area under the ROC curve: the chance a random bad gets a higher PD than a random good (ties count half)."""
    yy, pp = _arrays(y, pd)
    _two_classes(yy)
    return float(roc_auc_score(yy, pp))


def gini(y: npt.ArrayLike, pd: npt.ArrayLike) -> float:
    """Gini coefficient (accuracy ratio) = 2·AUC − 1."""
    return 2.0 * auc(y, pd) - 1.0


@dataclass(frozen=True, slots=True)
class KS:
    """Kolmogorov–Smirnov statistic and the PD threshold where the bad and good shares are furthest apart."""

    statistic: float
    threshold: float


def ks(y: npt.ArrayLike, pd: npt.ArrayLike) -> KS:
    """KS = max over thresholds of (share of bads with PD ≥ t) − (share of goods with PD ≥ t)."""
    yy, pp = _arrays(y, pd)
    _two_classes(yy)
    fpr, tpr, thresholds = roc_curve(yy, pp)
    gap = tpr - fpr
    k = int(np.argmax(gap))
    return KS(statistic=float(gap[k]), threshold=float(min(thresholds[k], 1.0)))


def roc_points(y: npt.ArrayLike, pd: npt.ArrayLike, *, max_points: int = 201) -> pl.DataFrame:
    """The ROC curve (false and true positive rates), thinned to about ``max_points`` for charts."""
    yy, pp = _arrays(y, pd)
    _two_classes(yy)
    fpr, tpr, thresholds = roc_curve(yy, pp, drop_intermediate=True)
    keep = _thin(fpr.size, max_points)
    return pl.DataFrame(
        {
            "false_positive_rate": fpr[keep],
            "true_positive_rate": tpr[keep],
            "threshold": np.minimum(thresholds, 1.0)[keep],
        }
    )


def ks_curve(y: npt.ArrayLike, pd: npt.ArrayLike, *, max_points: int = 201) -> pl.DataFrame:
    """Cumulative shares of bads and goods as the PD threshold falls (the KS chart): columns share, bad, good, gap."""
    yy, pp = _arrays(y, pd)
    _two_classes(yy)
    fpr, tpr, thresholds = roc_curve(yy, pp, drop_intermediate=False)
    order = np.argsort(-pp, kind="stable")
    n = yy.size
    # share of the population at or above each threshold, for the x-axis
    share = np.searchsorted(-pp[order], -thresholds, side="right") / n
    keep = _thin(fpr.size, max_points)
    return pl.DataFrame(
        {
            "population_share": share[keep],
            "bad_share": tpr[keep],
            "good_share": fpr[keep],
            "gap": (tpr - fpr)[keep],
            "threshold": np.minimum(thresholds, 1.0)[keep],
        }
    )


def _thin(n: int, max_points: int) -> npt.NDArray[np.int64]:
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    idx = np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))
    return idx


# --- stability ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PSI:
    """Population stability index and its table (bin, expected and actual counts and shares, contribution)."""

    value: float
    table: pl.DataFrame

    @property
    def reading(self) -> str:
        if self.value < PSI_STABLE:
            return "stable"
        return "watch" if self.value < PSI_SHIFTED else "shifted"


def quantile_edges(values: npt.ArrayLike, *, n_bins: int = 10) -> FloatArray:
    """Inner cut points at the quantiles of ``values`` (missing values ignored), duplicates removed."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return np.zeros(0, dtype=np.float64)
    qs = np.quantile(v, np.linspace(0.0, 1.0, n_bins + 1)[1:-1], method="linear")
    edges: FloatArray = np.unique(qs)
    return edges


def psi(
    expected: npt.ArrayLike,
    actual: npt.ArrayLike,
    *,
    edges: Sequence[float] | FloatArray | None = None,
    n_bins: int = 10,
) -> PSI:
    """PSI of ``actual`` against ``expected`` over bins cut at ``edges`` (default: deciles of ``expected``).

    Bin ``k`` holds ``edges[k-1] <= x < edges[k]``; missing values (NaN) form their own last bin.
    """
    e = np.asarray(expected, dtype=np.float64).ravel()
    a = np.asarray(actual, dtype=np.float64).ravel()
    if e.size == 0 or a.size == 0:
        which = "expected" if e.size == 0 else "actual"
        raise ModelInputError(f"`{which}`: no values; PSI needs both populations")
    cuts = quantile_edges(e, n_bins=n_bins) if edges is None else np.asarray(edges, dtype=np.float64)
    k = cuts.size + 1

    def counts(x: FloatArray) -> npt.NDArray[np.int64]:
        idx = np.where(np.isnan(x), k, np.searchsorted(cuts, x, side="right"))
        out: npt.NDArray[np.int64] = np.bincount(idx, minlength=k + 1)
        return out

    ce, ca = counts(e), counts(a)
    has_missing = bool(ce[k] or ca[k])
    if not has_missing:
        ce, ca = ce[:k], ca[:k]
    se, sa = ce / e.size, ca / a.size
    se_, sa_ = np.maximum(se, PSI_EPSILON), np.maximum(sa, PSI_EPSILON)
    contribution = (sa_ - se_) * np.log(sa_ / se_)
    lower = np.concatenate([[-np.inf], cuts])
    upper = np.concatenate([cuts, [np.inf]])
    labels = [_interval(lo, hi) for lo, hi in zip(lower, upper, strict=True)]
    if has_missing:
        labels.append("missing")
    table = pl.DataFrame(
        {
            "bin": labels,
            "expected_count": ce,
            "actual_count": ca,
            "expected_share": se,
            "actual_share": sa,
            "contribution": contribution,
        }
    )
    return PSI(value=float(contribution.sum()), table=table)


@dataclass(frozen=True, slots=True)
class Baseline:
    """A development population kept as bins and shares, so later populations get a PSI without its rows."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]  # per bin, then missing

    @classmethod
    def of(
        cls, values: npt.ArrayLike, *, edges: Sequence[float] | FloatArray | None = None, n_bins: int = 10
    ) -> Baseline:
        v = np.asarray(values, dtype=np.float64).ravel()
        cuts = quantile_edges(v, n_bins=n_bins) if edges is None else np.asarray(edges, dtype=np.float64)
        k = cuts.size + 1
        idx = np.where(np.isnan(v), k, np.searchsorted(cuts, v, side="right"))
        return cls(tuple(float(c) for c in cuts), tuple(int(c) for c in np.bincount(idx, minlength=k + 1)))

    def psi(self, actual: npt.ArrayLike) -> PSI:
        """PSI of ``actual`` against this baseline, over the baseline's bins."""
        cuts = np.asarray(self.edges, dtype=np.float64)
        k = cuts.size + 1
        expected = np.repeat(np.arange(k + 1, dtype=np.float64), self.counts)
        # the baseline's bin numbers stand in for its values: bin b ↦ value b, cut between b − ½ and b + ½
        code = np.where(expected == k, np.nan, expected)
        a = np.asarray(actual, dtype=np.float64).ravel()
        a_code = np.where(np.isnan(a), np.nan, np.searchsorted(cuts, a, side="right").astype(np.float64))
        result = psi(code, a_code, edges=np.arange(k - 1, dtype=np.float64) + 0.5)
        lower = np.concatenate([[-np.inf], cuts])
        upper = np.concatenate([cuts, [np.inf]])
        labels = [_interval(lo, hi) for lo, hi in zip(lower, upper, strict=True)]
        if result.table.height > k:
            labels.append("missing")
        return PSI(value=result.value, table=result.table.with_columns(pl.Series("bin", labels)))

    def as_dict(self) -> dict[str, Any]:
        return {"edges": list(self.edges), "counts": list(self.counts)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Baseline:
        return cls(tuple(float(x) for x in data["edges"]), tuple(int(x) for x in data["counts"]))


def _interval(lo: float, hi: float) -> str:
    def fmt(x: float) -> str:
        return f"{x:.6g}"

    if np.isneginf(lo):
        return f"< {fmt(hi)}"
    if np.isposinf(hi):
        return f">= {fmt(lo)}"
    return f"[{fmt(lo)}, {fmt(hi)})"


def feature_psi(
    expected: pl.DataFrame,
    actual: pl.DataFrame,
    *,
    features: Sequence[str] | None = None,
    edges: Mapping[str, Sequence[float] | FloatArray] | None = None,
    n_bins: int = 10,
) -> pl.DataFrame:
    """PSI per feature (characteristic stability, CSI), largest first: columns feature, psi, reading.

    ``edges`` gives a feature's bins (a model's own bins, when it has them); otherwise deciles of ``expected``.
    """
    names = list(features) if features is not None else [c for c in expected.columns if c in actual.columns]
    missing = [n for n in names if n not in expected.columns or n not in actual.columns]
    if missing:
        raise ModelInputError(f"`features`: {missing} are not in both populations; expected columns of both frames")
    rows = []
    for name in names:
        result = psi(
            expected.get_column(name).cast(pl.Float64).to_numpy(),
            actual.get_column(name).cast(pl.Float64).to_numpy(),
            edges=None if edges is None or name not in edges else edges[name],
            n_bins=n_bins,
        )
        rows.append({"feature": name, "psi": result.value, "reading": result.reading})
    schema = {"feature": pl.String, "psi": pl.Float64, "reading": pl.String}
    return pl.DataFrame(rows, schema=schema).sort("psi", descending=True)


# --- calibration -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HosmerLemeshow:
    """Hosmer–Lemeshow goodness of fit: statistic, degrees of freedom and the χ² p-value."""

    statistic: float
    dof: int
    p_value: float


def risk_groups(pd: npt.ArrayLike, *, n_groups: int = 10) -> npt.NDArray[np.int64]:
    """Group number 0..G−1 of each row: equal-count groups of ascending PD (deciles of risk for G = 10)."""
    pp = np.asarray(pd, dtype=np.float64).ravel()
    order = np.argsort(pp, kind="stable")
    groups = np.empty(pp.size, dtype=np.int64)
    for g, chunk in enumerate(np.array_split(order, min(n_groups, max(pp.size, 1)))):
        groups[chunk] = g
    return groups


def hosmer_lemeshow(y: npt.ArrayLike, pd: npt.ArrayLike, *, n_groups: int = 10, dof_offset: int = 2) -> HosmerLemeshow:
    """HL = Σ_g (O_g − E_g)² / (E_g·(1 − E_g/n_g)) over equal-count groups of PD; χ² with G − ``dof_offset`` dof.

    ``dof_offset`` is 2 on the development sample (two fitted parameters' worth of constraint, as Hosmer and
    Lemeshow derive); on an independent validation sample some use 0 (G degrees of freedom).
    """
    yy, pp = _arrays(y, pd)
    groups = risk_groups(pp, n_groups=n_groups)
    g = int(groups.max()) + 1
    n = np.bincount(groups, minlength=g).astype(np.float64)
    observed = np.bincount(groups, weights=yy, minlength=g)
    expected = np.bincount(groups, weights=pp, minlength=g)
    variance = expected * (1.0 - expected / n)
    terms = np.where(variance > 0, (observed - expected) ** 2 / np.where(variance > 0, variance, 1.0), 0.0)
    statistic = float(terms.sum())
    dof = max(g - dof_offset, 1)
    return HosmerLemeshow(statistic=statistic, dof=dof, p_value=float(stats.chi2.sf(statistic, dof)))


@dataclass(frozen=True, slots=True)
class Calibration:
    """Calibration by risk group (decile of PD), with the Brier score and Hosmer–Lemeshow."""

    table: pl.DataFrame
    brier: float
    hosmer_lemeshow: HosmerLemeshow
    mean_pd: float
    observed_rate: float


def calibration(y: npt.ArrayLike, pd: npt.ArrayLike, *, n_groups: int = 10, dof_offset: int = 2) -> Calibration:
    """Observed against predicted default rate per decile of PD, each with an exact two-sided binomial test."""
    yy, pp = _arrays(y, pd)
    groups = risk_groups(pp, n_groups=n_groups)
    g = int(groups.max()) + 1
    n = np.bincount(groups, minlength=g)
    bads = np.bincount(groups, weights=yy, minlength=g)
    expected = np.bincount(groups, weights=pp, minlength=g)
    lo = np.array([pp[groups == k].min() for k in range(g)])
    hi = np.array([pp[groups == k].max() for k in range(g)])
    mean_pd = expected / n
    p_values = [
        float(stats.binomtest(round(bads[k]), int(n[k]), float(np.clip(mean_pd[k], 1e-12, 1 - 1e-12))).pvalue)
        for k in range(g)
    ]
    table = pl.DataFrame(
        {
            "group": np.arange(1, g + 1),
            "count": n,
            "pd_min": lo,
            "pd_max": hi,
            "mean_pd": mean_pd,
            "expected_bads": expected,
            "observed_bads": bads.astype(np.int64),
            "observed_rate": bads / n,
            "binomial_p_value": p_values,
        }
    )
    return Calibration(
        table=table,
        brier=float(brier_score_loss(yy, pp)),
        hosmer_lemeshow=hosmer_lemeshow(yy, pp, n_groups=n_groups, dof_offset=dof_offset),
        mean_pd=float(pp.mean()),
        observed_rate=float(yy.mean()),
    )


# --- score distributions -----------------------------------------------------------------------


def score_bands(score: npt.ArrayLike, *, width: float = 20.0) -> FloatArray:
    """Inner edges of bands ``width`` points wide covering the scores (e.g. 500, 520, 540, ...)."""
    s = np.asarray(score, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return np.zeros(0, dtype=np.float64)
    lo = np.floor(s.min() / width) * width
    hi = np.ceil(s.max() / width) * width
    edges: FloatArray = np.arange(lo + width, hi, width, dtype=np.float64)
    return edges


def score_distribution(
    score: npt.ArrayLike,
    y: npt.ArrayLike | None = None,
    *,
    edges: Sequence[float] | FloatArray | None = None,
    width: float = 20.0,
) -> pl.DataFrame:
    """Customers per score band (low score = risky first) with bads, bad rate and the cumulative shares behind KS."""
    s = np.asarray(score, dtype=np.float64).ravel()
    if s.size == 0:
        raise ModelInputError("`score`: no values; expected at least one scored customer")
    cuts = score_bands(s, width=width) if edges is None else np.asarray(edges, dtype=np.float64)
    k = cuts.size + 1
    idx = np.searchsorted(cuts, s, side="right")
    count = np.bincount(idx, minlength=k)
    lower = np.concatenate([[-np.inf], cuts])
    upper = np.concatenate([cuts, [np.inf]])
    out: dict[str, Any] = {
        "band": [_interval(lo, hi) for lo, hi in zip(lower, upper, strict=True)],
        "score_from": lower,
        "score_to": upper,
        "count": count,
        "share": count / s.size,
    }
    if y is not None:
        yy = np.asarray(y, dtype=np.float64).ravel()
        if yy.size != s.size:
            raise ModelInputError(f"`y`: {yy.size} outcomes for {s.size} scores; expected one outcome per score")
        bads = np.bincount(idx, weights=yy, minlength=k)
        goods = count - bads
        total_bad, total_good = max(bads.sum(), 1.0), max(goods.sum(), 1.0)
        out |= {
            "bads": bads.astype(np.int64),
            "bad_rate": np.divide(bads, count, out=np.full(k, np.nan), where=count > 0),
            "cum_bad_share": np.cumsum(bads) / total_bad,
            "cum_good_share": np.cumsum(goods) / total_good,
        }
    return pl.DataFrame(out)


def score_by_segment(
    score: npt.ArrayLike, pd: npt.ArrayLike, y: npt.ArrayLike, segment: Sequence[str] | pl.Series
) -> pl.DataFrame:
    """Per segment (e.g. the delinquency bucket at the observation date): customers, mean and quartiles of the
    score, mean PD, observed bad rate."""
    frame = pl.DataFrame(
        {
            "segment": pl.Series(segment, dtype=pl.String),
            "score": np.asarray(score, dtype=np.float64),
            "pd": np.asarray(pd, dtype=np.float64),
            "bad": np.asarray(y, dtype=np.float64),
        }
    )
    return (
        frame.group_by("segment")
        .agg(
            pl.len().alias("count"),
            pl.col("score").mean().alias("score_mean"),
            pl.col("score").quantile(0.25).alias("score_p25"),
            pl.col("score").median().alias("score_median"),
            pl.col("score").quantile(0.75).alias("score_p75"),
            pl.col("pd").mean().alias("mean_pd"),
            pl.col("bad").mean().alias("observed_rate"),
        )
        .sort("score_mean", descending=True)
    )


# --- the whole report --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Discrimination:
    auc: float
    gini: float
    ks: float
    ks_threshold: float
    count: int
    bads: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "auc": self.auc,
            "gini": self.gini,
            "ks": self.ks,
            "ks_threshold": self.ks_threshold,
            "count": self.count,
            "bads": self.bads,
            "bad_rate": self.bads / self.count if self.count else None,
        }


def discrimination(y: npt.ArrayLike, pd: npt.ArrayLike) -> Discrimination:
    """AUC, Gini and KS of one sample."""
    yy, pp = _arrays(y, pd)
    a = auc(yy, pp)
    k = ks(yy, pp)
    return Discrimination(
        auc=a, gini=2 * a - 1, ks=k.statistic, ks_threshold=k.threshold, count=int(yy.size), bads=int(yy.sum())
    )


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """What a risk committee reads about one PD model on one sample, against its development sample."""

    sample: str
    discrimination: Discrimination
    calibration: Calibration
    score_psi: PSI | None
    feature_psi: pl.DataFrame | None
    roc: pl.DataFrame
    ks_curve: pl.DataFrame
    score_distribution: pl.DataFrame
    by_segment: pl.DataFrame | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: metrics, then the tables as lists of rows (the report's input)."""
        hl = self.calibration.hosmer_lemeshow
        return {
            "sample": self.sample,
            **self.discrimination.as_dict(),
            "brier": self.calibration.brier,
            "hosmer_lemeshow": {"statistic": hl.statistic, "dof": hl.dof, "p_value": hl.p_value},
            "mean_pd": self.calibration.mean_pd,
            "observed_rate": self.calibration.observed_rate,
            "score_psi": None if self.score_psi is None else self.score_psi.value,
            "score_psi_reading": None if self.score_psi is None else self.score_psi.reading,
            "tables": {
                "calibration": self.calibration.table.to_dicts(),
                "score_psi": None if self.score_psi is None else self.score_psi.table.to_dicts(),
                "feature_psi": None if self.feature_psi is None else self.feature_psi.to_dicts(),
                "roc": self.roc.to_dicts(),
                "ks_curve": self.ks_curve.to_dicts(),
                "score_distribution": self.score_distribution.to_dicts(),
                "score_by_segment": None if self.by_segment is None else self.by_segment.to_dicts(),
            },
            **self.extra,
        }


def baseline_feature_psi(baselines: Mapping[str, Baseline], frame: pl.DataFrame) -> pl.DataFrame:
    """PSI per feature against stored baselines, largest first: columns feature, psi, reading."""
    rows = []
    for name, baseline in baselines.items():
        if name not in frame.columns:
            raise ModelInputError(f"`features`: {name!r} has a baseline but is not in the data")
        result = baseline.psi(frame.get_column(name).cast(pl.Float64).fill_null(np.nan).to_numpy())
        rows.append({"feature": name, "psi": result.value, "reading": result.reading})
    schema = {"feature": pl.String, "psi": pl.Float64, "reading": pl.String}
    return pl.DataFrame(rows, schema=schema).sort("psi", descending=True)


def validation_report(
    y: npt.ArrayLike,
    pd: npt.ArrayLike,
    score: npt.ArrayLike,
    *,
    sample: str,
    reference_score: Baseline | None = None,
    features: pl.DataFrame | None = None,
    feature_baselines: Mapping[str, Baseline] | None = None,
    n_groups: int = 10,
    dof_offset: int = 2,
    band_width: float = 20.0,
    band_edges: Sequence[float] | FloatArray | None = None,
    segment: Sequence[str] | pl.Series | None = None,
) -> ValidationReport:
    """Discrimination, calibration, score bands and, against a development baseline, score and feature PSI."""
    yy, pp = _arrays(y, pd)
    s = np.asarray(score, dtype=np.float64).ravel()
    score_psi = None if reference_score is None else reference_score.psi(s)
    fpsi = None
    if features is not None and feature_baselines:
        fpsi = baseline_feature_psi(feature_baselines, features)
    bands = score_bands(s, width=band_width) if band_edges is None else np.asarray(band_edges, dtype=np.float64)
    return ValidationReport(
        sample=sample,
        discrimination=discrimination(yy, pp),
        calibration=calibration(yy, pp, n_groups=n_groups, dof_offset=dof_offset),
        score_psi=score_psi,
        feature_psi=fpsi,
        roc=roc_points(yy, pp),
        ks_curve=ks_curve(yy, pp),
        score_distribution=score_distribution(s, yy, edges=bands),
        by_segment=None if segment is None else score_by_segment(s, pp, yy, segment),
    )
