"""Retention: for each data category the longest legal floor after closure (catalogue X-RET-01).

Deletion duties (PIPL Art. 47, GDPR storage limitation) apply once every floor has run; until then the
data may only be stored and secured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from runoff.calendar import add_months
from runoff.compliance.checks import (
    RetentionFloor,
)
from runoff.compliance.profile import LenderProfile
from runoff.compliance.rules import Rule, RulePack
from runoff.compliance.selection import RuleBook, rule_book
from runoff.compliance.taxonomy import DataCategory, RetentionAnchor, RuleStatus


@dataclass(frozen=True)
class RetentionRequirement:
    """The longest legal floor for one data category, the rule behind it, and the shorter ones it beats.

    Between closure and ``keep_until`` the data may only be stored and secured (PIPL Art. 47 para. 2,
    GDPR storage limitation); after it, the deletion duty applies.
    """

    category: DataCategory
    months: int
    counted_from: RetentionAnchor
    rule_id: str
    citation: str
    status: RuleStatus
    delete_after: bool
    keep_until: date | None
    also: tuple[str, ...]


def retention_floors(
    profile: LenderProfile,
    *,
    as_of: date,
    closed_on: date | None = None,
    packs: Sequence[RulePack] | None = None,
    book: RuleBook | None = None,
) -> list[RetentionRequirement]:
    """For each data category the longest legal retention floor binding the lender on ``as_of`` (X-RET-01).

    ``keep_until`` is computed for floors counted from the end of the relationship when ``closed_on`` is given.
    """
    book = rule_book(profile, packs, book)
    best: dict[DataCategory, tuple[Rule, RetentionFloor]] = {}
    others: dict[DataCategory, list[str]] = {}
    for rule in book.in_force(as_of):
        for check in rule.parameters:
            if not isinstance(check, RetentionFloor):
                continue
            others.setdefault(check.category, []).append(rule.id)
            current = best.get(check.category)
            if current is None or check.total_months > current[1].total_months:
                best[check.category] = (rule, check)
    out = []
    for category in DataCategory:
        if category not in best:
            continue
        rule, check = best[category]
        keep_until = None
        if closed_on is not None and check.counted_from is RetentionAnchor.RELATIONSHIP_END:
            keep_until = add_months(closed_on, check.total_months)
        out.append(
            RetentionRequirement(
                category=category,
                months=check.total_months,
                counted_from=check.counted_from,
                rule_id=rule.id,
                citation=rule.citation,
                status=check.status or rule.status,
                delete_after=check.delete_after,
                keep_until=keep_until,
                also=tuple(r for r in others[category] if r != rule.id),
            )
        )
    return out
