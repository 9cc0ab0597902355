"""Which rules bind a lender: by jurisdiction, lender and collector type, roles, region and date.

A :class:`RuleBook` is built once per profile (the profile's parameter overrides applied and validated)
and answers "which rules are in force on this date for a customer in this region, contacted by this kind
of collector" for every object the engine checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from pydantic import ValidationError

from runoff.compliance.checks import _Check
from runoff.compliance.facts import CollectorType
from runoff.compliance.profile import LenderProfile
from runoff.compliance.rules import ReferenceSeries, Rule, RulePack, RulePackInvalid, shipped_packs
from runoff.errors import describe_validation_error


def _override(rule: Rule, values: dict[str, Any]) -> Rule:
    """The rule with a profile's parameter values (and, if given, a status counsel has confirmed)."""
    update: dict[str, Any] = {}
    remaining = dict(values)
    if "status" in remaining:
        update["status"] = remaining.pop("status")
    used: set[str] = set()
    checks: list[_Check] = []
    for check in rule.parameters:
        fields = {k: v for k, v in remaining.items() if k in type(check).model_fields and k != "check"}
        used.update(fields)
        if fields:
            data = check.model_dump(mode="python", by_alias=True)
            data.update(fields)
            try:
                check = type(check).model_validate(data)
            except ValidationError as exc:
                raise RulePackInvalid(
                    describe_validation_error(exc, source=f"profile override of {rule.id}"),
                    field=f"overrides.{rule.id}",
                ) from None
        checks.append(check)
    unknown = sorted(set(remaining) - used)
    if unknown:
        allowed = sorted({k for c in rule.parameters for k in type(c).model_fields if k != "check"} | {"status"})
        raise RulePackInvalid(
            f"`overrides.{rule.id}.{unknown[0]}` is not a parameter of {rule.id}; expected one of {', '.join(allowed)}",
            field=f"overrides.{rule.id}.{unknown[0]}",
        )
    update["parameters"] = tuple(checks)
    data = rule.model_dump(mode="python", by_alias=True)
    data.update(update)
    try:
        return Rule.model_validate(data)
    except ValidationError as exc:
        raise RulePackInvalid(
            describe_validation_error(exc, source=f"profile override of {rule.id}"), field=f"overrides.{rule.id}"
        ) from None


def binds_profile(rule: Rule, profile: LenderProfile) -> bool:
    """Whether ``rule`` binds the lender at all (any date, any customer)."""
    binds = rule.binds
    return (
        rule.jurisdiction in profile.jurisdictions
        and profile.lender_type in binds.lender_types
        and bool(binds.collector_types & profile.collector_types)
        and binds.roles <= profile.roles
    )


class RuleBook:
    """The rules binding one profile, with overrides applied; selection by date, region and collector."""

    def __init__(self, profile: LenderProfile, packs: Sequence[RulePack] | None = None) -> None:
        self.profile = profile
        self.packs = tuple(packs) if packs is not None else shipped_packs()
        all_rules = {r.id: r for p in self.packs for r in p.rules}
        unknown = sorted(set(profile.overrides) - set(all_rules))
        if unknown:
            raise RulePackInvalid(
                f"`overrides.{unknown[0]}`: no such rule in the packs; expected a rule id such as CN-CAP-06",
                field=f"overrides.{unknown[0]}",
            )
        rules = []
        for pack in self.packs:
            for rule in pack.rules:
                if rule.id in profile.overrides:
                    rule = _override(rule, profile.overrides[rule.id])
                if binds_profile(rule, profile):
                    rules.append(rule)
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.references: dict[str, ReferenceSeries] = {}
        for pack in self.packs:
            self.references.update(pack.references)
        self._by_date: dict[date, tuple[Rule, ...]] = {}
        self._pairs: dict[tuple[object, ...], tuple[tuple[Rule, _Check], ...]] = {}

    def in_force(self, on: date) -> tuple[Rule, ...]:
        """The binding rules in force on ``on``."""
        found = self._by_date.get(on)
        if found is None:
            found = tuple(r for r in self.rules if r.in_force(on))
            self._by_date[on] = found
        return found

    def checks_for(
        self,
        on: date,
        *,
        target: str,
        region: str | None,
        collector: CollectorType | None = None,
        regions: Iterable[str] | None = None,
    ) -> list[tuple[Rule, _Check]]:
        """(rule, check) pairs for one object kind: in force on ``on``, covering the customer's region,
        binding the collector who acts (when given), narrowed by each check's own lender/collector types."""
        region_list = list(regions) if regions is not None else None
        key = (on, target, region, collector, tuple(region_list) if region_list is not None else None)
        cached = self._pairs.get(key)
        if cached is not None:
            return list(cached)
        out: list[tuple[Rule, _Check]] = []
        for rule in self.in_force(on):
            if region_list:
                if not any(rule.applies_to_region(r) for r in region_list):
                    continue
            elif not rule.applies_to_region(region):
                continue
            if collector is not None and collector not in rule.binds.collector_types:
                continue
            for check in rule.parameters:
                if check.target() != target:
                    continue
                if check.lender_types is not None and self.profile.lender_type not in check.lender_types:
                    continue
                if check.collector_types is not None:
                    acting = collector or self.profile.default_collector
                    if acting not in check.collector_types:
                        continue
                out.append((rule, check))
        self._pairs[key] = tuple(out)
        return out


def rule_book(profile: LenderProfile, packs: Sequence[RulePack] | None, book: RuleBook | None) -> RuleBook:
    """The book to use: the caller's (reused across many objects) or one built for this call."""
    return book if book is not None else RuleBook(profile, packs)


def select_rules(profile: LenderProfile, *, on: date, packs: Sequence[RulePack] | None = None) -> list[Rule]:
    """The rules that bind ``profile`` and are in force on ``on`` (its overrides applied)."""
    return list(RuleBook(profile, packs).in_force(on))
