"""Plans: notice periods before each planned change, segment coverage, no acceleration without default, evidence."""

from datetime import date
from decimal import Decimal

import pytest

from runoff.compliance.engine import check_plan_facts
from runoff.compliance.facts import PlanFacts, PlannedChange, SegmentFacts
from runoff.compliance.taxonomy import Severity
from tests.compliance.factories import profile

CN_EVIDENCE = frozenset(
    {
        "collection-manager-named",
        "collection-methods-published",
        "lawful-basis-map",
        "retention-schedule",
        "sensitive-data-consent",
    }
)
AS_OF = date(2026, 3, 1)


def plan(**kw) -> PlanFacts:
    data = {
        "plan_id": "P",
        "regions": {"CN"},
        "segments": [SegmentFacts(name="current", accounts=90, balance=Decimal("9000")),
                     SegmentFacts(name="arrears", accounts=10, balance=Decimal("2000"))],
        "accounts_total": 100,
        "evidence": CN_EVIDENCE,
    }  # fmt: skip
    data.update(kw)
    return PlanFacts.model_validate(data)


def _rules(findings, severity=None):
    return sorted({f.rule_id for f in findings if severity is None or f.severity is severity})


def test_a_clean_plan_reports_only_its_segments():
    found = check_plan_facts(plan(), profile(lender_type="bank"), as_of=AS_OF)
    assert [(f.rule_id, f.severity, f.object_id) for f in found] == [
        ("PLAN-SEGMENTS", Severity.INFO, "arrears"),
        ("PLAN-SEGMENTS", Severity.INFO, "current"),
    ]
    assert found[1].message == "PLAN-SEGMENTS: segment current holds 90 accounts and a balance of 9000.00"


@pytest.mark.parametrize(
    ("notified", "late"),
    [(date(2026, 3, 17), False), (date(2026, 3, 18), True)],
    ids=["exactly-45-days", "44-days"],
)
def test_stop_draws_needs_45_days_notice_under_the_policy_default(notified, late):
    change = PlannedChange(change="stop-draws", effective_on=date(2026, 5, 1), notified_on=notified)
    found = [f for f in check_plan_facts(plan(changes=[change]), profile(lender_type="bank"), as_of=AS_OF)
             if f.rule_id == "CN-CLOSE-01"]  # fmt: skip
    assert bool(found) is late
    if late:
        assert found[0].severity is Severity.WARN  # a policy default, unconfirmed: warns
        assert found[0].object_id == "P:stop-draws"


def test_unconfirmed_plan_rule_blocks_when_the_profile_says_so():
    change = PlannedChange(change="stop-draws", effective_on=date(2026, 5, 1), notified_on=date(2026, 4, 1))
    strict = profile(lender_type="bank", block_on_unconfirmed=True)
    assert _rules(check_plan_facts(plan(changes=[change]), strict, as_of=AS_OF), Severity.BLOCK) == ["CN-CLOSE-01"]


def test_the_earlier_of_announcement_and_letters_counts_when_any_notice_will_do():
    change = PlannedChange(
        change="stop-draws", effective_on=date(2026, 5, 1), announced_on=date(2026, 3, 10), notified_on=date(2026, 4, 1)
    )
    assert "CN-CLOSE-01" not in _rules(
        check_plan_facts(plan(changes=[change]), profile(lender_type="bank"), as_of=AS_OF)
    )


def test_a_change_with_no_notice_planned_is_found():
    change = PlannedChange(change="fee-increase", effective_on=date(2026, 9, 1))
    found = check_plan_facts(plan(changes=[change]), profile(lender_type="bank"), as_of=AS_OF)
    ntc = next(f for f in found if f.rule_id == "CN-NTC-01")
    assert (
        ntc.severity is Severity.BLOCK
        and "no public notice planned before the effective date 2026-09-01" in ntc.message
    )


@pytest.mark.parametrize(
    ("notified", "late"),
    [(date(2026, 10, 31), False), (date(2026, 11, 1), True)],
    ids=["2-months", "a-day-short"],
)
def test_eu_creditor_termination_of_a_revolving_line_needs_2_months(notified, late):
    change = PlannedChange(
        change="line-termination", effective_on=date(2026, 12, 31), notified_on=notified, product_class="revolving-line"
    )
    eu = plan(regions={"FR"}, changes=[change], evidence={"retention-schedule"})
    found = check_plan_facts(eu, profile(jurisdictions=["eu"], lender_type="bank"), as_of=AS_OF)
    assert ("EU-CCD-03" in _rules(found, Severity.BLOCK)) is late


