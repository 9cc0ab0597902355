"""Plans: notice periods before each planned change, segment coverage, no acceleration, required evidence.

The exit-plan model (``runoff.plan``) turns a plan file into :class:`~runoff.compliance.facts.PlanFacts`;
this module never reads the plan itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from runoff.compliance.checks import (
    EvidenceRequired,
    NoticeTiming,
    Prohibition,
    conditions_match,
)
from runoff.compliance.facts import (
    Channel,
    NoticeFacts,
    PlanFacts,
    PlannedChange,
    ReferenceEvent,
)
from runoff.compliance.findings import Finding, make_finding, sort_findings
from runoff.compliance.notices import timing_finding
from runoff.compliance.profile import LenderProfile
from runoff.compliance.rules import RulePack
from runoff.compliance.selection import RuleBook, rule_book
from runoff.compliance.taxonomy import RuleKind, RuleStatus, Severity
from runoff.money import quantize

_COVERAGE_RULE = "PLAN-SEGMENTS"
_COVERAGE_CITATION = "runoff plan integrity: every account lands in exactly one segment (issue 5, section 1)"


def _coverage(plan: PlanFacts) -> list[Finding]:
    """Segment coverage: every account in exactly one segment; each segment's accounts and balance reported."""

    def one(severity: Severity, object_id: str, value: str, text: str) -> Finding:
        return Finding(
            rule_id=_COVERAGE_RULE,
            severity=severity,
            status=RuleStatus.CONFIRMED,
            kind=RuleKind.PROCESS,
            object_kind="segment" if object_id != plan.plan_id else "plan",
            object_id=object_id,
            value=value,
            parameter="every account in exactly one segment",
            citation=_COVERAGE_CITATION,
            message=f"{_COVERAGE_RULE}: {text}",
        )

    out = []
    if plan.accounts_unassigned:
        out.append(
            one(
                Severity.BLOCK,
                plan.plan_id,
                str(plan.accounts_unassigned),
                f"{plan.accounts_unassigned} accounts of plan {plan.plan_id} fall in no segment",
            )
        )
    if plan.accounts_in_several_segments:
        out.append(
            one(
                Severity.BLOCK,
                plan.plan_id,
                str(plan.accounts_in_several_segments),
                f"{plan.accounts_in_several_segments} accounts of plan {plan.plan_id} match more than one segment "
                "before first-match assignment",
            )
        )
    held = sum(s.accounts for s in plan.segments)
    if plan.accounts_total and held + plan.accounts_unassigned != plan.accounts_total:
        out.append(
            one(
                Severity.BLOCK,
                plan.plan_id,
                str(held),
                f"segments of plan {plan.plan_id} hold {held} accounts (+{plan.accounts_unassigned} unassigned), "
                f"the book has {plan.accounts_total}",
            )
        )
    for seg in plan.segments:
        if seg.accounts == 0:
            out.append(one(Severity.WARN, seg.name, "0", f"segment {seg.name} holds no account"))
        else:
            out.append(
                one(
                    Severity.INFO,
                    seg.name,
                    str(seg.accounts),
                    f"segment {seg.name} holds {seg.accounts} accounts and a balance of {quantize(seg.balance)}",
                )
            )
    return out


def _change_views(plan: PlanFacts, change: PlannedChange) -> dict[str, NoticeFacts]:
    """The planned change as notices: its public announcement and its individual notices, where dated."""
    seg = f":{change.segment}" if change.segment else ""
    dated = {"public": (change.announced_on, Channel.ANNOUNCEMENT), "individual": (change.notified_on, Channel.LETTER)}
    views = {}
    for by, (sent_on, channel) in dated.items():
        if sent_on is None:
            continue
        views[by] = NoticeFacts(
            notice_id=f"{plan.plan_id}:{change.change.value}{seg}:{by}",
            notice_type=change.change,
            channel=channel,
            sent_on=sent_on,
            region=change.region,
            product_class=change.product_class,
            references={ReferenceEvent.EFFECTIVE: change.effective_on},
        )
    return views


