"""A fitted PD model with everything needed to score a frame: the estimator and how columns become numbers.

:class:`PDModel` is what the model registry stores: the estimator (a :class:`Scorecard` or a
:class:`GradientBoostedPD`), the feature list and the encoding of text columns (an external data set's
``city = "Shanghai"`` becomes a category code; an unseen level scores as missing). :func:`fit_pd_model`
fits either kind on a Polars frame with a 0/1 target column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from runoff.risk.pd import ModelInputError
from runoff.risk.pd.gbm import GradientBoostedPD
from runoff.risk.pd.reasons import ReasonCodes, reasons, top_reasons
from runoff.risk.pd.scorecard import Scorecard

ModelKind = Literal["scorecard", "lightgbm"]
MODEL_KINDS: tuple[str, ...] = ("scorecard", "lightgbm")

FloatArray = npt.NDArray[np.float64]

SCORING_CHUNK = 1_000_000
"""Rows scored at a time, so reason codes on ten million customers stay within memory."""


@dataclass(frozen=True, slots=True)
class FeatureEncoding:
    """The model's input columns, in order, and the levels of those that hold text (code = position)."""

    features: tuple[str, ...]
    levels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    categorical: tuple[str, ...] = ()

    @classmethod
    def learn(cls, frame: pl.DataFrame, features: Sequence[str], *, categorical: Sequence[str] = ()) -> FeatureEncoding:
        """Read the feature columns' types: text and boolean columns become categorical codes."""
        missing = [f for f in features if f not in frame.columns]
        if missing:
            raise ModelInputError(
                f"`features`: columns {missing} are not in the data; expected some of {frame.columns[:20]}"
            )
        levels: dict[str, tuple[str, ...]] = {}
        cats = [c for c in categorical if c in features]
        for name in features:
            dtype = frame.schema[name]
            if dtype == pl.String or dtype == pl.Categorical or dtype == pl.Enum or dtype == pl.Boolean:
                values = frame.get_column(name).cast(pl.String).drop_nulls().unique().sort().to_list()
                levels[name] = tuple(values)
                if name not in cats:
                    cats.append(name)
            elif not dtype.is_numeric() and dtype != pl.Null:
                raise ModelInputError(
                    f"`{name}`: column type {dtype} cannot be a model input; expected numbers, text or true/false"
                )
        return cls(tuple(features), levels, tuple(c for c in features if c in cats))

    def frame(self, data: pl.DataFrame) -> pl.DataFrame:
        """The features of ``data`` as Float64 columns (text as codes, unknown text and nulls as NaN)."""
        missing = [f for f in self.features if f not in data.columns]
        if missing:
            raise ModelInputError(f"`features`: columns {missing} are missing from the data to score")
        exprs = []
        for name in self.features:
            if name in self.levels:
                codes = list(range(len(self.levels[name])))
                expr = (
                    pl.col(name)
                    .cast(pl.String)
                    .replace_strict(list(self.levels[name]), codes, default=None, return_dtype=pl.Float64)
                )
            else:
                expr = pl.col(name).cast(pl.Float64)
            exprs.append(expr.fill_null(float("nan")).alias(name))
        return data.select(exprs)


