"""Rules as data: the rule model, dated reference tables, and loading the shipped packs.

A rule (one row of the research catalogue, e.g. CN-COL-02) says whom it binds (lender and collector
types, roles, the customer's region), when it is in force, its citation and how sure we are of it
(confirmed, secondary source, unconfirmed). Its ``parameters`` are typed checks the engine knows how to
run (:mod:`runoff.compliance.checks`). A rule with no parameters is listed for reference only (the
catalogue has rules no system can check, such as an umbrella article).

Packs are YAML files shipped as package data (``runoff/compliance/packs/*.yaml``) and read with
``importlib.resources``; moving parameters (the one-year LPR, member-state caps) are dated tables in them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from runoff.compliance.checks import (
    Check,
    RateCap,
    validate_conditions,
)
from runoff.compliance.facts import CollectorType
from runoff.compliance.taxonomy import (
    DataCategory,
    Jurisdiction,
    LenderType,
    RetentionAnchor,
    Role,
    RuleKind,
    RuleStatus,
    Severity,
    Status,
    jurisdiction_of_region,
    region_matches,
)
from runoff.documents import yaml_data
from runoff.errors import InvalidInput, describe_validation_error

__all__ = [
    "Binds",
    "Check",
    "DataCategory",
    "Jurisdiction",
    "LenderType",
    "ReferenceRow",
    "ReferenceSeries",
    "RetentionAnchor",
    "Role",
    "Rule",
    "RuleKind",
    "RulePack",
    "RulePackInvalid",
    "RuleStatus",
    "Severity",
    "load_pack",
    "parse_jurisdiction",
    "parse_pack",
    "parse_pack_text",
    "shipped_packs",
]


class RulePackInvalid(InvalidInput):
    """A rule pack (or a profile's override of one) does not validate."""

    code = "compliance.pack_invalid"


def _all_of(enum: type[Enum]) -> Any:
    return Field(default_factory=lambda: frozenset(enum))


class Binds(BaseModel):
    """Whom a rule binds; a field left out means "all of them"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lender_types: frozenset[LenderType] = _all_of(LenderType)
    collector_types: frozenset[CollectorType] = _all_of(CollectorType)
    roles: frozenset[Role] = frozenset()
    regions: frozenset[str] = Field(default=frozenset(), description="customer regions (US-MA, IE); empty: all")


class ReferenceRow(BaseModel):
    """One value of a moving parameter, in force from ``from`` until the next row."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: date = Field(alias="from")
    value: Decimal = Field(gt=0)
    source: str = Field(min_length=1)


class ReferenceSeries(BaseModel):
    """A dated table such as the one-year LPR (贷款市场报价利率), published on the 20th of each month."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field(min_length=1)
    rows: tuple[ReferenceRow, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _ascending(self) -> ReferenceSeries:
        dates = [r.from_ for r in self.rows]
        if dates != sorted(set(dates)):
            raise ValueError("rows must be in ascending date order, one row per date")
        return self

    def value_on(self, on: date) -> Decimal | None:
        """The value in force on ``on``; None before the first row."""
        found = None
        for row in self.rows:
            if row.from_ <= on:
                found = row.value
            else:
                break
        return found


class Rule(BaseModel):
    """One catalogue rule: who it binds, when, what it checks, where it comes from, how sure we are."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^(CN|US|EU|UK)-[A-Z0-9]+(-[A-Z0-9]+)*$")
    jurisdiction: Jurisdiction
    title: str = Field(min_length=1)
    binds: Binds = Field(default_factory=Binds)
    kind: RuleKind
    parameters: tuple[Check, ...] = ()
    effective_from: date | None = None
    effective_to: date | None = Field(default=None, description="first day no longer in force")
    citation: str = Field(min_length=1)
    status: Status
    status_note: str = ""
    note: str = ""

    @model_validator(mode="after")
    def _dates_in_order(self) -> Rule:
        if self.effective_from and self.effective_to and self.effective_to <= self.effective_from:
            raise ValueError(f"{self.id}: `effective_to` must come after `effective_from`")
        prefix = self.id.split("-")[0].lower()
        if prefix != self.jurisdiction.value:
            raise ValueError(f"{self.id}: id prefix does not match jurisdiction {self.jurisdiction.value}")
        return self

    @property
    def machine_checked(self) -> bool:
        return bool(self.parameters)

    def in_force(self, on: date) -> bool:
        """In force on ``on``: ``effective_from <= on < effective_to``."""
        if self.effective_from is not None and on < self.effective_from:
            return False
        return self.effective_to is None or on < self.effective_to

    def applies_to_region(self, region: str | None) -> bool:
        """Whether the rule covers a customer in ``region`` (None: unknown, so every non-regional rule)."""
        if region is None:
            return not self.binds.regions
        if jurisdiction_of_region(region) is not self.jurisdiction:
            return False
        return not self.binds.regions or any(region_matches(p, region) for p in self.binds.regions)


