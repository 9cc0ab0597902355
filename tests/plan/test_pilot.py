"""The pilot: textbook sample sizes, stratified and reproducible assignment, intervals that cover ~95 % of the
time, and the roll-out / change / stop rule."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from runoff.plan.pilot import (
    DecisionRule,
    PilotInvalid,
    Recommendation,
    analyze_pilot,
    assign_arms,
    newcombe_interval,
    two_proportion_sample_size,
    wilson_interval,
)

ARMS = ("control", "discount-10", "discount-20")


def _units(sizes: dict[str, int]) -> pl.DataFrame:
    ids, segments = [], []
    for seg, n in sizes.items():
        ids += [f"{seg}-{k:05d}" for k in range(n)]
        segments += [seg] * n
    return pl.DataFrame({"account_id": ids, "segment": segments})


# --- sample size ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p_control", "p_treatment", "correction", "expected"),
    [
        (0.50, 0.60, False, 388),  # z-test, pooled variance: Fleiss, Levin & Paik (2003) eq. 4.14
        (0.50, 0.60, True, 408),  # with Fleiss's continuity correction (Fleiss 1981, Table A.4)
        (0.60, 0.50, True, 408),  # the direction of the difference does not matter
    ],
    ids=["uncorrected", "continuity-corrected", "reversed"],
)
def test_sample_size_matches_the_textbook(p_control, p_treatment, correction, expected):
    size = two_proportion_sample_size(p_control, p_treatment, continuity_correction=correction)
    assert size.n_control == size.n_treatment == size.per_arm == expected


def test_sample_size_agrees_with_a_simulated_power_of_80_percent():
    size = two_proportion_sample_size(0.10, 0.15)
    rng = np.random.default_rng(2026)
    runs = 4000
    x1 = rng.binomial(size.per_arm, 0.15, runs)
    x2 = rng.binomial(size.per_arm, 0.10, runs)
    pooled = (x1 + x2) / (2 * size.per_arm)
    z = (x1 - x2) / size.per_arm / np.sqrt(pooled * (1 - pooled) * 2 / size.per_arm)
    power = float(np.mean(np.abs(z) > 1.959964))
    assert 0.77 <= power <= 0.83


def test_a_smaller_difference_or_more_power_needs_more_accounts():
    base = two_proportion_sample_size(0.10, 0.15).per_arm
    assert two_proportion_sample_size(0.10, 0.13).per_arm > base
    assert two_proportion_sample_size(0.10, 0.15, power=0.9).per_arm > base
    assert two_proportion_sample_size(0.10, 0.15, alternative="one-sided").per_arm < base


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"p_control": 0.0, "p_treatment": 0.1}, "p_control"),
        ({"p_control": 0.1, "p_treatment": 0.1}, "p_treatment"),
        ({"p_control": 0.1, "p_treatment": 0.2, "power": 1.0}, "power"),
        ({"p_control": 0.1, "p_treatment": 0.2, "alpha": 0.7}, "alpha"),
    ],
    ids=["zero-rate", "no-difference", "power-1", "alpha-too-big"],
)
def test_impossible_sample_size_inputs_name_the_field(kwargs, field):
    with pytest.raises(PilotInvalid, match=field):
        two_proportion_sample_size(**kwargs)


# --- assignment -----------------------------------------------------------------------------------------------------


def test_assignment_is_stratified_by_segment_and_balanced_within_each():
    units = _units({"prime": 600, "current": 300, "arrears": 100})
    out = assign_arms(units, arms=ARMS, rng=np.random.default_rng(7), sample_size=300)
    assert out.height == 300
    by_segment = out.group_by("segment").len().sort("segment")
    assert dict(by_segment.iter_rows()) == {"arrears": 30, "current": 90, "prime": 180}
    counts = out.group_by("segment", "arm").len()
    for seg in ("prime", "current", "arrears"):
        per_arm = counts.filter(pl.col("segment") == seg).get_column("len").to_list()
        assert len(per_arm) == 3 and max(per_arm) - min(per_arm) <= 1
    assert out.get_column("account_id").is_unique().all()


def test_assignment_is_reproducible_with_a_seed_whatever_the_order_of_the_units():
    units = _units({"a": 97, "b": 53})
    first = assign_arms(units, arms=ARMS, rng=np.random.default_rng(11), sample_size=100)
    again = assign_arms(units.reverse(), arms=ARMS, rng=np.random.default_rng(11), sample_size=100)
    other = assign_arms(units, arms=ARMS, rng=np.random.default_rng(12), sample_size=100)
    assert first.equals(again)
    assert not first.equals(other)


def test_remainders_go_to_random_arms_so_no_arm_is_always_larger():
    units = _units({"s": 4})  # 4 units, 3 arms: one arm gets two
    larger = set()
    for seed in range(30):
        out = assign_arms(units, arms=ARMS, rng=np.random.default_rng(seed))
        counts = dict(out.group_by("arm").len().iter_rows())
        larger.add(max(counts, key=lambda a: counts[a]))
    assert larger == set(ARMS)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"arms": ("control",)}, "fewer than two arms"),
        ({"arms": ("control", "control")}, "named twice"),
        ({"arms": ARMS, "sample_size": 0}, "sample_size"),
        ({"arms": ARMS, "sample_size": 10_000}, "sample_size"),
    ],
    ids=["one-arm", "duplicate-arm", "empty-sample", "sample-too-big"],
)
def test_bad_assignment_inputs_are_one_clear_error(kwargs, match):
    with pytest.raises(PilotInvalid, match=match):
        assign_arms(_units({"s": 50}), rng=np.random.default_rng(1), **kwargs)


# --- intervals ------------------------------------------------------------------------------------------------------


def test_wilson_interval_matches_a_worked_value():
    # Newcombe (1998) Table I example: 81/263 → 0.2553 to 0.3662
    low, high = wilson_interval(81.0, 263.0)
    assert (round(float(low), 4), round(float(high), 4)) == (0.2553, 0.3662)


def test_newcombe_interval_matches_a_worked_value():
    # Newcombe (1998) Table II example (e): 56/70 − 48/80 → 0.0524 to 0.3339
    d, low, high = newcombe_interval(56.0, 70.0, 48.0, 80.0)
    assert (round(float(d), 4), round(float(low), 4), round(float(high), 4)) == (0.2, 0.0524, 0.3339)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
@pytest.mark.parametrize(
    ("p_variant", "p_control", "n"),
    [(0.15, 0.10, 400), (0.03, 0.01, 500), (0.6, 0.6, 150)],
    ids=["take-up", "rare-complaints", "no-difference"],
)
def test_the_difference_interval_covers_the_true_difference_about_95_percent_of_the_time(seed, p_variant, p_control, n):
    rng = np.random.default_rng(seed)
    runs = 2000
    x1 = rng.binomial(n, p_variant, runs).astype(float)
    x2 = rng.binomial(n, p_control, runs).astype(float)
    _, low, high = newcombe_interval(x1, float(n), x2, float(n))
    truth = p_variant - p_control
    coverage = float(np.mean((low <= truth) & (truth <= high)))
    assert 0.93 <= coverage <= 0.975, coverage


def test_analyze_pilot_intervals_cover_in_a_seeded_simulation():
    """The same coverage through the whole analysis (fewer runs: it builds tables)."""
    rng = np.random.default_rng(99)
    covered = 0
    runs = 300
    for _ in range(runs):
        frame = _simulate(rng, {"control": 0.10, "offer": 0.16}, n=300)
        d = analyze_pilot(frame).difference("offer", "took_up")
        covered += d.low <= 0.06 <= d.high
    assert 0.92 <= covered / runs <= 0.98


def _simulate(rng, take_up: dict[str, float], *, n: int, paid=None, complained=None) -> pl.DataFrame:
    rows = {"arm": [], "took_up": [], "paid": [], "complained": []}
    for arm, p in take_up.items():
        rows["arm"] += [arm] * n
        rows["took_up"] += (rng.random(n) < p).tolist()
        rows["paid"] += (rng.random(n) < (paid or {}).get(arm, 0.9)).tolist()
        rows["complained"] += (rng.random(n) < (complained or {}).get(arm, 0.01)).tolist()
    return pl.DataFrame(rows)


# --- recommendation -------------------------------------------------------------------------------------------------


def test_a_clear_lift_without_harm_rolls_out_the_best_variant():
    rng = np.random.default_rng(5)
    frame = _simulate(rng, {"control": 0.10, "discount-10": 0.20, "discount-20": 0.30}, n=3000)
    result = analyze_pilot(frame)
    assert result.recommendation is Recommendation.ROLL_OUT
    assert result.chosen_variant == "discount-20"
    assert "roll-out" in result.rule and result.sizes == {"control": 3000, "discount-10": 3000, "discount-20": 3000}


def test_more_complaints_stops_the_variant():
    rng = np.random.default_rng(6)
    frame = _simulate(rng, {"control": 0.10, "aggressive": 0.30}, n=2000, complained={"aggressive": 0.08})
    result = analyze_pilot(frame)
    assert result.recommendation is Recommendation.STOP
    assert "complaints higher" in result.verdicts[0].reasons[0]


def test_lower_payment_stops_the_variant():
    rng = np.random.default_rng(8)
    frame = _simulate(rng, {"control": 0.10, "holiday": 0.30}, n=2000, paid={"holiday": 0.75})
    assert analyze_pilot(frame).recommendation is Recommendation.STOP


def test_a_pilot_too_small_to_tell_recommends_change():
    rng = np.random.default_rng(9)
    frame = _simulate(rng, {"control": 0.10, "offer": 0.12}, n=80)
    result = analyze_pilot(frame)
    assert result.recommendation is Recommendation.CHANGE
    assert result.chosen_variant is None
    assert any("not shown" in r for r in result.verdicts[0].reasons)


def test_a_stricter_rule_can_turn_a_roll_out_into_change():
    rng = np.random.default_rng(10)
    frame = _simulate(rng, {"control": 0.10, "offer": 0.16}, n=6000)
    assert analyze_pilot(frame).recommendation is Recommendation.ROLL_OUT
    strict = analyze_pilot(frame, rule=DecisionRule(min_take_up_lift=0.08))
    assert strict.recommendation is Recommendation.CHANGE


def test_analysis_needs_a_control_arm_and_the_metric_columns():
    frame = pl.DataFrame({"arm": ["a", "b"], "took_up": [True, False], "paid": [True, True], "complained": [False] * 2})
    with pytest.raises(PilotInvalid, match="control"):
        analyze_pilot(frame)
    with pytest.raises(PilotInvalid, match="paid"):
        analyze_pilot(frame.drop("paid"), control="a")