def test_plan_notice_rules_are_those_in_force_on_the_change_date():
    # CCD2's debt-advice duty starts on 20 Nov 2026: a plan checked before then does not need it
    eu_profile = profile(jurisdictions=["eu"], lender_type="bank")
    eu = plan(regions={"FR"}, evidence={"retention-schedule"})
    assert "EU-CCD-07" not in _rules(check_plan_facts(eu, eu_profile, as_of=date(2026, 11, 19)))
    assert "EU-CCD-07" in _rules(check_plan_facts(eu, eu_profile, as_of=date(2026, 11, 20)))


def test_segments_must_cover_every_account_exactly_once():
    broken = plan(accounts_unassigned=3, accounts_in_several_segments=2, accounts_total=103)
    found = [
        f for f in check_plan_facts(broken, profile(lender_type="bank"), as_of=AS_OF) if f.severity is Severity.BLOCK
    ]
    assert [f.message for f in found] == [
        "PLAN-SEGMENTS: 3 accounts of plan P fall in no segment",
        "PLAN-SEGMENTS: 2 accounts of plan P match more than one segment before first-match assignment",
    ]


def test_segment_totals_must_add_up_to_the_book_and_empty_segments_warn():
    odd = plan(
        accounts_total=120,
        segments=[SegmentFacts(name="all", accounts=100, balance=Decimal(1)), SegmentFacts(name="none", accounts=0, balance=Decimal(0))],
    )  # fmt: skip
    found = check_plan_facts(odd, profile(lender_type="bank"), as_of=AS_OF)
    assert [(f.severity, f.object_id) for f in found if f.severity is not Severity.INFO] == [
        (Severity.BLOCK, "P"),
        (Severity.WARN, "none"),
    ]


def test_no_acceleration_without_default():
    accelerating = plan(
        segments=[SegmentFacts(name="closing", accounts=100, balance=Decimal(1), accelerates_without_default=True)]
    )
    found = check_plan_facts(accelerating, profile(lender_type="bank"), as_of=AS_OF)
    assert _rules(found, Severity.BLOCK) == ["CN-PRC-05"]
    assert "CN-CLOSE-01" in _rules(found, Severity.WARN)
    assert next(f for f in found if f.rule_id == "CN-PRC-05").object_id == "closing"


def test_evidence_is_required_before_the_actions_that_need_it():
    handover = plan(actions={"agency-handover"})
    found = check_plan_facts(handover, profile(lender_type="bank"), as_of=AS_OF)
    assert _rules(found, Severity.BLOCK) == ["CN-PI-04"]
    assert {"CN-COL-03", "CN-COL-04", "CN-COL-05"} <= set(_rules(found, Severity.WARN))
    ready = plan(
        actions={"agency-handover"},
        evidence=CN_EVIDENCE
        | {"data-processing-agreement", "agency-whitelist", "outsourcing-notice", "agency-due-diligence"},
    )
    assert _rules(check_plan_facts(ready, profile(lender_type="bank"), as_of=AS_OF)) == ["PLAN-SEGMENTS"]


def test_closing_payment_channels_early_is_a_udaap_review_item_in_the_us():
    us = plan(regions={"US-TX"}, evidence=frozenset(), repayment_channels_close_before_balances_cleared=True)
    found = check_plan_facts(us, profile(jurisdictions=["us"], lender_type="bank"), as_of=AS_OF)
    assert [(f.rule_id, f.severity) for f in found if f.rule_id != "PLAN-SEGMENTS"] == [("US-UDAAP-01", Severity.WARN)]


def test_massachusetts_rules_apply_to_a_plan_only_when_it_covers_massachusetts():
    from runoff.compliance.selection import RuleBook

    book = RuleBook(profile(jurisdictions=["us"], lender_type="bank"))
    ma = book.checks_for(AS_OF, target="contact", region=None, regions=["US-TX", "US-MA"])
    tx = book.checks_for(AS_OF, target="contact", region=None, regions=["US-TX"])
    assert "US-ST-01" in {r.id for r, _ in ma} and "US-ST-01" not in {r.id for r, _ in tx}