class RulePack(BaseModel):
    """One jurisdiction's rules with its dated reference tables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    jurisdiction: Jurisdiction
    title: str = Field(min_length=1)
    references: dict[str, ReferenceSeries] = Field(default_factory=dict)
    rules: tuple[Rule, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _rules_inherit_jurisdiction(cls, data: Any) -> Any:
        """A rule in a pack file need not repeat the pack's jurisdiction."""
        if isinstance(data, dict) and isinstance(data.get("rules"), list):
            rules = [
                {"jurisdiction": data.get("jurisdiction"), **r} if isinstance(r, dict) else r for r in data["rules"]
            ]
            data = {**data, "rules": rules}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> RulePack:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"rule id {rule.id} appears twice")
            seen.add(rule.id)
            if rule.jurisdiction is not self.jurisdiction:
                raise ValueError(f"{rule.id} is a {rule.jurisdiction.value} rule in the {self.jurisdiction.value} pack")
            for check in rule.parameters:
                if isinstance(check, RateCap) and check.reference and check.reference not in self.references:
                    raise ValueError(f"{rule.id}: reference {check.reference!r} is not in the pack's `references`")
                validate_conditions(rule.id, check)
        return self


def parse_pack(data: Any, *, source: str = "rule pack") -> RulePack:
    """Validate a mapping (from YAML) as a :class:`RulePack`; one clear error naming the field."""
    if not isinstance(data, Mapping):
        raise RulePackInvalid(f"{source}: expected a mapping with `jurisdiction`, `title` and `rules`")
    try:
        return RulePack.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or None
        raise RulePackInvalid(describe_validation_error(exc, source=source), field=field) from None


@lru_cache(maxsize=8)
def load_pack(jurisdiction: Jurisdiction | str) -> RulePack:
    """The shipped pack of one jurisdiction, read from package data (``packs/<code>.yaml``)."""
    code = parse_jurisdiction(jurisdiction)
    text = resources.files("runoff.compliance.packs").joinpath(f"{code.value}.yaml").read_text(encoding="utf-8")
    return parse_pack_text(text, source=f"packs/{code.value}.yaml")


def parse_pack_text(text: str, *, source: str = "rule pack") -> RulePack:
    """Parse YAML text as a :class:`RulePack`; a YAML syntax error names the line."""
    return parse_pack(yaml_data(text, source=source, error=RulePackInvalid), source=source)


def shipped_packs() -> tuple[RulePack, ...]:
    """Every shipped pack, in a stable order (cn, us, eu, uk)."""
    return tuple(load_pack(j) for j in Jurisdiction)


def parse_jurisdiction(value: Jurisdiction | str) -> Jurisdiction:
    """The one seam from a user's text (``cn``, ``CN``) to :class:`Jurisdiction`."""
    if isinstance(value, Jurisdiction):
        return value
    try:
        return Jurisdiction(str(value).strip().lower())
    except ValueError:
        allowed = ", ".join(j.value for j in Jurisdiction)
        raise InvalidInput(
            f"`jurisdiction`: {value!r} is not a jurisdiction; expected one of {allowed}", field="jurisdiction"
        ) from None
