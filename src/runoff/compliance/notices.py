"""Notices: timing against the change they announce (or the event they follow) and required content.

A notice period is met when the notice goes out on or before the reference date minus the period
(months by calendar month with month-end clamp, business days on the named holiday calendar): a notice
exactly 45 days before passes, one day later fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from runoff.calendar import BusinessCalendar, add_months
from runoff.compliance.checks import (
    NoticeTiming,
    ObjectKind,
    Prohibition,
    RequiredContent,
    conditions_match,
)
from runoff.compliance.facts import (
    NoticeFacts,
)
from runoff.compliance.findings import Finding, make_finding, not_evaluated, sort_findings
from runoff.compliance.profile import LenderProfile
from runoff.compliance.rules import Rule, RulePack
from runoff.compliance.selection import RuleBook, rule_book


def _calendar_country(check: NoticeTiming) -> str:
    assert check.calendar is not None
    return check.calendar


def _add_business_days(start: date, n: int, country: str) -> date:
    cal = BusinessCalendar(country=country)
    day = start
    step = 1 if n >= 0 else -1
    for _ in range(abs(n)):
        day += timedelta(days=step)
        while not cal.is_business_day(day):
            day += timedelta(days=step)
    return day


def latest_send_date(check: NoticeTiming, reference: date) -> date:
    """The last day a notice may go out: ``reference`` minus the period (before) or plus it (after)."""
    sign = -1 if check.relation == "before" else 1
    if check.months is not None:
        return add_months(reference, sign * check.months)
    if check.business_days is not None:
        return _add_business_days(reference, sign * check.business_days, _calendar_country(check))
    assert check.days is not None
    return reference + timedelta(days=sign * check.days)


def timing_finding(
    rule: Rule,
    check: NoticeTiming,
    profile: LenderProfile,
    *,
    object_kind: ObjectKind,
    object_id: str,
    what: str,
    sent_on: date | None,
    reference: date,
    customer_id: str | None,
) -> Finding | None:
    ref_name = check.reference.value.replace("-", " ")
    latest = latest_send_date(check, reference)
    if sent_on is None:
        text = f"{what}: no {'' if check.by == 'any' else check.by + ' '}notice planned before the {ref_name} date {reference}"
        value = "(none)"
    elif sent_on > latest:
        gap = (reference - sent_on).days
        rel = f"{gap} days before" if gap >= 0 else f"{-gap} days after"
        text = (
            f"{what} sent {sent_on}, {rel} the {ref_name} date {reference}; "
            f"needs {check.describe()} (on or before {latest})"
        )
        value = str(sent_on)
    else:
        return None
    return make_finding(
        rule,
        check,
        profile,
        object_kind=object_kind,
        object_id=object_id,
        customer_id=customer_id,
        on=sent_on or reference,
        value=value,
        text=text,
    )


def check_notice(
    notice: NoticeFacts,
    profile: LenderProfile,
    *,
    packs: Sequence[RulePack] | None = None,
    book: RuleBook | None = None,
) -> list[Finding]:
    """Check one notice at send time: its timing against its reference dates, its content, its clauses."""
    book = rule_book(profile, packs, book)
    collector = notice.collector_type or profile.default_collector
    findings: list[Finding] = []
    nid = notice.notice_id
    for rule, check in book.checks_for(notice.sent_on, target="notice", region=notice.region, collector=collector):
        if not conditions_match(check, notice):
            continue
        if isinstance(check, NoticeTiming):
            if notice.notice_type not in check.notice_types:
                continue
            if (check.by == "public") != notice.public and check.by != "any":
                continue
            reference = notice.references.get(check.reference)
            if reference is None:
                findings.append(
                    not_evaluated(
                        rule,
                        check,
                        profile,
                        object_kind="notice",
                        object_id=nid,
                        missing=f"references.{check.reference.value}",
                        on=notice.sent_on,
                    )
                )
                continue
            found = timing_finding(
                rule,
                check,
                profile,
                object_kind="notice",
                object_id=nid,
                what=f"{notice.notice_type.value} notice {nid}",
                sent_on=notice.sent_on,
                reference=reference,
                customer_id=notice.customer_id,
            )
            if found is not None:
                findings.append(found)
        elif isinstance(check, RequiredContent):
            if check.notice_types and notice.notice_type not in check.notice_types:
                continue
            if check.channels and notice.channel not in check.channels:
                continue
            missing = sorted(i.value for i in check.items - notice.contents)
            if missing:
                findings.append(
                    make_finding(
                        rule,
                        check,
                        profile,
                        object_kind="notice",
                        object_id=nid,
                        customer_id=notice.customer_id,
                        on=notice.sent_on,
                        value=", ".join(missing),
                        text=f"{notice.notice_type.value} notice {nid} ({notice.channel.value}) lacks "
                        + ", ".join(missing),
                    )
                )
        elif isinstance(check, Prohibition):
            findings.append(
                make_finding(
                    rule,
                    check,
                    profile,
                    object_kind="notice",
                    object_id=nid,
                    customer_id=notice.customer_id,
                    on=notice.sent_on,
                    value="true",
                    text=f"{notice.notice_type.value} notice {nid}: {check.act}",
                )
            )
    return sort_findings(findings)
