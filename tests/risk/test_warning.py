"""Early warning: rule files validated by field, threshold statistics, CUSUM and control limits (by hand, and
ahead of a fixed threshold), indicators dated when known, PSI, the alert lifecycle and the watchlist."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from runoff.errors import Conflict, InvalidInput, NotFound
from runoff.risk.alerts import AlertStatus, change_alert_status, empty_alerts, record_alerts
from runoff.risk.delinquency import delinquency_partition, merge_delinquency, overdue_rates, prepare_book
from runoff.risk.roll_rates import merge_transitions, roll_rates, transition_partition
from runoff.risk.warning import (
    Alert,
    ChangeDetector,
    Statistic,
    ThresholdRule,
    WarningRules,
    build_indicators,
    control_limits,
    cusum,
    default_warning_rules,
    evaluate_rules,
    feature_drift,
    load_warning_rules,
    population_stability_index,
    psi_by_date,
    score_histogram,
)
from runoff.risk.watchlist import merge_watchlists, roll_forward_model, watchlist_partition
from tests.risk.hand_book import FEB, JAN, MAR, hand_book

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "warning-rules.yaml"


# --- rule files ------------------------------------------------------------------------------------------------


def test_the_example_file_is_the_default_rule_set():
    assert load_warning_rules(EXAMPLE.read_text(encoding="utf-8"), source=str(EXAMPLE)) == default_warning_rules()


_GOOD_RULE = "rules:\n  - id: r1\n    indicator: m1plus_balance_rate\n    threshold: 0.05\n"


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        (_GOOD_RULE.replace("0.05", "high"), "rules.0.threshold", "valid number"),
        (_GOOD_RULE.replace("m1plus_balance_rate", "m1plus"), "rules.0.indicator", "'m1plus' is not an indicator"),
        (_GOOD_RULE + "    window: 0\n", "rules.0.window", "greater than or equal to 1"),
        (_GOOD_RULE + "    direction: up\n", "rules.0.direction", "'above' or 'below'"),
        (_GOOD_RULE + "    treshold: 0.1\n", "rules.0.treshold", "Extra inputs are not permitted"),
        (_GOOD_RULE + "    segment: colour=red\n", "rules.0.segment", "'colour=red' is not a segment"),
        (_GOOD_RULE + "    statistic: slope\n", "rules.0.statistic", "'level', 'change' or 'relative-change'"),
        (_GOOD_RULE.replace("r1", "R 1"), "rules.0.id", "should match pattern"),
        (_GOOD_RULE + _GOOD_RULE.replace("rules:\n", ""), "id", "'r1' is used twice"),
        ("change_detection:\n  - id: c1\n    indicator: hhi\n    method: ewma\n", "change_detection.0.method", "'cusum' or 'control-limits'"),
        ("change_detection:\n  - id: c1\n    indicator: hhi\n    baseline_months: 1\n", "change_detection.0.baseline_months", "greater than or equal to 2"),
        ("watchlist:\n  dimension: colour\n", "watchlist.dimension", "'colour' is not a segment"),
        ("version: 2\n", "version", "Input should be 1"),
    ],
    ids=["threshold-text", "unknown-indicator", "window-zero", "direction", "misspelt-key", "segment", "statistic",
         "id-pattern", "duplicate-id", "method", "baseline", "watchlist-dimension", "version"],
)  # fmt: skip
def test_rule_file_errors_name_the_field(text, field, message):
    with pytest.raises(InvalidInput, match=message) as err:
        load_warning_rules(text, source="rules.yaml")
    assert err.value.field == field
    assert err.value.code == "warning.rules_invalid"
    assert str(err.value).startswith("rules.yaml: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [("rules: [\n", r"not valid YAML at line \d"), ("- 1\n- 2\n", "expected a mapping")],
    ids=["broken-yaml", "a-list"],
)
def test_a_file_that_is_not_a_rule_mapping_is_refused(text, message):
    with pytest.raises(InvalidInput, match=message):
        load_warning_rules(text, source="rules.yaml")


# --- threshold statistics --------------------------------------------------------------------------------------

MONTHS = [date(2024, m, 1) for m in range(1, 13)]


def _indicators(values, indicator="m1plus_balance_rate", months=None) -> pl.DataFrame:
    months = months or [d.replace(day=28) for d in MONTHS[: len(values)]]
    return pl.DataFrame(
        {
            "indicator": indicator,
            "dimension": "total",
            "segment": "all",
            "month_end": months,
            "value": [float(v) for v in values],
            "numerator": None,
            "denominator": None,
        },
        schema_overrides={"numerator": pl.Float64, "denominator": pl.Float64},
    )


def _one(rule: ThresholdRule, values, as_of=None):
    ind = _indicators(values)
    as_of = as_of or ind.get_column("month_end").max()
    alerts, outcomes = evaluate_rules(ind, WarningRules(rules=(rule,)), as_of=as_of)
    return alerts, outcomes[0]


@pytest.mark.parametrize(
    ("statistic", "window", "direction", "threshold", "values", "expected", "fires"),
    [
        ("level", 1, "above", 0.05, [0.04, 0.06], 0.06, True),
        ("level", 3, "above", 0.05, [0.04, 0.07, 0.04, 0.05], (0.07 + 0.04 + 0.05) / 3, True),
        ("level", 2, "below", 0.45, [0.5, 0.44, 0.47], 0.455, False),
        ("change", 2, "above", 0.01, [0.04, 0.045, 0.052], 0.012, True),
        ("relative-change", 1, "above", 0.3, [0.010, 0.012], 0.2, False),
        ("relative-change", 3, "below", -0.2, [0.5, 0.45, 0.42, 0.38], -0.24, True),
    ],
    ids=["level", "level-window", "level-below", "change", "relative-change", "relative-change-below"],
)
def test_threshold_rules_compare_the_statistic_of_the_window(
    statistic, window, direction, threshold, values, expected, fires
):
    rule = ThresholdRule(id="r", indicator="m1plus_balance_rate", statistic=Statistic(statistic), window=window,
                         direction=direction, threshold=threshold)  # fmt: skip
    alerts, outcome = _one(rule, values)
    assert outcome.value == pytest.approx(expected)
    assert outcome.status == ("fired" if fires else "quiet")
    assert len(alerts) == (1 if fires else 0)


def test_a_rule_without_enough_months_reports_it_and_does_not_fire():
    rule = ThresholdRule(id="r", indicator="m1plus_balance_rate", statistic=Statistic.CHANGE, window=3, threshold=0.0)
    alerts, outcome = _one(rule, [0.1, 0.2, 0.3])
    assert (alerts, outcome.status) == ([], "insufficient-data")


def test_values_after_the_as_of_date_are_not_seen():
    rule = ThresholdRule(id="r", indicator="m1plus_balance_rate", threshold=0.05)
    ind = _indicators([0.01, 0.02, 0.09])
    alerts, outcomes = evaluate_rules(ind, WarningRules(rules=(rule,)), as_of=date(2024, 2, 28))
    assert alerts == [] and outcomes[0].value == pytest.approx(0.02)


def test_a_segment_rule_reads_only_its_segment():
    rule = ThresholdRule(id="r", indicator="m1plus_balance_rate", threshold=0.05, segment="grade=E")
    ind = pl.concat(
        [
            _indicators([0.01]),
            _indicators([0.2]).with_columns(pl.lit("grade").alias("dimension"), pl.lit("E").alias("segment")),
        ]
    )
    alerts, _ = evaluate_rules(ind, WarningRules(rules=(rule,)), as_of=date(2024, 1, 28))
    assert [a.segment for a in alerts] == ["grade=E"]


# --- change detection ------------------------------------------------------------------------------------------


def test_cusum_by_hand():
    # baseline 0, 2, 0, 2: mean 1, σ = sqrt(4/3); then 3, 3: z = 2/σ = 1.732 each; S = 1.232, 2.464
    signal = cusum([0, 2, 0, 2, 3, 3], baseline=4, k=0.5, h=2.0)
    sigma = np.sqrt(4 / 3)
    assert (signal.mean, signal.sigma) == (1.0, pytest.approx(sigma))
    assert signal.statistic[4:] == pytest.approx([2 / sigma - 0.5, 2 * (2 / sigma - 0.5)])
    assert (signal.alarm_index, signal.current) == (5, True)
    assert np.isnan(signal.statistic[:4]).all()


def test_cusum_resets_at_zero_and_watches_one_direction():
    down = cusum([0, 2, 0, 2, -5, -5], baseline=4, k=0.5, h=2.0)
    assert down.statistic[4:].tolist() == [0.0, 0.0] and down.alarm_index is None
    assert cusum([0, 2, 0, 2, -5, -5], baseline=4, k=0.5, h=2.0, direction="below").alarm_index == 4


def test_control_limits_by_hand():
    signal = control_limits([0, 2, 0, 2, 4, 5], baseline=4, limit_sigma=3.0)
    sigma = np.sqrt(4 / 3)
    assert signal.statistic[4:] == pytest.approx([3 / sigma, 4 / sigma])
    assert (signal.alarm_index, signal.current) == (5, True)  # 3/σ = 2.6 is inside, 4/σ = 3.46 outside


def test_cusum_catches_a_sustained_shift_before_a_fixed_threshold_does():
    """An M1+ rate of 3 % ± 0.1 % for two years, then up by 1.5σ for good. A fixed alert line has to sit well
    above the noise not to cry wolf (here mean + 4σ = 3.4 %): the shifted series reaches it late or never,
    while the CUSUM (k = 0.5, h = 4, baseline estimated from the two years) signals within months. Over 200
    seeded books it is first in at least 95 % of them, and its median delay is at most four months."""
    base, sigma, shift_at = 0.03, 0.001, 24
    first, delays = 0, []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        values = base + sigma * rng.standard_normal(60)
        values[shift_at:] += 1.5 * sigma
        crossed = np.flatnonzero(values[shift_at:] > base + 4 * sigma)
        threshold_month = int(crossed[0]) + shift_at if crossed.size else len(values)
        signal = cusum(values, baseline=shift_at, k=0.5, h=4.0)
        assert signal.alarm_index is not None, seed
        first += signal.alarm_index < threshold_month
        delays.append(signal.alarm_index - shift_at)
    assert first >= 190
    assert np.median(delays) <= 4


def test_a_fixed_threshold_alone_misses_the_shift_the_cusum_sees():
    rng = np.random.default_rng(7)
    values = 0.03 + 0.001 * rng.standard_normal(36)
    values[24:] += 0.0015
    ind = _indicators(list(values), months=[date(2022 + k // 12, k % 12 + 1, 28) for k in range(36)])
    rules = WarningRules(
        rules=(ThresholdRule(id="fixed", indicator="m1plus_balance_rate", threshold=0.034),),
        change_detection=(ChangeDetector(id="drift", indicator="m1plus_balance_rate", baseline_months=24),),
    )
    _, outcomes = evaluate_rules(ind, rules, as_of=date(2024, 12, 28))
    assert {o.rule_id: o.status for o in outcomes} == {"fixed": "quiet", "drift": "fired"}


def test_a_detector_fires_while_the_threshold_rule_stays_quiet():
    values = [0.030, 0.031, 0.029, 0.030, 0.031, 0.029, 0.0315, 0.032, 0.0315, 0.032, 0.0318, 0.0322]
    rules = WarningRules(
        rules=(ThresholdRule(id="fixed", indicator="m1plus_balance_rate", threshold=0.035),),
        change_detection=(ChangeDetector(id="drift", indicator="m1plus_balance_rate", baseline_months=6),),
    )
    ind = _indicators(values)
    alerts, outcomes = evaluate_rules(ind, rules, as_of=ind.get_column("month_end").max())
    assert {o.rule_id: o.status for o in outcomes} == {"fixed": "quiet", "drift": "fired"}
    (alert,) = alerts
    # baseline mean 0.03, σ 0.000894: S = 1.18, 2.92, 4.10 > 4 at the third shifted month, September
    assert (alert.kind, alert.first_signal_on) == ("cusum", date(2024, 9, 28))
    assert "shifted above its baseline" in alert.message


def test_a_trailing_baseline_watches_only_the_last_months():
    values = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06] + [0.06] * 6  # seasoning, then flat
    det = ChangeDetector(id="d", indicator="m1plus_balance_rate", baseline_months=3, monitor_months=3)
    ind = _indicators(values)
    _, outcomes = evaluate_rules(ind, WarningRules(change_detection=(det,)), as_of=ind.get_column("month_end").max())
    assert outcomes[0].status == "quiet"
    first_months = ChangeDetector(id="d", indicator="m1plus_balance_rate", baseline_months=3)
    _, outcomes = evaluate_rules(
        ind, WarningRules(change_detection=(first_months,)), as_of=ind.get_column("month_end").max()
    )
    assert outcomes[0].status == "fired"


# --- indicators and PSI ----------------------------------------------------------------------------------------


def test_indicators_are_dated_when_they_become_known():
    book = hand_book()
    prepared = prepare_book(book["performance"], as_of=MAR)
    rates = overdue_rates(merge_delinquency([delinquency_partition(prepared)]))
    rolls = roll_rates(merge_transitions([transition_partition(prepared)]))
    ind = build_indicators(rates=rates, rolls=rolls)
    entry = ind.filter(pl.col("indicator") == "roll_current_to_m1").select("month_end", "value").rows()
    assert entry == [(FEB, pytest.approx(7800 / 12000)), (MAR, pytest.approx(2400 / 4400))]  # rolls of Jan, Feb
    m1 = ind.filter(pl.col("indicator") == "m1plus_balance_rate").select("month_end", "value").rows()
    assert m1 == [
        (JAN, pytest.approx(5000 / 17000)),
        (FEB, pytest.approx(12800 / 17200)),
        (MAR, pytest.approx(8400 / 10900)),
    ]
    cure = ind.filter(pl.col("indicator") == "m1_cure_rate").row(0, named=True)
    assert (cure["month_end"], cure["value"]) == (MAR, pytest.approx(1800 / 7800))


@pytest.mark.parametrize(
    ("expected", "actual", "psi"),
    [
        ([50, 50], [50, 50], 0.0),
        ([50, 50], [60, 40], 0.1 * np.log(1.2) + 0.1 * np.log(1 / 0.8)),
        ([1, 1, 2], [2, 2, 4], 0.0),  # shares, not counts
    ],
    ids=["same", "shift", "scale-free"],
)
def test_population_stability_index(expected, actual, psi):
    assert population_stability_index(expected, actual) == pytest.approx(psi)


def test_psi_refuses_histograms_that_cannot_be_compared():
    with pytest.raises(InvalidInput, match="same size"):
        population_stability_index([1, 2], [1, 2, 3])
    with pytest.raises(InvalidInput, match="empty"):
        population_stability_index([0, 0], [1, 2])


def test_score_psi_by_date_against_the_first_date():
    scores = pl.DataFrame(
        {
            "customer_id": [1, 2, 3, 4, 1, 2, 3, 4],
            "as_of": [JAN] * 4 + [FEB] * 4,
            "pd": [0.001, 0.001, 0.5, 0.5, 0.001, 0.5, 0.5, 0.5],
        }
    )
    psi = psi_by_date(score_histogram(scores))
    assert psi.get_column("psi").to_list() == [0.0, pytest.approx(population_stability_index([2, 2], [1, 3]))]


# --- alert lifecycle -------------------------------------------------------------------------------------------

AT = datetime(2024, 4, 2, 9, 0, tzinfo=UTC)


def _alert(as_of: date, value: float = 0.09, rule_id: str = "m1plus-high") -> Alert:
    return Alert(rule_id=rule_id, kind="threshold", indicator="m1plus_balance_rate", segment="all", severity="high",
                 as_of=as_of, observed_on=as_of, value=value, threshold=0.08, direction="above", message="m1+ high")  # fmt: skip


def test_a_rule_that_keeps_firing_updates_its_open_alert_instead_of_raising_another():
    table, raised, updated = record_alerts(empty_alerts(), [_alert(FEB)], at=AT, actor="runoff warn")
    assert (raised, updated) == (["m1plus-high@2024-02"], [])
    table, raised, updated = record_alerts(table, [_alert(MAR, 0.1)], at=AT, actor="runoff warn")
    assert (raised, updated) == ([], ["m1plus-high@2024-02"])
    row = table.row(0, named=True)
    assert (table.height, row["status"], row["first_seen_on"], row["last_seen_on"], row["value"]) == (
        1,
        "open",
        FEB,
        MAR,
        0.1,
    )


def test_acknowledge_then_resolve_records_who_and_when():
    table, _, _ = record_alerts(empty_alerts(), [_alert(FEB)], at=AT, actor="runoff warn")
    later = datetime(2024, 4, 3, 10, 30, tzinfo=UTC)
    table = change_alert_status(table, "m1plus-high@2024-02", AlertStatus.ACKNOWLEDGED, by="li.wei", at=AT)
    table = change_alert_status(
        table, "m1plus-high@2024-02", "resolved", by="zhang.min", at=later, note="collections staffed up"
    )
    row = table.row(0, named=True)
    assert (row["status"], row["acknowledged_by"], row["acknowledged_at"]) == ("resolved", "li.wei", AT)
    assert (row["resolved_by"], row["resolved_at"], row["note"]) == ("zhang.min", later, "collections staffed up")


@pytest.mark.parametrize(
    ("moves", "error", "message"),
    [
        (["resolved", "acknowledged"], Conflict, "is resolved; it can move to nothing"),
        (["resolved", "resolved"], Conflict, "is resolved"),
        (["acknowledged", "acknowledged"], Conflict, "is acknowledged; it can move to resolved, not acknowledged"),
    ],
    ids=["ack-after-resolve", "resolve-twice", "ack-twice"],
)
def test_the_lifecycle_refuses_moves_it_does_not_allow(moves, error, message):
    table, _, _ = record_alerts(empty_alerts(), [_alert(FEB)], at=AT, actor="runoff warn")
    table = change_alert_status(table, "m1plus-high@2024-02", moves[0], by="a", at=AT)
    with pytest.raises(error, match=message):
        change_alert_status(table, "m1plus-high@2024-02", moves[1], by="a", at=AT)


def test_unknown_alerts_and_anonymous_actors_are_refused():
    table, _, _ = record_alerts(empty_alerts(), [_alert(FEB)], at=AT, actor="runoff warn")
    with pytest.raises(NotFound, match="'nope' is not an alert"):
        change_alert_status(table, "nope", "acknowledged", by="a", at=AT)
    with pytest.raises(InvalidInput, match="`by`"):
        change_alert_status(table, "m1plus-high@2024-02", "acknowledged", by=" ", at=AT)
    with pytest.raises(ValueError, match="'closed' is not a valid AlertStatus"):
        change_alert_status(table, "m1plus-high@2024-02", "closed", by="a", at=AT)


def test_a_rule_firing_after_its_alert_was_resolved_raises_a_new_one():
    table, _, _ = record_alerts(empty_alerts(), [_alert(FEB)], at=AT, actor="runoff warn")
    table = change_alert_status(table, "m1plus-high@2024-02", "resolved", by="a", at=AT)
    table, raised, _ = record_alerts(table, [_alert(FEB)], at=AT, actor="runoff warn")
    assert raised == ["m1plus-high@2024-02#2"]
    assert table.get_column("status").to_list() == ["resolved", "open"]


# --- watchlist -------------------------------------------------------------------------------------------------


def test_watchlist_rolls_each_loan_with_the_estimated_matrix():
    book = hand_book()
    prepared = prepare_book(book["performance"], as_of=MAR)
    counts = merge_transitions([transition_partition(prepared)])
    model = roll_forward_model(counts, dimension="total", months=6, horizon=3)
    p_roll = dict(model.table.select("state", "p_roll").iter_rows())
    assert (p_roll["current"], p_roll["M1"]) == (pytest.approx(3 / 6), pytest.approx(1 / 2))  # pooled Jan and Feb
    assert p_roll["M2"] == 0.0  # never seen: the loan is taken to stay
    watch = merge_watchlists([watchlist_partition(prepared, model, top_n=10)], top_n=10)
    top = watch["top"].select("rank", "customer_id", "p_roll", "balance_fen", "expected_roll_fen").rows()
    # March: customer 1 has loan 1 current (1000) and loan 2 in M2 (6000); customer 4 loan 5 in M1; customer 2
    # loan 6 current; customer 3 was written off
    assert top == [  # by the balance expected to roll
        (1, 4, pytest.approx(0.5), 2400, pytest.approx(1200.0)),
        (2, 2, pytest.approx(0.5), 1500, pytest.approx(750.0)),
        (3, 1, pytest.approx(0.5), 7000, pytest.approx(500.0)),
    ]
    summary = {r["state"]: r for r in watch["summary"].to_dicts()}
    assert (summary["current"]["loans"], summary["current"]["balance_fen"]) == (2, 2500)


def test_watchlist_keeps_accounts_above_the_minimum_probability():
    book = hand_book()
    prepared = prepare_book(book["performance"], as_of=MAR)
    model = roll_forward_model(merge_transitions([transition_partition(prepared)]), dimension="total")
    assert watchlist_partition(prepared, model, min_probability=0.6)["top"].height == 0


def test_feature_drift_is_the_psi_of_each_feature_and_the_book_takes_the_largest():
    hist = pl.DataFrame(
        {
            "feature": ["a", "a", "a", "a", "b", "b", "b", "b"],
            "period": ["baseline", "baseline", "current", "current"] * 2,
            "bin": [0, 1, 0, 1, 0, 1, 0, 1],
            "customers": [50, 50, 60, 40, 50, 50, 50, 50],
        }
    )
    drift = feature_drift(hist, as_of=MAR)
    assert dict(drift.select("feature", "psi").iter_rows()) == {
        "a": pytest.approx(population_stability_index([50, 50], [60, 40])),
        "b": 0.0,
    }
    ind = build_indicators(feature_psi=drift)
    book = ind.filter(pl.col("dimension") == "total").row(0, named=True)
    assert (book["indicator"], book["month_end"], book["value"]) == (
        "feature_psi",
        MAR,
        pytest.approx(drift["psi"].max()),
    )
    assert set(ind.filter(pl.col("dimension") == "feature").get_column("segment")) == {"a", "b"}
