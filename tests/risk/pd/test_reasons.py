"""Reason codes add up with the score: points lost against the best bins, or SHAP contributions in points."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from runoff.risk.pd import ModelInputError
from runoff.risk.pd.gbm import GradientBoostedPD
from runoff.risk.pd.reasons import gbm_reasons, scorecard_reasons, top_reasons
from runoff.risk.pd.scorecard import Scorecard

from .conftest import NUMERIC, TRENDS


@pytest.fixture(scope="module")
def scorecard(dev_sample: pl.DataFrame) -> Scorecard:
    return Scorecard(monotonic_trends=TRENDS, random_state=0).fit(
        dev_sample.select(NUMERIC), dev_sample.get_column("bad").to_numpy()
    )


def test_points_lost_add_up_to_the_gap_between_the_best_score_and_the_customers(
    scorecard: Scorecard, holdout_sample: pl.DataFrame
) -> None:
    X = holdout_sample.select(NUMERIC)
    codes = scorecard_reasons(scorecard, X, top=3)
    best = scorecard.base_points_ + scorecard.max_points().sum()
    assert codes.all_points_lost.sum(axis=1) == pytest.approx(best - scorecard.score_points(X))
    assert np.all(codes.all_points_lost >= -1e-9)


def test_reasons_are_the_largest_losses_in_order(scorecard: Scorecard, holdout_sample: pl.DataFrame) -> None:
    codes = scorecard_reasons(scorecard, holdout_sample.select(NUMERIC), top=3)
    assert np.all(np.diff(codes.points_lost, axis=1) <= 1e-12)
    ranked = -np.sort(-codes.all_points_lost, axis=1)[:, :3]
    assert codes.points_lost == pytest.approx(np.where(codes.index >= 0, ranked, 0.0))
    frame = codes.frame()
    assert frame.columns == [
        "reason_1",
        "reason_1_points",
        "reason_2",
        "reason_2_points",
        "reason_3",
        "reason_3_points",
    ]
    assert set(frame.get_column("reason_1").drop_nulls().unique()) <= set(NUMERIC)


def test_a_customer_in_every_best_bin_has_no_reason(scorecard: Scorecard, dev_sample: pl.DataFrame) -> None:
    best = {}
    for j in scorecard.selected_:
        b = scorecard.binnings_[j]
        k = int(np.argmax(scorecard.points_[j][: b.n_value_bins]))
        edges = np.concatenate([[-1e9], b.splits])
        best[scorecard.feature_names_[j]] = float(edges[k] + (1e-6 if k else 1e8))
    row = dev_sample.select(NUMERIC).head(1).with_columns([pl.lit(v).alias(k) for k, v in best.items()])
    codes = scorecard_reasons(scorecard, row, top=3)
    assert codes.frame().row(0) == (None, None, None, None, None, None)


def test_gbm_reasons_are_shap_contributions_in_points(dev_sample: pl.DataFrame, holdout_sample: pl.DataFrame) -> None:
    model = GradientBoostedPD(random_state=0, n_jobs=1, n_estimators=100).fit(
        dev_sample.select(NUMERIC), dev_sample.get_column("bad").to_numpy()
    )
    X = holdout_sample.select(NUMERIC)
    contrib = model.contributions(X)
    codes = gbm_reasons(model, X, top=2)
    assert codes.all_points_lost == pytest.approx(model.factor_ * contrib[:, :-1])
    # the points of every feature plus the expected value's give back the customer's score
    score = model.offset_ - codes.all_points_lost.sum(axis=1) - model.factor_ * contrib[:, -1]
    assert score == pytest.approx(model.score_points(X))
    assert np.all(codes.points_lost[codes.index >= 0] > 0)  # only features that raised the risk


def test_top_must_be_at_least_one() -> None:
    with pytest.raises(ModelInputError, match="`top`"):
        top_reasons(np.zeros((2, 2)), ["a", "b"], top=0)


def test_fewer_features_than_reasons_pads_with_none() -> None:
    codes = top_reasons(np.array([[3.0, 0.0]]), ["a", "b"], top=3)
    assert codes.frame().row(0) == ("a", 3.0, None, None, None, None)