@dataclass(frozen=True, slots=True)
class PDModel:
    """A fitted PD model of one kind with its input encoding."""

    kind: str
    estimator: Scorecard | GradientBoostedPD
    encoding: FeatureEncoding

    @property
    def features(self) -> tuple[str, ...]:
        return self.encoding.features

    def predict_pd(self, data: pl.DataFrame) -> FloatArray:
        """Probability of default of each row."""
        out: FloatArray = self.estimator.predict_proba(self.encoding.frame(data))[:, 1]
        return out

    def score_points(self, data: pl.DataFrame) -> FloatArray:
        """Points score of each row (higher = safer)."""
        out: FloatArray = self.estimator.score_points(self.encoding.frame(data))
        return out

    def reason_codes(self, data: pl.DataFrame, *, top: int = 3) -> ReasonCodes:
        return reasons(self.estimator, self.encoding.frame(data), top=top)

    def score_frame(self, data: pl.DataFrame, *, keys: Sequence[str] = ("customer_id",), top: int = 3) -> pl.DataFrame:
        """``keys`` + ``pd`` + ``score`` + top reason codes, scored in chunks of :data:`SCORING_CHUNK` rows."""
        parts = []
        for start in range(0, max(data.height, 1), SCORING_CHUNK):
            chunk = data.slice(start, SCORING_CHUNK)
            if chunk.height == 0:
                break
            encoded = self.encoding.frame(chunk)
            logit, score, codes = self._score(encoded, top=top)
            pd = 1.0 / (1.0 + np.exp(-logit))
            out = chunk.select(list(keys)).with_columns(pl.Series("pd", pd), pl.Series("score", score))
            if codes is not None:
                out = pl.concat([out, codes.frame()], how="horizontal")
            parts.append(out)
        if not parts:
            empty = data.select(list(keys)).with_columns(
                pl.lit(None, dtype=pl.Float64).alias("pd"), pl.lit(None, dtype=pl.Float64).alias("score")
            )
            return empty
        return pl.concat(parts)

    def _score(self, encoded: pl.DataFrame, *, top: int) -> tuple[FloatArray, FloatArray, ReasonCodes | None]:
        """Log-odds, points and (``top`` > 0) reason codes from one pass over the bins or trees."""
        est = self.estimator
        if isinstance(est, Scorecard):
            points = est.selected_points(encoded)
            score: FloatArray = est.base_points_ + points.sum(axis=1)
            logit: FloatArray = (est.offset_ - score) / est.factor_
            if top <= 0:
                return logit, score, None
            lost = est.max_points()[est.selected_][None, :] - points
            names = [est.feature_names_[j] for j in est.selected_]
            return logit, score, top_reasons(lost, names, top=top)
        if top <= 0:
            logit = est.decision_function(encoded)
            return logit, est.offset_ - est.factor_ * logit, None
        contrib = est.contributions(encoded)
        logit = contrib.sum(axis=1)
        return (
            logit,
            est.offset_ - est.factor_ * logit,
            top_reasons(est.factor_ * contrib[:, :-1], est.feature_names_, top=top),
        )

    def feature_edges(self) -> dict[str, list[float]]:
        """The scorecard's own numeric cut points per feature, for characteristic stability (CSI)."""
        if isinstance(self.estimator, Scorecard):
            return {b.name: b.splits.tolist() for b in self.estimator.binnings_ if not b.categorical}
        return {}

    def describe(self) -> dict[str, Any]:
        """What the model uses: features kept and dropped, and the card or the feature importances."""
        est = self.estimator
        if isinstance(est, Scorecard):
            return {
                "kind": self.kind,
                "features": list(self.features),
                "selected": [self.features[j] for j in est.selected_],
                "dropped": dict(est.dropped_features_),
                "information_value": {b.name: b.iv for b in est.binnings_},
                "scale": {"base_points": est.base_points, "base_odds": est.base_odds, "pdo": est.pdo},
            }
        gains = est.booster_.feature_importance(importance_type="gain", iteration=est.best_iteration_)
        total = float(np.sum(gains)) or 1.0
        return {
            "kind": self.kind,
            "features": list(self.features),
            "selected": list(self.features),
            "dropped": {},
            "importance_gain_share": {n: float(g) / total for n, g in zip(self.features, gains, strict=True)},
            "monotone_constraints": dict(zip(self.features, est.monotone_constraints_, strict=True)),
            "trees": est.best_iteration_,
            "scale": {"base_points": est.base_points, "base_odds": est.base_odds, "pdo": est.pdo},
        }


def fit_pd_model(
    train: pl.DataFrame,
    *,
    kind: str,
    features: Sequence[str],
    target: str = "bad",
    trends: Mapping[str, str] | None = None,
    categorical: Sequence[str] = (),
    random_state: int = 0,
    params: Mapping[str, Any] | None = None,
) -> PDModel:
    """Fit a ``kind`` model on ``train[features]`` against the 0/1 column ``target`` (1 = bad).

    ``trends`` (feature → ``ascending``/``descending``) become the scorecard's monotonic bins and LightGBM's
    monotone constraints (+1/−1); ``params`` override the estimator's other hyperparameters.
    """
    if kind not in MODEL_KINDS:
        raise ModelInputError(f"`kind`: {kind!r} is not a model kind; expected one of {', '.join(MODEL_KINDS)}")
    if train.height == 0:
        raise ModelInputError("training data: no rows; expected customers with an outcome to learn from")
    if target not in train.columns:
        raise ModelInputError(f"`target`: column {target!r} is not in the training data")
    y = train.get_column(target)
    if y.null_count():
        raise ModelInputError(
            f"`target`: {y.null_count()} rows have no outcome; expected 1 (bad) or 0 (good) on every row"
        )
    encoding = FeatureEncoding.learn(train, features, categorical=categorical)
    X = encoding.frame(train)
    all_missing = [c for c in X.columns if X.get_column(c).is_nan().all()]
    if all_missing:
        raise ModelInputError(
            f"`{all_missing[0]}`: every one of its {X.height} values is missing; expected some values "
            "(drop the feature or fill it)"
        )
    kept: dict[str | int, str] = {k: v for k, v in (trends or {}).items() if k in encoding.features}
    estimator: Scorecard | GradientBoostedPD
    if kind == "scorecard":
        estimator = Scorecard(
            monotonic_trends=kept,
            categorical_features=list(encoding.categorical),
            random_state=random_state,
            **dict(params or {}),
        )
    else:
        estimator = GradientBoostedPD(
            monotone_constraints={
                k: (1 if v == "ascending" else -1) for k, v in kept.items() if v in ("ascending", "descending")
            },
            categorical_features=list(encoding.categorical),
            random_state=random_state,
            **dict(params or {}),
        )
    estimator.fit(X, y.cast(pl.Int64).to_numpy())
    return PDModel(kind=kind, estimator=estimator, encoding=encoding)
