"""The points scorecard: scikit-learn's estimator checks, monotonic bins, PDO scaling, missing and special values."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from runoff.errors import RunoffError
from runoff.risk.pd import ModelInputError
from runoff.risk.pd.scorecard import Scorecard

from .conftest import NUMERIC, TRENDS


@parametrize_with_checks([Scorecard(random_state=0)])
def test_scorecard_passes_scikit_learns_estimator_checks(estimator: Scorecard, check: object) -> None:
    check(estimator)  # type: ignore[operator]


def _fit(sample: pl.DataFrame, **params: object) -> Scorecard:
    return Scorecard(monotonic_trends=TRENDS, random_state=0, **params).fit(  # type: ignore[arg-type]
        sample.select(NUMERIC), sample.get_column("bad").to_numpy()
    )


def _value_bin_rates(model: Scorecard, name: str) -> np.ndarray:
    b = model.binnings_[model.feature_names_.index(name)]
    n = b.n_value_bins
    return b.n_bad[:n] / (b.n_good[:n] + b.n_bad[:n])


@pytest.mark.parametrize(
    ("feature", "direction"),
    [("late_payments", 1), ("payment_ratio", -1), ("income", -1)],
    ids=["late-payments-ascending", "payment-ratio-descending", "income-descending"],
)
def test_bins_follow_the_business_trend(dev_sample: pl.DataFrame, feature: str, direction: int) -> None:
    rates = _value_bin_rates(_fit(dev_sample), feature)
    assert rates.size >= 2
    assert np.all(direction * np.diff(rates) > 0)


def test_points_add_up_to_the_score(dev_sample: pl.DataFrame) -> None:
    model = _fit(dev_sample)
    X = dev_sample.select(NUMERIC)
    assert model.points(X).sum(axis=1) + model.base_points_ == pytest.approx(model.score_points(X))


def test_points_are_600_at_odds_50_and_20_more_per_doubling_of_the_odds(dev_sample: pl.DataFrame) -> None:
    model = _fit(dev_sample)
    X = dev_sample.select(NUMERIC)
    p = model.predict_proba(X)[:, 1]
    odds = (1 - p) / p
    assert model.score_points(X) == pytest.approx(600 + 20 * np.log2(odds / 50))
    assert model.factor_ == pytest.approx(20 / math.log(2))


def test_a_custom_scale_moves_the_points_not_the_pd(dev_sample: pl.DataFrame) -> None:
    base = _fit(dev_sample)
    other = _fit(dev_sample, base_points=500.0, base_odds=20.0, pdo=40.0)
    X = dev_sample.select(NUMERIC)
    assert other.predict_proba(X) == pytest.approx(base.predict_proba(X))
    p = other.predict_proba(X)[:, 1]
    assert other.score_points(X) == pytest.approx(500 + 40 * np.log2((1 - p) / p / 20))


def test_holdout_auc_is_as_good_as_optbinnings_default_workflow(
    dev_sample: pl.DataFrame, holdout_sample: pl.DataFrame
) -> None:
    """Cross-check against optbinning's own BinningProcess → WOE → logistic regression on the same rows."""
    from optbinning import BinningProcess

    X, y = dev_sample.select(NUMERIC), dev_sample.get_column("bad").to_numpy()
    Xh, yh = holdout_sample.select(NUMERIC), holdout_sample.get_column("bad").to_numpy()
    ours = roc_auc_score(yh, _fit(dev_sample, min_iv=0.0).predict_proba(Xh)[:, 1])
    process = BinningProcess(variable_names=NUMERIC).fit(X.to_pandas(), y)
    lr = LogisticRegression(max_iter=1000).fit(process.transform(X.to_pandas(), metric="woe"), y)
    theirs = roc_auc_score(yh, lr.predict_proba(process.transform(Xh.to_pandas(), metric="woe"))[:, 1])
    assert ours > 0.70
    assert ours == pytest.approx(theirs, abs=0.01)


def test_missing_values_get_their_own_bin(dev_sample: pl.DataFrame) -> None:
    model = _fit(dev_sample)
    b = model.binnings_[model.feature_names_.index("payment_ratio")]
    n_missing = int(dev_sample.get_column("payment_ratio").is_nan().sum())
    assert b.n_good[b.n_value_bins] + b.n_bad[b.n_value_bins] == n_missing
    assert b.bin_index(np.array([np.nan, 0.5]))[0] == b.n_value_bins


