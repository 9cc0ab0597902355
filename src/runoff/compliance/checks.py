"""The typed parameter blocks of a rule: what the engine knows how to check.

Each block names its object (offer, notice, contact, plan, segment), the limit in its own terms and
optional ``when`` / ``unless`` conditions over that object's facts (field names of
:mod:`runoff.compliance.facts`, validated when a pack loads). A block may carry a status of its own when
it is less sure than its rule (CN-NTC-02 is confirmed for credit cards only) and may narrow the rule's
lender or collector types (Massachusetts limits visits by debt collectors only).
"""

from __future__ import annotations

import types
import typing
from datetime import date, time
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from runoff.compliance.facts import (
    FACTS_BY_OBJECT,
    Channel,
    CollectorType,
    ContentItem,
    Evidence,
    NoticeType,
    PlanAction,
    ProductClass,
    ReferenceEvent,
)
from runoff.compliance.taxonomy import (
    DataCategory,
    LenderType,
    RetentionAnchor,
    RuleKind,
    Severity,
    Status,
    region_matches,
)

FactValue = bool | int | str
Conditions = dict[str, FactValue | tuple[FactValue, ...]]
ObjectKind = Literal["offer", "notice", "contact", "plan", "segment"]


class _Check(BaseModel):
    """What every parameter block has: severity, an optional status of its own, conditions, narrowing."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: ClassVar[RuleKind]
    severity: Severity = Severity.BLOCK
    status: Status | None = None
    when: Conditions = Field(default_factory=dict)
    unless: Conditions = Field(default_factory=dict)
    lender_types: frozenset[LenderType] | None = None
    collector_types: frozenset[CollectorType] | None = None
    note: str = ""

    def target(self) -> ObjectKind:
        raise NotImplementedError

    def describe(self) -> str:
        """The parameter in words, as a finding quotes it."""
        raise NotImplementedError


def _period_text(days: int | None, months: int | None, business_days: int | None) -> str:
    if months is not None:
        return f"{months} month{'s' if months != 1 else ''}"
    if business_days is not None:
        return f"{business_days} business day{'s' if business_days != 1 else ''}"
    return f"{days} day{'s' if days != 1 else ''}"


class NoticeTiming(_Check):
    """DEADLINE: a notice of these types goes out at least N before (or at most N after) a reference event."""

    kind: ClassVar[RuleKind] = RuleKind.DEADLINE
    check: Literal["notice-timing"]
    notice_types: frozenset[NoticeType] = Field(min_length=1)
    reference: ReferenceEvent = ReferenceEvent.EFFECTIVE
    relation: Literal["before", "after"] = "before"
    days: int | None = Field(default=None, ge=0)
    months: int | None = Field(default=None, ge=1)
    business_days: int | None = Field(default=None, ge=1)
    by: Literal["public", "individual", "any"] = "any"
    calendar: str | None = Field(default=None, description="holiday country for business days")

    @model_validator(mode="after")
    def _one_period(self) -> NoticeTiming:
        given = [x for x in (self.days, self.months, self.business_days) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of `days`, `months`, `business_days`")
        if self.business_days is not None and self.calendar is None:
            raise ValueError("`business_days` needs `calendar` (the holiday country, e.g. US)")
        return self

    def target(self) -> ObjectKind:
        return "notice"

    def describe(self) -> str:
        period = _period_text(self.days, self.months, self.business_days)
        ref = self.reference.value.replace("-", " ")
        how = {"public": "public notice", "individual": "individual notice", "any": "notice"}[self.by]
        if self.relation == "before":
            return f"{how} at least {period} before the {ref} date"
        return f"{how} no later than {period} after the {ref} date"


class CapRow(BaseModel):
    """One dated, optionally keyed cap value (a member state's cap, a step of a glide path)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: date | None = Field(default=None, alias="from")
    to: date | None = None
    region: str | None = None
    product_class: ProductClass | None = None
    max_rate: Decimal = Field(gt=0)
    per: Literal["year", "month", "week"] = "year"
    basis: Literal["nominal", "effective"] = "nominal"
    note: str = ""

    @model_validator(mode="after")
    def _periodic_caps_are_nominal(self) -> CapRow:
        if self.per != "year" and self.basis != "nominal":
            raise ValueError("a monthly or weekly cap compares the nominal rate; set `basis: nominal`")
        return self

    @property
    def annual_rate(self) -> Decimal:
        return self.max_rate * {"year": 1, "month": 12, "week": 52}[self.per]

    def applies(self, on: date, region: str | None, product_class: ProductClass) -> bool:
        if self.from_ is not None and on < self.from_:
            return False
        if self.to is not None and on >= self.to:
            return False
        if self.region is not None and (region is None or not region_matches(self.region, region)):
            return False
        return self.product_class is None or self.product_class is product_class


class RateCap(_Check):
    """CAP: an offer's annualised rate by IRR, all fees included, at most a ceiling.

    The ceiling is a fixed ``max_rate``, a ``multiple`` of a dated reference series (4 × one-year LPR), or
    a ``table`` of dated and keyed rows (glide paths, member-state caps). ``date_basis`` says which date looks the
    value up: the offer's date, or the loan's formation date (the SPC ceiling is fixed at formation).
    """

    kind: ClassVar[RuleKind] = RuleKind.CAP
    check: Literal["rate-cap"]
    max_rate: Decimal | None = Field(default=None, gt=0)
    reference: str | None = None
    multiple: Decimal | None = Field(default=None, gt=0)
    table: tuple[CapRow, ...] = ()
    basis: Literal["nominal", "effective"] = "nominal"
    date_basis: Literal["offered-on", "formation-date"] = "offered-on"
    warn_above: Decimal | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_source(self) -> RateCap:
        sources = [self.max_rate is not None, self.reference is not None, bool(self.table)]
        if sum(sources) != 1:
            raise ValueError("give exactly one of `max_rate`, `reference` (with `multiple`), `table`")
        if (self.reference is None) != (self.multiple is None):
            raise ValueError("`reference` and `multiple` go together")
        return self

    def target(self) -> ObjectKind:
        return "offer"

    def describe(self) -> str:
        if self.max_rate is not None:
            return f"annualised rate ({self.basis}) at most {_pct(self.max_rate)}"
        if self.reference is not None:
            return f"annualised rate ({self.basis}) at most {self.multiple} × {self.reference} on the {self.date_basis} date"
        return "annualised rate at most the cap in the rule's table"


def _pct(rate: Decimal) -> str:
    text = f"{rate * 100:.4f}".rstrip("0").rstrip(".")
    return f"{text}%"


class SettlementCompensationCap(_Check):
    """CAP: what early settlement may cost beyond principal and accrued interest (EU CCD2 Art. 29).

    ``fee <= min(rate × amount repaid early, interest to the agreed end, the creditor's cost)``, with the
    rate ``rate_long`` when more than ``threshold_months`` remain, ``rate_short`` otherwise; nothing at all
    when the borrowing rate is not fixed.
    """

    kind: ClassVar[RuleKind] = RuleKind.CAP
    check: Literal["settlement-compensation-cap"]
    rate_long: Decimal = Field(ge=0)
    rate_short: Decimal = Field(ge=0)
    threshold_months: int = Field(ge=0)
    fixed_rate_only: bool = True
    within_remaining_interest: bool = True
    within_creditor_cost: bool = True

    def target(self) -> ObjectKind:
        return "offer"

    def describe(self) -> str:
        return (
            f"compensation at most {_pct(self.rate_long)} of the amount repaid early if more than "
            f"{self.threshold_months} months remain, {_pct(self.rate_short)} otherwise"
        )


class SettlementInterest(_Check):
    """CAP: early settlement charges interest only for the period actually borrowed (Civil Code Art. 677)."""

    kind: ClassVar[RuleKind] = RuleKind.CAP
    check: Literal["settlement-interest"]

    def target(self) -> ObjectKind:
        return "offer"

    def describe(self) -> str:
        return "interest only up to the settlement date"


class RateDisclosure(_Check):
    """CONTENT: the offer shows its annualised rate, and the figure shown is the IRR of its cash flows."""

    kind: ClassVar[RuleKind] = RuleKind.CONTENT
    check: Literal["rate-disclosure"]
    basis: Literal["nominal", "effective"] = "nominal"
    tolerance: Decimal = Field(default=Decimal("0.00005"), ge=0, description="display rounding, a fraction")

    def target(self) -> ObjectKind:
        return "offer"

    def describe(self) -> str:
        return f"displayed annualised rate equals the {self.basis} IRR within {_pct(self.tolerance)}"


class DateOrder(_Check):
    """DEADLINE: one date of an offer comes at least ``min_days`` before another (extension before maturity)."""

    kind: ClassVar[RuleKind] = RuleKind.DEADLINE
    check: Literal["date-order"]
    earlier: str
    later: str
    min_days: int = Field(default=1, ge=0)

    def target(self) -> ObjectKind:
        return "offer"

    def describe(self) -> str:
        return f"{self.earlier} at least {self.min_days} day(s) before {self.later}"


class ValueBound(_Check):
    """CAP: a numeric fact of an offer or contact within bounds (bullet term <= 12 months, >= 2 visitors)."""

    kind: ClassVar[RuleKind] = RuleKind.CAP
    check: Literal["value-bound"]
    object: Literal["offer", "contact"]
    field: str
    max: Decimal | None = None
    min: Decimal | None = None

    @model_validator(mode="after")
    def _a_bound(self) -> ValueBound:
        if self.max is None and self.min is None:
            raise ValueError("give `max`, `min` or both")
        return self

    def target(self) -> ObjectKind:
        return self.object

    def describe(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f"at least {self.min}")
        if self.max is not None:
            parts.append(f"at most {self.max}")
        return f"{self.field} " + " and ".join(parts)


CONTACT_CHANNELS = frozenset({Channel.CALL, Channel.VOICE_MESSAGE, Channel.SMS, Channel.EMAIL, Channel.VISIT})


class ContactWindow(_Check):
    """WINDOW: contacts only between ``start`` and ``end`` local time, on allowed weekdays.

    Local means the customer's time zone unless ``timezone`` names one (Massachusetts uses Eastern time).
    ``end`` is excluded unless ``end_inclusive`` (Reg F allows 21:00 itself; the Chinese ban starts at 22:00).
    """

    kind: ClassVar[RuleKind] = RuleKind.WINDOW
    check: Literal["contact-window"]
    start: time
    end: time
    end_inclusive: bool = False
    weekdays: frozenset[int] = Field(default=frozenset(range(1, 8)), description="ISO weekdays, 1 Monday")
    no_public_holidays: bool = False
    holiday_country: str | None = None
    timezone: str = "customer"
    channels: frozenset[Channel] = CONTACT_CHANNELS

    @model_validator(mode="after")
    def _ordered(self) -> ContactWindow:
        if self.start >= self.end:
            raise ValueError(f"`start` {self.start} must come before `end` {self.end}")
        if not self.weekdays or not self.weekdays <= set(range(1, 8)):
            raise ValueError("`weekdays` are ISO weekday numbers 1 (Monday) to 7 (Sunday)")
        if self.no_public_holidays and self.holiday_country is None:
            raise ValueError("`no_public_holidays` needs `holiday_country` (e.g. IE)")
        return self

    def target(self) -> ObjectKind:
        return "contact"

    def describe(self) -> str:
        close = "]" if self.end_inclusive else ")"
        days = "" if len(self.weekdays) == 7 else f", ISO weekdays {sorted(self.weekdays)}"
        hol = ", not on public holidays" if self.no_public_holidays else ""
        zone = "local" if self.timezone == "customer" else self.timezone
        return f"contacts in [{self.start:%H:%M}, {self.end:%H:%M}{close} {zone}{days}{hol}"


KeyField = Literal["customer_id", "debt_id", "address", "third_party_id"]


def _count_text(channels: frozenset[Channel], connected: bool | None) -> str:
    if channels == {Channel.CALL}:
        noun = "calls"
    elif channels == {Channel.VISIT}:
        noun = "visits"
    else:
        noun = "contacts"
    if connected is True:
        return f"connected {noun}"
    if connected is False:
        return f"unanswered {noun}"
    return noun


class ContactFrequency(_Check):
    """FREQ: at most ``max_count`` contacts per counting key per local day, per rolling N days, or ever.

    The counting key differs by rule (X-FREQ-01): per debtor across all agencies (NIFA), per contact number
    (CBA), per person and debt (Reg F), per third party (FDCPA 1692b). ``connected`` counts only answered
    calls (true), only unanswered attempts (false) or every attempt (left out).
    """

    kind: ClassVar[RuleKind] = RuleKind.FREQUENCY
    check: Literal["contact-frequency"]
    max_count: int = Field(ge=0)
    per: Literal["local-day", "rolling-days", "ever"]
    days: int | None = Field(default=None, ge=1)
    key: tuple[KeyField, ...] = Field(min_length=1)
    channels: frozenset[Channel] = frozenset({Channel.CALL})
    connected: bool | None = None
    consent_exclusion_days: int | None = Field(default=None, ge=1)
    timezone: str = "customer"

    @model_validator(mode="after")
    def _days_for_rolling(self) -> ContactFrequency:
        if (self.per == "rolling-days") != (self.days is not None):
            raise ValueError("`days` goes with `per: rolling-days` and only with it")
        return self

    def target(self) -> ObjectKind:
        return "contact"

    @property
    def counted(self) -> str:
        return _count_text(self.channels, self.connected)

    @property
    def window_text(self) -> str:
        if self.per == "local-day":
            return "a day"
        if self.per == "ever":
            return "in all"
        return f"in {self.days} days"

    def describe(self) -> str:
        key = ", ".join(self.key)
        return f"at most {self.max_count} {self.counted} {self.window_text} per ({key})"


class ContactCooloff(_Check):
    """FREQ: no call within ``days`` local days after a conversation (the conversation's day is day 1)."""

    kind: ClassVar[RuleKind] = RuleKind.FREQUENCY
    check: Literal["contact-cooloff"]
    days: int = Field(ge=1)
    key: tuple[KeyField, ...] = Field(min_length=1)
    channels: frozenset[Channel] = frozenset({Channel.CALL})
    consent_exclusion_days: int | None = Field(default=None, ge=1)
    timezone: str = "customer"

    def target(self) -> ObjectKind:
        return "contact"

    def describe(self) -> str:
        return f"no call within {self.days} days after a conversation per ({', '.join(self.key)})"


class OptOutHonoured(_Check):
    """PROHIBITION: no message on a channel (or address) once an opt-out is older than the grace period."""

    kind: ClassVar[RuleKind] = RuleKind.PROHIBITION
    check: Literal["opt-out"]
    channels: frozenset[Channel] = Field(min_length=1)
    grace_days: int = Field(default=0, ge=0)
    grace_business_days: int | None = Field(default=None, ge=1)
    calendar: str | None = None

    @model_validator(mode="after")
    def _calendar_for_business_days(self) -> OptOutHonoured:
        if self.grace_business_days is not None and self.calendar is None:
            raise ValueError("`grace_business_days` needs `calendar` (the holiday country, e.g. US)")
        return self

    def target(self) -> ObjectKind:
        return "contact"

    def describe(self) -> str:
        grace = (
            f"{self.grace_business_days} business days"
            if self.grace_business_days is not None
            else f"{self.grace_days} days"
        )
        return f"opt-outs honoured within {grace}"


class RequiredContent(_Check):
    """CONTENT: a notice of these types on these channels carries every listed item."""

    kind: ClassVar[RuleKind] = RuleKind.CONTENT
    check: Literal["required-content"]
    notice_types: frozenset[NoticeType] = frozenset()
    channels: frozenset[Channel] = frozenset()
    items: frozenset[ContentItem] = Field(min_length=1)

    def target(self) -> ObjectKind:
        return "notice"

    def describe(self) -> str:
        return "notice carries " + ", ".join(sorted(i.value for i in self.items))


class Prohibition(_Check):
    """PROHIBITION: an object whose facts match ``when`` (and no ``unless``) breaks the rule."""

    kind: ClassVar[RuleKind] = RuleKind.PROHIBITION
    check: Literal["prohibition"]
    object: ObjectKind
    act: str = Field(min_length=1, description="the forbidden act in a few words")

    @model_validator(mode="after")
    def _has_condition(self) -> Prohibition:
        if not self.when:
            raise ValueError("a prohibition needs `when` conditions naming the forbidden facts")
        return self

    def target(self) -> ObjectKind:
        return self.object

    def describe(self) -> str:
        return f"no {self.act}"


class EvidenceRequired(_Check):
    """PROCESS: the plan holds this evidence (a policy, an assessment, a record), before ``before`` if given."""

    kind: ClassVar[RuleKind] = RuleKind.PROCESS
    check: Literal["evidence"]
    evidence: frozenset[Evidence] = Field(min_length=1)
    before: PlanAction | None = None

    def target(self) -> ObjectKind:
        return "plan"

    def describe(self) -> str:
        items = ", ".join(sorted(e.value for e in self.evidence))
        return f"evidence {items}" + (f" before {self.before.value}" if self.before else "")


class RetentionFloor(_Check):
    """RETAIN: keep a data category at least this long after its anchor event (``delete_after``: and no longer)."""

    kind: ClassVar[RuleKind] = RuleKind.RETENTION
    check: Literal["retention"]
    category: DataCategory
    years: int = Field(default=0, ge=0)
    months: int = Field(default=0, ge=0)
    counted_from: RetentionAnchor = RetentionAnchor.RELATIONSHIP_END
    delete_after: bool = False

    @property
    def total_months(self) -> int:
        return self.years * 12 + self.months

    def target(self) -> ObjectKind:
        return "plan"

    def describe(self) -> str:
        period = f"{self.years} years" if not self.months else f"{self.total_months} months"
        return f"keep {self.category.value} at least {period} after {self.counted_from.value}"


Check = Annotated[
    NoticeTiming
    | RateCap
    | SettlementCompensationCap
    | SettlementInterest
    | RateDisclosure
    | DateOrder
    | ValueBound
    | ContactWindow
    | ContactFrequency
    | ContactCooloff
    | OptOutHonoured
    | RequiredContent
    | Prohibition
    | EvidenceRequired
    | RetentionFloor,
    Field(discriminator="check"),
]


def _enum_of(annotation: Any) -> type[Enum] | None:
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _enum_of(arg)
            if found is not None:
                return found
    return None


def validate_conditions(rule_id: str, check: _Check) -> None:
    """Every ``when``/``unless`` field exists on the facts of the check's object, with an allowed value."""
    model = FACTS_BY_OBJECT[check.target()]
    for label, conditions in (("when", check.when), ("unless", check.unless)):
        for name, expected in conditions.items():
            field = model.model_fields.get(name)
            if field is None:
                allowed = ", ".join(sorted(model.model_fields))
                raise ValueError(
                    f"{rule_id}: `{label}.{name}` is not a fact of a {check.target()}; expected one of {allowed}"
                )
            enum = _enum_of(field.annotation)
            if enum is None:
                continue
            values = expected if isinstance(expected, tuple) else (expected,)
            allowed_values = {m.value for m in enum}
            for value in values:
                if value not in allowed_values:
                    raise ValueError(
                        f"{rule_id}: `{label}.{name}` value {value!r} is not allowed; "
                        f"expected one of {', '.join(sorted(allowed_values))}"
                    )
    if isinstance(check, DateOrder):
        for name in (check.earlier, check.later):
            if name not in model.model_fields:
                raise ValueError(f"{rule_id}: `{name}` is not a date of an offer")
    if isinstance(check, ValueBound) and check.field not in model.model_fields:
        raise ValueError(f"{rule_id}: `{check.field}` is not a fact of a {check.object}")


def conditions_match(check: _Check, facts: Any) -> bool:
    """True when every ``when`` condition holds and no ``unless`` condition does (each is an exemption)."""
    if not check.when and not check.unless:
        return True
    for name, expected in check.when.items():
        actual = getattr(facts, name)  # the facts' enums are StrEnums: equal to their values
        if isinstance(expected, tuple):
            if actual not in expected:
                return False
        elif actual != expected:
            return False
    for name, expected in check.unless.items():
        actual = getattr(facts, name)  # the facts' enums are StrEnums: equal to their values
        if (actual in expected) if isinstance(expected, tuple) else (actual == expected):
            return False
    return True
