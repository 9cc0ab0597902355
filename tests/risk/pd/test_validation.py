"""Validation metrics against small hand-computed examples (AUC, Gini, KS, PSI, Brier, Hosmer–Lemeshow)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from runoff.errors import RunoffError
from runoff.risk.pd import ModelInputError
from runoff.risk.pd import validation as v


@pytest.mark.parametrize(
    ("y", "pd", "expected_auc"),
    [
        # bads at 0.35 and 0.8, goods at 0.1 and 0.4: pairs (0.35>0.1), (0.35<0.4), (0.8>0.1), (0.8>0.4) → 3/4
        ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.75),
        # a tie between a bad and a good counts half: (0.5=0.5) ½, (0.5>0.2), (0.9>0.5), (0.9>0.2) → 3.5/4
        ([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9], 0.875),
        ([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], 1.0),
        ([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4], 0.0),
    ],
    ids=["sklearn-doc-example", "tie-counts-half", "perfect", "inverted"],
)
def test_auc_and_gini_match_the_pair_count(y: list[int], pd: list[float], expected_auc: float) -> None:
    assert v.auc(y, pd) == pytest.approx(expected_auc)
    assert v.gini(y, pd) == pytest.approx(2 * expected_auc - 1)


def test_ks_is_the_largest_gap_between_bad_and_good_shares() -> None:
    # threshold 0.8: 1/2 of bads, 0 goods → 0.5; threshold 0.35: all bads, 1/2 goods → 0.5; never more
    result = v.ks([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert result.statistic == pytest.approx(0.5)


def test_ks_equals_scipys_two_sample_statistic() -> None:
    rng = np.random.default_rng(5)
    y = (rng.random(2000) < 0.2).astype(int)
    pd = np.clip(0.2 + 0.1 * y + rng.normal(0, 0.1, 2000), 0, 1)
    expected = stats.ks_2samp(pd[y == 1], pd[y == 0]).statistic
    assert v.ks(y, pd).statistic == pytest.approx(expected)


def test_psi_of_a_half_half_split_moving_to_a_quarter_is_a_quarter_of_ln_3() -> None:
    # expected shares ½, ½; actual ¼, ¾: (¼−½)·ln(¼/½) + (¾−½)·ln(¾/½) = ¼·ln 2 + ¼·ln 1.5 = ¼·ln 3
    result = v.psi([0, 0, 1, 1], [0, 1, 1, 1], edges=[0.5])
    assert result.value == pytest.approx(0.25 * math.log(3.0))
    assert result.table.get_column("expected_count").to_list() == [2, 2]
    assert result.table.get_column("actual_count").to_list() == [1, 3]
    assert result.reading == "shifted"


def test_psi_of_a_population_against_itself_is_zero() -> None:
    x = np.random.default_rng(1).normal(size=1000)
    assert v.psi(x, x).value == pytest.approx(0.0)


def test_psi_counts_missing_values_in_their_own_bin() -> None:
    result = v.psi([0.0, 1.0, np.nan, np.nan], [0.0, 1.0, 1.0, np.nan], edges=[0.5])
    assert result.table.get_column("bin").to_list()[-1] == "missing"
    assert result.table.get_column("actual_count").to_list() == [1, 2, 1]


def test_brier_score_is_the_mean_squared_error_of_the_pd() -> None:
    # ((0.2 − 0)² + (0.6 − 1)²) / 2 = (0.04 + 0.16) / 2 = 0.1
    assert v.calibration([0, 1], [0.2, 0.6], n_groups=1).brier == pytest.approx(0.1)


def test_hosmer_lemeshow_on_two_groups_matches_the_hand_computation() -> None:
    # group 1: PD 0.1, 0.1 → E = 0.2, O = 1, var = 0.2·(1 − 0.1) = 0.18 → 0.64/0.18 = 32/9
    # group 2: PD 0.5, 0.5 → E = 1.0, O = 2, var = 1.0·(1 − 0.5) = 0.5  → 1/0.5    = 2
    # HL = 50/9; with 2 dof the χ² tail is exp(−HL/2)
    hl = v.hosmer_lemeshow([0, 1, 1, 1], [0.1, 0.1, 0.5, 0.5], n_groups=2, dof_offset=0)
    assert hl.statistic == pytest.approx(50 / 9)
    assert hl.dof == 2
    assert hl.p_value == pytest.approx(math.exp(-25 / 9))


def test_calibration_table_has_observed_and_expected_bads_per_decile() -> None:
    rng = np.random.default_rng(7)
    pd = rng.uniform(0.01, 0.3, 5000)
    y = (rng.random(5000) < pd).astype(int)
    cal = v.calibration(y, pd)
    table = cal.table
    assert table.height == 10
    assert table.get_column("count").sum() == 5000
    assert table.get_column("observed_bads").sum() == y.sum()
    assert table.get_column("mean_pd").is_sorted()
    # a well-calibrated PD passes Hosmer–Lemeshow at 1 %
    assert cal.hosmer_lemeshow.p_value > 0.01


def test_a_pd_twice_too_high_fails_hosmer_lemeshow() -> None:
    rng = np.random.default_rng(8)
    pd = rng.uniform(0.01, 0.2, 5000)
    y = (rng.random(5000) < pd).astype(int)
    assert v.hosmer_lemeshow(y, np.minimum(2 * pd, 0.99)).p_value < 1e-6


def test_score_distribution_counts_bands_and_cumulative_shares() -> None:
    table = v.score_distribution([505, 515, 525, 545, 555], [1, 1, 0, 0, 0], edges=[520, 540])
    assert table.get_column("count").to_list() == [2, 1, 2]
    assert table.get_column("bads").to_list() == [2, 0, 0]
    assert table.get_column("cum_bad_share").to_list() == [1.0, 1.0, 1.0]
    assert table.get_column("cum_good_share").to_list() == pytest.approx([0.0, 1 / 3, 1.0])


def test_feature_psi_is_sorted_largest_first() -> None:
    rng = np.random.default_rng(3)
    dev = pl.DataFrame({"stable": rng.normal(size=2000), "moved": rng.normal(size=2000)})
    cur = pl.DataFrame({"stable": rng.normal(size=2000), "moved": rng.normal(1.0, 1.0, size=2000)})
    out = v.feature_psi(dev, cur)
    assert out.get_column("feature").to_list() == ["moved", "stable"]
    assert out.row(0, named=True)["reading"] == "shifted"


@pytest.mark.parametrize(
    ("y", "pd", "match"),
    [
        ([], [], "no rows"),
        ([0, 0, 0], [0.1, 0.2, 0.3], "every one of the 3 outcomes is good"),
        ([0, 2, 1], [0.1, 0.2, 0.3], "are not outcomes"),
        ([0, 1], [0.1], "one PD per outcome"),
        ([0, 1], [0.1, np.nan], "missing or infinite"),
    ],
    ids=["empty", "one-class", "not-binary", "length-mismatch", "nan-pd"],
)
def test_bad_input_is_a_clear_error(y: list[float], pd: list[float], match: str) -> None:
    with pytest.raises(ModelInputError, match=match) as info:
        v.auc(y, pd)
    assert isinstance(info.value, RunoffError)


def test_validation_report_as_dict_carries_metrics_and_tables() -> None:
    rng = np.random.default_rng(11)
    pd = rng.uniform(0.01, 0.4, 3000)
    y = (rng.random(3000) < pd).astype(int)
    score = 600 - 28.85 * np.log(pd / (1 - pd))
    report = v.validation_report(y, pd, score, sample="holdout", reference_score=v.Baseline.of(score[::-1]))
    data = report.as_dict()
    assert data["sample"] == "holdout"
    assert data["auc"] == pytest.approx(v.auc(y, pd))
    assert data["gini"] == pytest.approx(2 * data["auc"] - 1)
    assert data["score_psi"] == pytest.approx(0.0, abs=1e-9)
    assert {"calibration", "roc", "ks_curve", "score_distribution"} <= set(data["tables"])
    assert len(data["tables"]["calibration"]) == 10


def test_a_stored_baseline_gives_the_same_psi_as_the_raw_development_values() -> None:
    rng = np.random.default_rng(21)
    dev = np.where(rng.random(3000) < 0.05, np.nan, rng.normal(size=3000))
    cur = np.where(rng.random(2000) < 0.10, np.nan, rng.normal(0.3, 1.0, size=2000))
    baseline = v.Baseline.from_dict(v.Baseline.of(dev).as_dict())  # through JSON-ready data
    direct = v.psi(dev, cur)
    via = baseline.psi(cur)
    assert via.value == pytest.approx(direct.value)
    assert via.table.get_column("bin").to_list() == direct.table.get_column("bin").to_list()


def test_score_by_segment_summarises_each_bucket() -> None:
    out = v.score_by_segment([600, 620, 500], [0.02, 0.01, 0.3], [0, 0, 1], ["current", "current", "M2"])
    rows = {r["segment"]: r for r in out.to_dicts()}
    assert rows["current"]["count"] == 2
    assert rows["current"]["score_mean"] == pytest.approx(610)
    assert rows["M2"]["observed_rate"] == 1.0
    assert out.get_column("segment").to_list() == ["current", "M2"]