def test_special_codes_get_their_own_bin(dev_sample: pl.DataFrame) -> None:
    sample = dev_sample.with_columns(
        pl.when(pl.int_range(pl.len()) % 20 == 0).then(-1.0).otherwise(pl.col("late_payments")).alias("late_payments")
    )
    model = _fit(sample, special_codes=[-1.0])
    b = model.binnings_[model.feature_names_.index("late_payments")]
    assert b.n_good[-1] + b.n_bad[-1] == 300
    assert b.bin_index(np.array([-1.0]))[0] == b.n_value_bins + 1
    assert np.all(b.splits >= 0)  # the code never shapes the value bins


def test_an_unseen_category_scores_in_the_missing_bin(dev_sample: pl.DataFrame) -> None:
    codes = dev_sample.get_column("channel").replace_strict(["app", "checkout", "partner"], [0.0, 1.0, 2.0])
    X = dev_sample.select(NUMERIC).with_columns(codes.alias("channel"))
    model = Scorecard(categorical_features=["channel"], random_state=0).fit(X, dev_sample.get_column("bad").to_numpy())
    b = model.binnings_[model.feature_names_.index("channel")]
    assert b.categorical
    assert b.bin_index(np.array([7.0]))[0] == b.n_value_bins
    # partner (2) is the riskiest channel: its bin has the lowest WOE
    assert b.woe[b.bin_index(np.array([2.0]))[0]] == pytest.approx(b.woe[: b.n_value_bins].min())


def test_a_feature_with_the_wrong_sign_is_dropped() -> None:
    """b rises with risk on its own but lowers it given a (a suppressor): its coefficient has the wrong sign."""
    rng = np.random.default_rng(0)
    z, noise = rng.normal(size=20000), rng.normal(size=20000)
    a, b = z, z + noise
    y = (rng.random(20000) < expit(-2.0 + 2.0 * a - 0.5 * b)).astype(int)
    X = pl.DataFrame({"a": a, "b": b})
    kept = Scorecard(random_state=0, drop_wrong_sign=False).fit(X, y)
    assert kept.coef_[1] > 0
    model = Scorecard(random_state=0).fit(X, y)
    assert "b" in model.dropped_features_
    assert "wrong sign" in model.dropped_features_["b"]
    assert model.selected_.tolist() == [0]


def test_features_below_the_minimum_information_value_are_left_out(dev_sample: pl.DataFrame) -> None:
    model = _fit(dev_sample)
    assert "noise" in model.dropped_features_
    assert "information value" in model.dropped_features_["noise"]
    assert model.points(dev_sample.select(NUMERIC))[:, NUMERIC.index("noise")].max() == 0.0


def test_the_card_lists_every_bin_with_its_points(dev_sample: pl.DataFrame) -> None:
    model = _fit(dev_sample)
    card = model.card()
    assert {"feature", "label", "count", "bad_rate", "woe", "points"} <= set(card.columns)
    selected = card.filter(pl.col("selected"))
    assert selected.get_column("count").sum() == dev_sample.height * len(model.selected_)
    as_dict = model.to_dict()
    assert as_dict["pdo"] == 20.0
    assert len(as_dict["features"]) == len(NUMERIC)


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (np.zeros((0, 2)), np.zeros(0), "0 sample"),
        (np.random.default_rng(0).normal(size=(50, 2)), np.zeros(50), "1 class"),
        (np.column_stack([np.full(50, np.nan), np.arange(50.0)]), np.arange(50) % 2, "every one of its 50 values"),
    ],
    ids=["empty", "one-class-target", "all-missing-feature"],
)
def test_bad_training_data_is_a_clear_runoff_error(X: np.ndarray, y: np.ndarray, match: str) -> None:
    with pytest.raises(ModelInputError, match=match) as info:
        Scorecard().fit(X, y)
    assert isinstance(info.value, RunoffError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"pdo": 0.0}, "pdo"),
        ({"base_odds": -1.0}, "base_odds"),
        ({"max_n_prebins": 1}, "max_n_prebins"),
        ({"default_trend": "sideways"}, "default_trend"),
        ({"monotonic_trends": {"x0": "up"}}, "monotonic_trends.x0"),
    ],
    ids=["pdo", "base-odds", "prebins", "default-trend", "feature-trend"],
)
def test_invalid_hyperparameters_are_refused_at_fit_naming_the_parameter(params: dict, field: str) -> None:
    model = Scorecard(**params)
    assert model.get_params()[next(iter(params))] == next(iter(params.values()))  # stored as given
    X = np.random.default_rng(0).normal(size=(40, 2))
    with pytest.raises(ModelInputError, match=f"`{field}`"):
        model.fit(X, np.arange(40) % 2)
