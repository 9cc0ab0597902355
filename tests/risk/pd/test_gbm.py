"""LightGBM PD: scikit-learn's estimator checks, monotone constraints honoured, contributions add up."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from runoff.risk.pd import ModelInputError
from runoff.risk.pd.gbm import GradientBoostedPD

from .conftest import NUMERIC

CONSTRAINTS = {"late_payments": 1, "payment_ratio": -1, "income": -1}


@parametrize_with_checks([GradientBoostedPD(random_state=0, min_child_samples=2, n_estimators=50, n_jobs=1)])
def test_gbm_passes_scikit_learns_estimator_checks(estimator: GradientBoostedPD, check: object) -> None:
    check(estimator)  # type: ignore[operator]


@pytest.fixture(scope="module")
def model(dev_sample: pl.DataFrame) -> GradientBoostedPD:
    return GradientBoostedPD(monotone_constraints=CONSTRAINTS, random_state=0, n_jobs=1).fit(
        dev_sample.select(NUMERIC), dev_sample.get_column("bad").to_numpy()
    )


@pytest.mark.parametrize(("feature", "sign"), list(CONSTRAINTS.items()), ids=list(CONSTRAINTS))
def test_pd_moves_only_in_the_constrained_direction(
    model: GradientBoostedPD, dev_sample: pl.DataFrame, feature: str, sign: int
) -> None:
    base = dev_sample.select(NUMERIC).head(200)
    values = np.quantile(dev_sample.get_column(feature).drop_nans().to_numpy(), np.linspace(0, 1, 25))
    curves = np.column_stack([model.predict_proba(base.with_columns(pl.lit(v).alias(feature)))[:, 1] for v in values])
    assert np.all(sign * np.diff(curves, axis=1) >= -1e-12)
    assert np.any(sign * np.diff(curves, axis=1) > 0)


def test_contributions_add_up_to_the_log_odds(model: GradientBoostedPD, holdout_sample: pl.DataFrame) -> None:
    X = holdout_sample.select(NUMERIC)
    assert model.contributions(X).sum(axis=1) == pytest.approx(model.decision_function(X), abs=1e-9)


def test_holdout_auc_and_points_scale(model: GradientBoostedPD, holdout_sample: pl.DataFrame) -> None:
    X, y = holdout_sample.select(NUMERIC), holdout_sample.get_column("bad").to_numpy()
    p = model.predict_proba(X)[:, 1]
    assert roc_auc_score(y, p) > 0.70
    assert model.score_points(X) == pytest.approx(600 + 20 * np.log2((1 - p) / p / 50))
    assert model.best_iteration_ <= 400
    assert model.model_text().startswith("tree")


def test_an_all_missing_feature_is_a_clear_error() -> None:
    X = np.column_stack([np.full(60, np.nan), np.arange(60.0)])
    with pytest.raises(ModelInputError, match="`x0`: every one of its 60 values is missing"):
        GradientBoostedPD().fit(X, np.arange(60) % 2)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"monotone_constraints": {"x0": 2}}, "expected -1, 0 or 1"),
        ({"monotone_constraints": [1]}, "one per feature"),
        ({"subsample": 0.0}, "`subsample`"),
    ],
    ids=["constraint-value", "constraint-length", "subsample"],
)
def test_invalid_hyperparameters_are_refused(params: dict, match: str) -> None:
    X = np.random.default_rng(0).normal(size=(60, 2))
    with pytest.raises(ModelInputError, match=match):
        GradientBoostedPD(**params).fit(X, np.arange(60) % 2)
