"""The plan check: the plan and its offers as compliance facts, findings with rule ids, citations and counts."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from runoff.compliance.facts import NoticeType, PlanAction
from runoff.compliance.selection import RuleBook
from runoff.compliance.taxonomy import Severity
from runoff.plan.checks import (
    BookFigures,
    blocking_rules,
    check_offers_part,
    check_plan,
    merge_offer_checks,
    plan_facts,
)
from runoff.plan.offers import plan_over_loans
from runoff.portfolio.catalogue import product_catalogue
from tests.plan.factories import book_positions, example, make_plan, small_book


def run(plan, *, with_offers=True):
    as_of, loans, rows = book_positions()
    from runoff.plan.loan_state import loan_states

    states = loan_states(loans, rows, product_catalogue(), as_of=as_of)
    pd = {"current": 0.03, "M1": 0.3, "M2": 0.6, "M3": 0.8, "M4+": 0.95}
    figures, book = plan_over_loans(
        plan, states, rows, small_book()["customers"], product_catalogue(), as_of=as_of, pd_by_bucket=pd,
        with_offers=with_offers,
    )  # fmt: skip
    rules = RuleBook(plan.lender)
    checks = None if book is None else check_offers_part(book.offers, book.skipped, plan, book=rules)
    return check_plan(plan, figures, as_of=as_of, offers=checks, book=rules), book


def by_rule(check, rule_id):
    return [f for f in check.findings if f.rule_id == rule_id]


@pytest.mark.parametrize("name", ["phased-three-wave", "abrupt-closure"])
def test_the_phased_and_the_abrupt_example_plans_pass_with_warnings_at_most(name):
    check, book = run(example(name))
    assert not check.blocked, [f.message for f in check.findings if f.blocks]
    assert book is not None and book.offers.height > 0
    assert check.figures.unassigned == 0 and check.figures.in_several == 0


def test_the_rule_breaking_example_blocks_with_the_rules_it_breaks():
    check, _ = run(example("breaks-rules"))
    assert check.blocked
    blocking = blocking_rules(check.findings)
    assert {"CN-CLOSE-01", "CN-CAP-03", "CN-PRC-05", "CN-PI-03"} <= set(blocking)
    notice = [f for f in by_rule(check, "CN-CLOSE-01") if "stop-draws" in f.message]
    assert notice and "10 days before the effective date" in notice[0].message
    accelerated = [f for f in by_rule(check, "CN-PRC-05") if f.object_kind == "segment"]
    assert [f.object_id for f in accelerated] == ["arrears"]
    cap = [f for f in by_rule(check, "CN-CAP-03") if "extend-at-3pct" in f.object_id]
    assert cap and cap[0].blocks and "above the cap of 24.00%" in cap[0].message
    assert all(f.citation for f in check.findings)


def test_the_check_says_how_many_accounts_and_how_much_balance_each_segment_holds():
    check, _ = run(example("phased-three-wave"), with_offers=False)
    info = {f.object_id: f for f in by_rule(check, "PLAN-SEGMENTS")}
    summary = {r["segment"]: r for r in check.figures.summary.to_dicts()}
    for seg, row in summary.items():
        if row["accounts"]:
            assert f"holds {row['accounts']} accounts" in info[seg].message
    assert sum(r["accounts"] for r in summary.values()) == check.figures.accounts


def test_overlapping_segments_block_and_name_the_pair():
    plan = make_plan(
        segments=[
            {"id": "small", "when": "balance < 3000", "options": ["settle"]},
            {"id": "current", "when": "bucket == current", "options": ["settle"]},
            {"id": "rest", "options": []},
        ]
    )
    check, _ = run(plan, with_offers=False)
    blocking = [f for f in by_rule(check, "PLAN-SEGMENTS") if f.blocks]
    assert blocking and "match more than one segment" in blocking[0].message
    pair = [f for f in by_rule(check, "PLAN-SEGMENTS") if f.object_id == "small&current"]
    assert pair and "first match gives them to small" in pair[0].message


def test_an_empty_segment_warns_and_accounts_in_no_segment_block():
    plan = make_plan(
        segments=[
            {"id": "nobody", "when": "dpd > 100000", "options": []},
            {"id": "current", "when": "bucket == current", "options": ["settle"]},
        ]
    )
    check, _ = run(plan, with_offers=False)
    warned = [f for f in by_rule(check, "PLAN-SEGMENTS") if f.severity is Severity.WARN]
    assert [f.object_id for f in warned] == ["nobody"]
    unassigned = [f for f in by_rule(check, "PLAN-SEGMENTS") if f.blocks and "fall in no segment" in f.message]
    assert unassigned and check.figures.unassigned > 0


@pytest.mark.parametrize(("days", "late"), [(45, False), (44, True)], ids=["45-days", "44-days"])
def test_stopping_draws_needs_45_days_notice_under_the_policy_default(days, late):
    plan = make_plan(**{"timeline.stop_new_draws": f"individual_notices+{days}d", "timeline.announcement": None})
    check, _ = run(plan, with_offers=False)
    found = [f for f in by_rule(check, "CN-CLOSE-01") if "stop-draws" in f.message]
    assert bool(found) is late
    if late:
        assert found[0].severity is Severity.WARN  # a policy default, unconfirmed: it warns unless the lender says so
        strict = make_plan(
            **{"timeline.stop_new_draws": f"individual_notices+{days}d", "timeline.announcement": None,
               "lender.block_on_unconfirmed": True}
        )  # fmt: skip
        assert "CN-CLOSE-01" in blocking_rules(run(strict, with_offers=False)[0].findings)


def test_acceleration_is_lawful_only_for_accounts_in_default():
    defaulted_only = make_plan(
        segments=[
            {"id": "defaulted", "when": "dpd > 90", "options": [], "default_action": "accelerate"},
            {"id": "rest", "options": ["settle"]},
        ]
    )
    assert not by_rule(run(defaulted_only, with_offers=False)[0], "CN-PRC-05")
    everyone = make_plan(segments=[{"id": "all", "options": ["settle"], "default_action": "accelerate"}])
    found = by_rule(run(everyone, with_offers=False)[0], "CN-PRC-05")
    assert found and found[0].blocks and found[0].object_id == "all"


def test_plan_facts_carry_each_waves_notices_and_the_plans_actions():
    plan = example("phased-three-wave")
    _, loans, _ = book_positions()
    check, _ = run(plan, with_offers=False)
    facts = plan_facts(plan, check.figures)
    stops = [c for c in facts.changes if c.change is NoticeType.STOP_DRAWS]
    assert [(c.segment, c.effective_on, c.notified_on) for c in stops] == [
        ("wave-1", date(2026, 3, 16), date(2026, 1, 22)),
        ("wave-2", date(2026, 4, 16), date(2026, 2, 22)),
        ("wave-3", date(2026, 5, 16), date(2026, 3, 22)),
    ]
    assert all(c.announced_on == date(2026, 1, 15) for c in stops)
    assert {PlanAction.STOP_DRAWS, PlanAction.RESTRUCTURING_OFFERS, PlanAction.BOOK_SALE} <= facts.actions
    assert facts.accounts_total == loans.get_column("account_id").n_unique()
    assert not facts.repayment_channels_close_before_balances_cleared


def test_repayment_channels_must_stay_open_until_the_last_balance_is_due():
    plan = make_plan(**{"timeline.repayment_channels_close": "option_window_closes+1d"})
    check, _ = run(plan, with_offers=False)
    found = [f for f in by_rule(check, "CN-CLOSE-01") if "repayment channels" in f.message]
    assert found


def test_offers_running_past_the_final_due_date_are_flagged():
    plan = make_plan(**{"timeline.final_due_date": "option_window_closes+1d"})
    check, _ = run(plan)
    late = by_rule(check, "PLAN-FINAL-DUE")
    assert late and late[0].severity is Severity.WARN and "extend-3" in late[0].object_id


def test_offer_checks_of_partitions_merge_into_the_checks_of_the_whole():
    plan = example("phased-three-wave")
    _, book = run(plan)
    assert book is not None
    rules = RuleBook(plan.lender)
    whole = check_offers_part(book.offers, book.skipped, plan, book=rules)
    half = book.offers.height // 2
    parts = [
        check_offers_part(book.offers[:half], book.skipped, plan, book=rules),
        check_offers_part(book.offers[half:], book.skipped.head(0), plan, book=rules),
    ]
    merged = merge_offer_checks(parts)
    assert merged.offers == whole.offers
    assert merged.findings.sort("object_id", "rule_id").equals(whole.findings.sort("object_id", "rule_id"))
    key = ["option_id", "segment"]
    assert merged.stats.sort(key).equals(whole.stats.sort(key))
    assert merged.worst.sort(key).select("offer_id").equals(whole.worst.sort(key).select("offer_id"))


def test_without_offers_the_check_still_judges_the_plan():
    plan = example("breaks-rules")
    figures = BookFigures(
        summary=pl.DataFrame(
            {
                "segment": ["performing", "arrears"],
                "accounts": [0, 0],
                "loans": [0, 0],
                "balance_fen": [0, 0],
                "overdue_fen": [0, 0],
                "defaulted_accounts": [0, 0],
                "defaulted_balance_fen": [0, 0],
                "pd_balance_fen": [0.0, 0.0],
            }
        ),
        overlaps=pl.DataFrame(schema={"segment": pl.String, "other": pl.String, "accounts": pl.Int64}),
        unassigned=0,
        in_several=0,
    )
    check = check_plan(plan, figures, as_of=date(2026, 1, 1))
    assert {"CN-CLOSE-01", "CN-PRC-05", "CN-PI-03"} <= set(blocking_rules(check.findings))