def _change_regions(plan: PlanFacts, change: PlannedChange) -> list[str] | None:
    if change.region is not None:
        return [change.region]
    return sorted(plan.regions) or None


def check_plan_facts(
    plan: PlanFacts,
    profile: LenderProfile,
    *,
    as_of: date,
    packs: Sequence[RulePack] | None = None,
    book: RuleBook | None = None,
) -> list[Finding]:
    """Check an exit plan: notice periods before each change, segment coverage, no acceleration without
    default, plan-wide prohibitions and the evidence process rules require before the plan's actions.

    Notice rules are those in force on each change's effective date; the rest those in force on ``as_of``.
    """
    book = rule_book(profile, packs, book)
    findings = _coverage(plan)
    seen: set[tuple[str, str]] = set()
    for change in plan.changes:
        views = _change_views(plan, change)
        regions = _change_regions(plan, change)
        placeholder = NoticeFacts(
            notice_id="plan",
            notice_type=change.change,
            channel=Channel.LETTER,
            sent_on=change.effective_on,
            region=change.region,
            product_class=change.product_class,
        )
        what = f"plan {plan.plan_id}: {change.change.value}" + (f" for {change.segment}" if change.segment else "")
        for rule, check in book.checks_for(change.effective_on, target="notice", region=None, regions=regions):
            if not isinstance(check, NoticeTiming) or change.change not in check.notice_types:
                continue
            if check.reference is not ReferenceEvent.EFFECTIVE:
                continue
            if check.by == "any":
                candidates = [v for v in views.values()]
                view = min(candidates, key=lambda v: v.sent_on) if candidates else None
            else:
                view = views.get(check.by)
            if not conditions_match(check, view or placeholder):
                continue
            object_id = f"{plan.plan_id}:{change.change.value}" + (f":{change.segment}" if change.segment else "")
            if (rule.id, object_id) in seen:
                continue
            found = timing_finding(
                rule,
                check,
                profile,
                object_kind="plan",
                object_id=object_id,
                what=what + (f" {'announcement' if view.public else 'notices'}" if view else ""),
                sent_on=view.sent_on if view else None,
                reference=change.effective_on,
                customer_id=None,
            )
            if found is not None:
                seen.add((rule.id, object_id))
                findings.append(found)
    regions = sorted(plan.regions) or None
    for rule, check in book.checks_for(as_of, target="segment", region=None, regions=regions):
        for seg in plan.segments:
            if isinstance(check, Prohibition) and conditions_match(check, seg):
                findings.append(
                    make_finding(
                        rule,
                        check,
                        profile,
                        object_kind="segment",
                        object_id=seg.name,
                        on=as_of,
                        value="true",
                        text=f"segment {seg.name} of plan {plan.plan_id}: {check.act}",
                    )
                )
    for rule, check in book.checks_for(as_of, target="plan", region=None, regions=regions):
        if not conditions_match(check, plan):
            continue
        if isinstance(check, Prohibition):
            findings.append(
                make_finding(
                    rule,
                    check,
                    profile,
                    object_kind="plan",
                    object_id=plan.plan_id,
                    on=as_of,
                    value="true",
                    text=f"plan {plan.plan_id}: {check.act}",
                )
            )
        elif isinstance(check, EvidenceRequired):
            if check.before is not None and check.before not in plan.actions:
                continue
            missing = sorted(e.value for e in check.evidence - plan.evidence)
            if missing:
                step = f" takes {check.before.value}" if check.before else ""
                findings.append(
                    make_finding(
                        rule,
                        check,
                        profile,
                        object_kind="plan",
                        object_id=plan.plan_id,
                        on=as_of,
                        value=", ".join(missing),
                        text=f"plan {plan.plan_id}{step} without evidence of " + ", ".join(missing),
                    )
                )
    return sort_findings(findings)
