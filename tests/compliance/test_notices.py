"""Notices: a notice exactly at the minimum period passes, one day less fails; required content per type and channel."""

from datetime import date

import pytest

from runoff.compliance.engine import check_notice
from runoff.compliance.notices import latest_send_date
from runoff.compliance.taxonomy import Severity
from tests.compliance.factories import ids, notice, profile

BANK = profile(lender_type="bank")
US_AGENCY = profile(jurisdictions=["us"], lender_type="bank", collector_types=["agency"])
FULL_CN = frozenset(
    {"annualised-rate", "all-fees", "default-consequences", "key-terms-highlighted", "change-description"}
)


def _timing(findings, rule_id):
    return [f for f in findings if f.rule_id == rule_id and f.kind.value == "deadline"]


@pytest.mark.parametrize(
    ("sent_on", "late"),
    [(date(2026, 3, 17), False), (date(2026, 3, 18), True)],
    ids=["exactly-45-days", "44-days"],
)
def test_card_rate_change_needs_45_days_individual_notice(sent_on, late):
    n = notice(
        product_class="credit-card",
        sent_on=sent_on,
        references={"effective": date(2026, 5, 1)},
        contents=FULL_CN,
    )
    found = _timing(check_notice(n, BANK), "CN-NTC-02")
    assert bool(found) is late
    if late:
        assert found[0].severity is Severity.BLOCK  # confirmed for credit cards
        assert "needs individual notice at least 45 days before the effective date (on or before 2026-03-17)" in (
            found[0].message
        )


def test_the_same_45_days_on_a_baitiao_line_only_warns_as_unconfirmed():
    n = notice(sent_on=date(2026, 3, 18), references={"effective": date(2026, 5, 1)}, contents=FULL_CN)
    (found,) = _timing(check_notice(n, BANK), "CN-NTC-02")
    assert (found.status.value, found.severity) == ("unconfirmed", Severity.WARN)


@pytest.mark.parametrize(
    ("effective", "sent_on", "late"),
    [
        (date(2026, 6, 1), date(2026, 3, 1), False),  # exactly 3 months
        (date(2026, 6, 1), date(2026, 3, 2), True),
        (date(2026, 5, 31), date(2026, 2, 28), False),  # month-end clamp: 3 months before 31 May is 28 Feb
        (date(2026, 5, 31), date(2026, 3, 1), True),
    ],
    ids=["3-months", "a-day-short", "month-end-clamp", "month-end-a-day-short"],
)
def test_bank_fee_increase_needs_3_months_public_notice(effective, sent_on, late):
    public = notice(
        notice_type="fee-increase", channel="announcement", sent_on=sent_on, references={"effective": effective}
    )
    assert bool(_timing(check_notice(public, BANK), "CN-NTC-01")) is late


def test_an_individual_letter_does_not_count_as_the_public_fee_notice():
    letter = notice(notice_type="fee-increase", sent_on=date(2026, 3, 2), references={"effective": date(2026, 6, 1)})
    assert _timing(check_notice(letter, BANK), "CN-NTC-01") == []


@pytest.mark.parametrize(
    ("sent_on", "late"),
    [(date(2026, 3, 7), False), (date(2026, 3, 8), True)],
    ids=["5-days-after", "6-days-after"],
)
def test_reg_f_validation_notice_within_5_days_after_the_initial_communication(sent_on, late):
    n = notice(
        region="US-CA",
        notice_type="validation",
        sent_on=sent_on,
        references={"initial-communication": date(2026, 3, 2)},
        contents={"validation-information"},
    )
    assert ids(check_notice(n, US_AGENCY)) == (["US-F-04"] if late else [])


def test_a_notice_without_its_reference_date_is_flagged_for_a_person():
    n = notice(region="US-CA", notice_type="validation", contents={"validation-information"})
    (found,) = check_notice(n, US_AGENCY)
    assert found.severity is Severity.WARN and "`references.initial-communication` not given" in found.message


def test_closure_notice_content_by_rule():
    bare = notice(notice_type="closure", channel="sms", references={"effective": date(2026, 6, 1)})
    found = check_notice(bare, BANK)
    missing = {f.rule_id: f.value for f in found if f.kind.value == "content"}
    assert missing["CN-APR-01"] == "annualised-rate"
    assert missing["CN-APR-02"] == "all-fees, annualised-rate, default-consequences"
    assert missing["CN-CLOSE-01"] == "annualised-rate, existing-installments-continue, repayment-channels"
    complete = bare.model_copy(update={"contents": FULL_CN | {"existing-installments-continue", "repayment-channels"}})
    assert [f for f in check_notice(complete, BANK) if f.kind.value == "content"] == []


def test_electronic_collection_messages_carry_opt_out_instructions_letters_need_not():
    sms = notice(region="US-TX", notice_type="reminder", channel="sms", sent_on=date(2026, 3, 2))
    letter = sms.model_copy(update={"channel": "letter"})
    assert ids(check_notice(sms, US_AGENCY)) == ["US-F-05"]
    assert check_notice(letter, US_AGENCY) == []


def test_udaap_review_trigger_warns_when_a_closure_notice_omits_how_to_keep_paying():
    us_bank = profile(jurisdictions=["us"], lender_type="bank")
    n = notice(region="US-TX", notice_type="closure", sent_on=date(2026, 3, 2))
    (found,) = check_notice(n, us_bank)
    assert (found.rule_id, found.severity, found.value) == ("US-UDAAP-01", Severity.WARN, "repayment-channels")


def test_unilateral_acceleration_clause_in_a_notice_is_refused():
    n = notice(notice_type="terms-change", contents=FULL_CN, acceleration_clause=True)
    assert "CN-PRC-05" in {f.rule_id for f in check_notice(n, BANK) if f.kind.value == "prohibition"}


def test_latest_send_date_counts_business_days_on_the_named_calendar():
    from runoff.compliance.checks import NoticeTiming

    check = NoticeTiming(
        check="notice-timing", notice_types={"closure"}, business_days=3, relation="after", calendar="US"
    )
    # Friday 3 July 2026 is the observed Independence Day holiday: Thu 2 -> Mon 6, Tue 7, Wed 8
    assert latest_send_date(check, date(2026, 7, 2)) == date(2026, 7, 8)
