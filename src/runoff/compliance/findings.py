"""Findings: what the engine says about an object, rule by rule, with the citation and how sure it is.

A finding is data, not an exception (a breach found while checking a plan belongs in a report); only
:func:`require_allowed`, used at execution time, turns a blocking finding into ``ComplianceBlocked``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal

import polars as pl
from pydantic import BaseModel, ConfigDict

from runoff.compliance.checks import ObjectKind, _Check
from runoff.compliance.profile import LenderProfile
from runoff.compliance.rules import Rule
from runoff.compliance.taxonomy import RuleKind, RuleStatus, Severity
from runoff.errors import ComplianceBlocked

SEVERITY_ORDER = {Severity.BLOCK: 0, Severity.WARN: 1, Severity.INFO: 2}


class Finding(BaseModel):
    """One rule's verdict on one object.

    ``value`` is the offending value as text, ``parameter`` the limit it breaks in words; ``message`` reads
    like "CN-COL-02 (secondary source): 4 connected calls to customer C on 2026-03-02, limit 3 a day".
    """

    model_config = ConfigDict(frozen=True)

    rule_id: str
    severity: Severity
    status: RuleStatus
    kind: RuleKind
    object_kind: ObjectKind
    object_id: str
    customer_id: str | None = None
    on: date | None = None
    value: str
    parameter: str
    citation: str
    message: str

    @property
    def blocks(self) -> bool:
        return self.severity is Severity.BLOCK


def effective_status(rule: Rule, check: _Check) -> RuleStatus:
    """A parameter block may be less sure than its rule (CN-NTC-02 is confirmed for cards only)."""
    return check.status or rule.status


def effective_severity(rule: Rule, check: _Check, profile: LenderProfile) -> Severity:
    """Block only when the rule is confirmed, unless the profile blocks on unconfirmed rules too."""
    severity = check.severity
    status = effective_status(rule, check)
    if severity is Severity.BLOCK and status is not RuleStatus.CONFIRMED and not profile.block_on_unconfirmed:
        return Severity.WARN
    return severity


def make_finding(
    rule: Rule,
    check: _Check,
    profile: LenderProfile,
    *,
    object_kind: ObjectKind,
    object_id: str,
    value: str,
    text: str,
    customer_id: str | None = None,
    on: date | None = None,
    severity: Severity | None = None,
) -> Finding:
    """Build a finding; ``text`` is the sentence after "RULE (status): "."""
    status = effective_status(rule, check)
    return Finding(
        rule_id=rule.id,
        severity=severity or effective_severity(rule, check, profile),
        status=status,
        kind=check.kind,
        object_kind=object_kind,
        object_id=object_id,
        customer_id=customer_id,
        on=on,
        value=value,
        parameter=check.describe(),
        citation=rule.citation,
        message=f"{rule.id} ({status.label}): {text}",
    )


def pct(rate: Decimal | float) -> str:
    """A rate as a percent with two decimals, the way findings quote it (0.2436 → "24.36%")."""
    return f"{Decimal(str(rate)) * 100:.2f}%"


def not_evaluated(
    rule: Rule,
    check: _Check,
    profile: LenderProfile,
    *,
    object_kind: ObjectKind,
    object_id: str,
    missing: str,
    on: date,
) -> Finding:
    """A rule that applies but cannot be checked for lack of a fact: a person must look (warn, never silence)."""
    return make_finding(
        rule,
        check,
        profile,
        object_kind=object_kind,
        object_id=object_id,
        value="(missing)",
        text=f"{object_kind} {object_id} cannot be checked: `{missing}` not given",
        on=on,
        severity=Severity.WARN,
    )


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Blocking first, then warnings, then information; within each by rule and object."""
    return sorted(findings, key=lambda f: (SEVERITY_ORDER[f.severity], f.rule_id, f.object_id, f.on or date.min))


def require_allowed(findings: Sequence[Finding]) -> None:
    """Refuse an action at execution time: raise ``ComplianceBlocked`` naming the first blocking rule."""
    blocking = [f for f in findings if f.blocks]
    if not blocking:
        return
    first = sort_findings(blocking)[0]
    more = f" (and {len(blocking) - 1} more blocking finding(s))" if len(blocking) > 1 else ""
    raise ComplianceBlocked(
        f"{first.message}{more}",
        rule_id=first.rule_id,
        details={"findings": [f.model_dump(mode="json") for f in blocking]},
    )


FINDINGS_SCHEMA: dict[str, pl.DataType] = {
    "rule_id": pl.String(),
    "severity": pl.String(),
    "status": pl.String(),
    "kind": pl.String(),
    "object_kind": pl.String(),
    "object_id": pl.String(),
    "customer_id": pl.String(),
    "on": pl.Date(),
    "value": pl.String(),
    "parameter": pl.String(),
    "citation": pl.String(),
    "message": pl.String(),
}


def findings_frame(findings: Iterable[Finding]) -> pl.DataFrame:
    """Findings as a Polars table with :data:`FINDINGS_SCHEMA` (the shape ``check_offers_frame`` returns)."""
    rows = [f.model_dump(mode="python") for f in findings]
    for row in rows:
        for key in ("severity", "status", "kind"):
            row[key] = row[key].value
    return pl.DataFrame(rows, schema=FINDINGS_SCHEMA, orient="row") if rows else pl.DataFrame(schema=FINDINGS_SCHEMA)
