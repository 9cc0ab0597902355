"""The lender profile: who the lender is, which decides which rules bind it.

Several headline rules bind only some actors (the catalogue's first trap): China's 4 × LPR ceiling binds
private lenders only, Reg F binds third-party debt collectors only, the E-Commerce Law's 30-day notice binds
the shopping platform. The profile names the jurisdictions, the lender's licence, who collects, extra
roles, whether rules that are not confirmed should block, and any parameter the lender sets stricter
(e.g. the 20 % consumer-finance ceiling instead of 24 %).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from runoff.compliance.facts import CollectorType
from runoff.compliance.taxonomy import Jurisdiction, LenderType, Role
from runoff.errors import InvalidInput, describe_validation_error


class ProfileInvalid(InvalidInput):
    """A lender profile file does not validate."""

    code = "compliance.profile_invalid"


class LenderProfile(BaseModel):
    """Jurisdictions, lender type, collector types and how strictly unconfirmed rules are applied."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "lender"
    jurisdictions: frozenset[Jurisdiction] = Field(min_length=1)
    lender_type: LenderType
    collector_types: frozenset[CollectorType] = frozenset({CollectorType.FIRST_PARTY})
    roles: frozenset[Role] = frozenset()
    block_on_unconfirmed: bool = Field(
        default=False, description="rules from secondary sources or unconfirmed block instead of warning"
    )
    overrides: dict[str, dict[str, Decimal | int | bool | str]] = Field(
        default_factory=dict, description="rule id -> parameter values, e.g. {CN-CAP-06: {max_rate: 0.20}}"
    )

    @model_validator(mode="before")
    @classmethod
    def _collector_type_alias(cls, data: Any) -> Any:
        """Accept ``collector_type: agency`` (one) as well as ``collector_types: [...]``, and ``CN`` for ``cn``."""
        if isinstance(data, dict) and "collector_type" in data:
            data = dict(data)
            one = data.pop("collector_type")
            data.setdefault("collector_types", [one] if isinstance(one, str) else one)
        if isinstance(data, dict) and isinstance(data.get("jurisdictions"), str):
            data = {**data, "jurisdictions": [data["jurisdictions"]]}
        if isinstance(data, dict) and isinstance(data.get("jurisdictions"), list | tuple | set | frozenset):
            data = {**data, "jurisdictions": [j.lower() if isinstance(j, str) else j for j in data["jurisdictions"]]}
        return data

    @property
    def default_collector(self) -> CollectorType:
        """Who collects when a contact does not say: first party if the lender collects itself."""
        if CollectorType.FIRST_PARTY in self.collector_types:
            return CollectorType.FIRST_PARTY
        return CollectorType.AGENCY


def parse_profile(data: Any, *, source: str = "profile") -> LenderProfile:
    """Validate a mapping (from YAML) as a :class:`LenderProfile`; one clear error naming the field."""
    if not isinstance(data, dict):
        raise ProfileInvalid(f"{source}: expected a mapping with `jurisdictions` and `lender_type`")
    try:
        return LenderProfile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or None
        raise ProfileInvalid(describe_validation_error(exc, source=source), field=field) from None
