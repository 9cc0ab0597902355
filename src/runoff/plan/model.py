"""The exit plan as data (退出方案): a YAML file validated into pydantic models, with one clear error per mistake.

A plan names the lender (a :class:`~runoff.compliance.profile.LenderProfile`: jurisdictions, lender and
collector types, which select the rules that bind it), a timeline of phases (stop new customers, stop new
draws, announcement 公告, individual notices, option window, reminders, final due date, hand-over to
collections, charge-off, book sale), optional waves by segment (分阶段关停), segments written as conditions
over account features (first match wins), the option menu (提前结清 early settlement, 展期 extension,
债务重组 restructuring, hardship holiday), the default action when a customer does nothing (the original
schedule continues: no acceleration without default), the communication schedule (channels, languages,
templates, reminders) and the assumptions offers are valued with (take-up, PD, LGD, affordability).

The model parses everything once at the edge: conditions become :class:`SegmentExpression` trees, dates
become :class:`DateSpec`; :meth:`Plan.wave_timelines` and :meth:`Plan.communication_schedule` give the
resolved dates the notice sender and the pilot build on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import partial
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from runoff.calendar import add_months
from runoff.compliance.facts import Channel, Evidence, NoticeType, OptionKind, ProductClass, Region
from runoff.compliance.profile import LenderProfile
from runoff.errors import InvalidInput, describe_validation_error, field_of_validation_error
from runoff.plan.expressions import SegmentExpression, parse_expression
from runoff.plan.features import BUCKET_VALUES
from runoff.plan.timeline import (
    REMINDERS,
    START,
    WAVE_PHASES,
    DateSpec,
    Phase,
    check_order,
    parse_date_spec,
    resolve_phases,
)
from runoff.servicing.product import Method, parse_method

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


class PlanInvalid(InvalidInput):
    """A plan file does not validate."""

    code = "plan.invalid"


def _expression(value: Any) -> SegmentExpression:
    if isinstance(value, SegmentExpression):
        return value
    return parse_expression(value)


def _date_spec(value: Any) -> DateSpec:
    return value if isinstance(value, DateSpec) else parse_date_spec(value)


Condition = Annotated[
    SegmentExpression,
    BeforeValidator(_expression),
    PlainSerializer(lambda e: e.text, return_type=str),
]
When = Annotated[DateSpec, BeforeValidator(_date_spec), PlainSerializer(lambda d: d.text, return_type=str)]
Fraction = Annotated[Decimal, Field(ge=0, le=1)]
MethodName = Annotated[Method, BeforeValidator(parse_method)]

OPTION_KIND_ALIASES: dict[str, str] = {
    "early-settlement": "early-settlement",
    "early_settlement": "early-settlement",
    "settlement": "early-settlement",
    "提前结清": "early-settlement",
    "extension": "extension",
    "展期": "extension",
    "restructuring": "restructuring",
    "restructure": "restructuring",
    "债务重组": "restructuring",
    "hardship-holiday": "hardship-holiday",
    "hardship_holiday": "hardship-holiday",
    "holiday": "hardship-holiday",
    "payment-holiday": "hardship-holiday",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- options --------------------------------------------------------------------------------------------------------


class _Option(_Model):
    """What every option has: an id segments refer to, a label for notices and its valuation assumptions."""

    id: str = Field(pattern=_ID)
    label: str = ""
    take_up: Fraction = Field(default=Decimal(0), description="share of offered accounts expected to accept")
    pd_multiplier: Decimal = Field(
        default=Decimal(1), ge=0, le=10, description="PD of an accepting account, relative to its PD today"
    )
    option_kind: ClassVar[OptionKind]


class EarlySettlementOption(_Option):
    """提前结清: pay everything off now; optionally a discount, penalties waived, the settlement fee waived."""

    kind: Literal["early-settlement"]
    option_kind: ClassVar[OptionKind] = OptionKind.EARLY_SETTLEMENT
    discount_rate: Fraction = Field(default=Decimal(0), description="share of the principal repaid early forgiven")
    waive_penalties: bool = False
    waive_settlement_fee: bool = False


class ExtensionOption(_Option):
    """展期: ``extra_months`` more installments for the outstanding principal, at the loan's rate and method."""

    kind: Literal["extension"]
    option_kind: ClassVar[OptionKind] = OptionKind.EXTENSION
    extra_months: int = Field(ge=1, le=60)


class RestructuringOption(_Option):
    """债务重组: a new schedule from the offer date for the outstanding debt.

    ``annual_rate`` on a flat-fee loan (and ``fee_rate`` on an interest loan) changes its method to
    equal-installment (flat-fee) unless ``method`` says otherwise; left out, rate and method stay the loan's.
    """

    kind: Literal["restructuring"]
    option_kind: ClassVar[OptionKind] = OptionKind.RESTRUCTURING
    term_months: int = Field(ge=1, le=120)
    annual_rate: Decimal | None = Field(default=None, ge=0, le=1)
    fee_rate: Decimal | None = Field(default=None, ge=0, le=Decimal("0.1"))
    method: MethodName | None = None
    haircut: Decimal = Field(default=Decimal(0), ge=0, lt=1, description="share of outstanding principal forgiven")
    grace_months: int = Field(default=0, ge=0, le=24)
    waive_penalties: bool = False
    capitalize_overdue: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> RestructuringOption:
        if self.grace_months >= self.term_months:
            raise ValueError(
                f"`grace_months`: {self.grace_months} is not allowed with `term_months` {self.term_months}; "
                "expected fewer grace months than the term"
            )
        if self.annual_rate is not None and self.fee_rate is not None:
            raise ValueError("`annual_rate`: give either `annual_rate` or `fee_rate`, not both")
        if self.method is Method.FLAT_FEE and self.annual_rate is not None:
            raise ValueError("`annual_rate`: not allowed with method flat-fee, which prices by `fee_rate`")
        if self.method is not None and self.method is not Method.FLAT_FEE and self.fee_rate is not None:
            raise ValueError(f"`fee_rate`: not allowed with method {self.method.value}, which prices by `annual_rate`")
        return self


class HardshipHolidayOption(_Option):
    """A hardship (payment) holiday: ``months`` of interest (and fee) only, then the rest re-amortised.

    Priced as a restructuring over the installments left plus ``months``, the first ``months`` of them a
    grace period of the product's kind (interest-only unless the product capitalises).
    """

    kind: Literal["hardship-holiday"]
    option_kind: ClassVar[OptionKind] = OptionKind.HARDSHIP_HOLIDAY
    months: int = Field(ge=1, le=12)
    waive_penalties: bool = False
    capitalize_overdue: bool = False


Option = Annotated[
    EarlySettlementOption | ExtensionOption | RestructuringOption | HardshipHolidayOption,
    Field(discriminator="kind"),
]


# --- segments and waves ---------------------------------------------------------------------------------------------


class DefaultAction(StrEnum):
    """What happens to an account whose customer takes no option."""

    ORIGINAL_SCHEDULE = "original-schedule"  # the loans run on as written (no acceleration without default)
    ACCELERATE = "accelerate"  # the whole balance falls due at the window's close: lawful only on default


class Segment(_Model):
    """Accounts matching ``when`` (first match wins; left out: every account not yet matched)."""

    id: str = Field(pattern=_ID)
    label: str = ""
    when: Condition = Field(default_factory=lambda: parse_expression(None))
    options: tuple[str, ...] = ()
    default_action: DefaultAction = DefaultAction.ORIGINAL_SCHEDULE
    take_up: dict[str, Fraction] = Field(default_factory=dict, description="per option, overrides the option's")

    @property
    def catch_all(self) -> bool:
        return self.when.matches_everything


class Wave(_Model):
    """A wave of a phased exit (分阶段关停): its segments and the phases it moves.

    ``shift`` (``+30d``, ``+1m``) moves every per-wave phase it does not set; ``timeline`` sets phases for
    the wave (references name the wave's phases, or the plan's for the phase being set).
    """

    id: str = Field(pattern=_ID)
    segments: tuple[str, ...] = Field(min_length=1)
    shift: str | None = Field(default=None, pattern=r"^\s*[+-]\s*\d+\s*[dwm]\s*$")
    timeline: dict[str, When] = Field(default_factory=dict)
    reminders: tuple[When, ...] | None = None

    @field_validator("timeline")
    @classmethod
    def _wave_phases(cls, value: dict[str, DateSpec]) -> dict[str, DateSpec]:
        allowed = sorted(p.value for p in WAVE_PHASES)
        for name in value:
            if name not in allowed:
                raise ValueError(f"`{name}` is not a phase a wave sets; expected one of {', '.join(allowed)}")
        return value


class Timeline(_Model):
    """The plan-wide phases; ``start`` is day 0 that offsets may refer to."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    start: date
    stop_new_customers: When | None = None
    announcement: When | None = None
    individual_notices: When | None = None
    stop_new_draws: When | None = None
    option_window_opens: When
    option_window_closes: When
    final_due_date: When | None = None
    repayment_channels_close: When | None = None
    collections_handover: When | None = None
    charge_off: When | None = None
    book_sale: When | None = None
    reminders: tuple[When, ...] = ()

    def specs(self) -> dict[str, DateSpec]:
        out = {START: DateSpec(self.start.isoformat(), fixed=self.start)}
        for phase in Phase:
            spec = getattr(self, phase.value)
            if spec is not None:
                out[phase.value] = spec
        return out


# --- communications -------------------------------------------------------------------------------------------------


class Template(_Model):
    """A notice template: what it is about, the channels and languages it exists in, where the text lives.

    ``path`` is a reference the notice renderer resolves (e.g. ``notices/closure-letter``); the plan
    never reads it.
    """

    id: str = Field(pattern=_ID)
    notice_type: NoticeType
    channels: tuple[Channel, ...] = Field(min_length=1)
    languages: tuple[str, ...] = ()
    path: str = Field(min_length=1)


class Send(_Model):
    """One line of the communication schedule: a template sent on a channel at a phase to some segments.

    ``at`` is a phase name (per-wave phases resolve per wave), ``reminders`` (every reminder date of the
    wave) or a date spec such as ``individual_notices+7d``. ``segments`` left out: every segment.
    """

    template: str
    channel: Channel
    at: str
    segments: tuple[str, ...] | None = None


class Communications(_Model):
    """Channels and languages the lender uses, its templates, and what is sent when."""

    channels: tuple[Channel, ...] = (Channel.ANNOUNCEMENT, Channel.LETTER, Channel.SMS, Channel.IN_APP)
    languages: tuple[str, ...] = ("zh-CN",)
    templates: tuple[Template, ...] = ()
    sends: tuple[Send, ...] = ()


# --- assumptions ----------------------------------------------------------------------------------------------------


class Assumptions(_Model):
    """How offers are valued: PD when no scores exist, LGD, the lender's discount rate, affordability limits."""

    pd_by_bucket: dict[str, Fraction] | None = Field(
        default=None, description="12-month PD per bucket, used when the workspace has no scores table"
    )
    pd_bands: tuple[Decimal, Decimal, Decimal, Decimal] = (
        Decimal("0.02"),
        Decimal("0.05"),
        Decimal("0.10"),
        Decimal("0.20"),
    )
    lgd: Fraction = Decimal("0.85")
    discount_rate: Decimal = Field(default=Decimal("0.05"), ge=0, le=1, description="annual, for present values")
    default_dpd: int = Field(default=90, ge=1, le=720, description="days past due from which an account is in default")
    max_payment_to_income: Decimal = Field(default=Decimal("0.5"), gt=0, le=5)
    stretched_payment_to_income: Decimal = Field(default=Decimal("0.3"), gt=0, le=5)
    max_settlement_to_income: Decimal = Field(
        default=Decimal("1.0"), gt=0, le=60, description="a settlement is affordable up to this many months of income"
    )

    @field_validator("pd_by_bucket")
    @classmethod
    def _buckets(cls, value: dict[str, Decimal] | None) -> dict[str, Decimal] | None:
        if value is None:
            return value
        unknown = sorted(set(value) - set(BUCKET_VALUES))
        if unknown:
            raise ValueError(f"`{unknown[0]}` is not a bucket; expected {', '.join(BUCKET_VALUES)}")
        missing = [b for b in BUCKET_VALUES if b not in value]
        if missing:
            raise ValueError(
                f"missing bucket(s) {', '.join(missing)}; expected a PD for each of {', '.join(BUCKET_VALUES)}"
            )
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Assumptions:
        if list(self.pd_bands) != sorted(self.pd_bands) or any(not 0 < b < 1 for b in self.pd_bands):
            raise ValueError(
                "`pd_bands`: expected four increasing cut points between 0 and 1, e.g. [0.02, 0.05, 0.1, 0.2]"
            )
        if self.stretched_payment_to_income > self.max_payment_to_income:
            raise ValueError(
                "`stretched_payment_to_income`: above `max_payment_to_income`; expected the stretched band to start lower"
            )
        return self


# --- the plan -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WaveTimeline:
    """A wave's resolved dates: the plan's phases with the wave's own on top, and its reminder dates."""

    wave: str
    segments: tuple[str, ...]
    dates: dict[str, date]
    reminders: tuple[date, ...]

    def on(self, phase: Phase) -> date | None:
        return self.dates.get(phase.value)


@dataclass(frozen=True, slots=True)
class ScheduledSend:
    """One send of the communication schedule, resolved: which template, on which channel, when, to whom."""

    template: str
    notice_type: NoticeType
    channel: Channel
    languages: tuple[str, ...]
    on: date
    wave: str
    segments: tuple[str, ...]
    phase: str | None  # the phase (or ``reminders``) it was scheduled at, None for an explicit date


class Plan(_Model):
    """An exit plan. ``segments`` are tried in order: each account lands in the first whose condition it meets."""

    id: str = Field(pattern=_ID)
    name: str = ""
    lender: LenderProfile
    region: Region = Field(default="CN", description="customers' region when the book does not say")
    product_class: ProductClass = ProductClass.INSTALLMENT_LOAN
    timeline: Timeline
    waves: tuple[Wave, ...] = ()
    segments: tuple[Segment, ...] = Field(min_length=1)
    options: tuple[Option, ...] = ()
    communications: Communications = Communications()
    assumptions: Assumptions = Assumptions()
    evidence: frozenset[Evidence] = frozenset()
    closure_fee: Decimal = Field(default=Decimal(0), ge=0, description="a fee charged for closing; should be 0")

    @field_serializer("evidence")
    def _evidence_in_order(self, evidence: frozenset[Evidence]) -> list[str]:
        # a set has no order: written plans (offers' plan.json) must be byte-stable across processes
        return sorted(e.value for e in evidence)

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        """Option kinds by any of their names (提前结清, restructure, holiday ...)."""
        if isinstance(data, dict) and isinstance(data.get("options"), list):
            options = []
            for item in data["options"]:
                if isinstance(item, dict) and isinstance(item.get("kind"), str):
                    kind = item["kind"].strip().lower()
                    if kind not in OPTION_KIND_ALIASES:
                        allowed = ", ".join(sorted({*OPTION_KIND_ALIASES.values()}))
                        raise ValueError(
                            f"`options`: option {item.get('id', '?')!r} has kind {item['kind']!r}; expected one of "
                            f"{allowed} (or 提前结清, 展期, 债务重组)"
                        )
                    item = {**item, "kind": OPTION_KIND_ALIASES[kind]}
                options.append(item)
            data = {**data, "options": options}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        self._check_segments()
        self._check_waves()
        self._check_communications()
        self.wave_timelines()  # resolves and orders every date, or says which one is wrong
        return self

    def _check_segments(self) -> None:
        ids = [s.id for s in self.segments]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"`segments`: id {dup[0]!r} is used twice; expected each segment id once")
        option_ids = [o.id for o in self.options]
        dup = sorted({i for i in option_ids if option_ids.count(i) > 1})
        if dup:
            raise ValueError(f"`options`: id {dup[0]!r} is used twice; expected each option id once")
        known = set(option_ids)
        for k, seg in enumerate(self.segments):
            for name in [*seg.options, *seg.take_up]:
                if name not in known:
                    allowed = ", ".join(option_ids) or "(no options are defined)"
                    raise ValueError(
                        f"`segments.{k}.options`: segment {seg.id!r} offers {name!r}, which is not an option of the "
                        f"plan; expected one of {allowed}"
                    )
            for name in seg.take_up:
                if name not in seg.options:
                    raise ValueError(
                        f"`segments.{k}.take_up`: {name!r} is not offered to segment {seg.id!r}; "
                        f"expected one of {', '.join(seg.options) or '(none offered)'}"
                    )
            total = sum((self.take_up(seg, o) for o in seg.options), Decimal(0))
            if total > 1:
                raise ValueError(
                    f"`segments.{k}.take_up`: take-up of segment {seg.id!r} adds up to {total}; expected at most 1 "
                    "(the rest keep the original schedule)"
                )
            if seg.catch_all and k != len(self.segments) - 1:
                raise ValueError(
                    f"`segments.{k}.when`: segment {seg.id!r} matches every account, so the segments after it "
                    "would stay empty; expected the catch-all segment last"
                )

    def _check_waves(self) -> None:
        if not self.waves:
            return
        seg_ids = [s.id for s in self.segments]
        seen: dict[str, str] = {}
        for k, wave in enumerate(self.waves):
            for sid in wave.segments:
                if sid not in seg_ids:
                    raise ValueError(
                        f"`waves.{k}.segments`: {sid!r} is not a segment of the plan; expected one of {', '.join(seg_ids)}"
                    )
                if sid in seen:
                    raise ValueError(
                        f"`waves.{k}.segments`: segment {sid!r} is in waves {seen[sid]!r} and {wave.id!r}; "
                        "expected each segment in one wave"
                    )
                seen[sid] = wave.id
        missing = [s for s in seg_ids if s not in seen]
        if missing:
            raise ValueError(f"`waves`: segment {missing[0]!r} is in no wave; expected every segment in one wave")

    def _check_communications(self) -> None:
        comms = self.communications
        templates = {t.id: t for t in comms.templates}
        seg_ids = {s.id for s in self.segments}
        for k, t in enumerate(comms.templates):
            bad = [c for c in t.channels if c not in comms.channels]
            if bad:
                raise ValueError(
                    f"`communications.templates.{k}.channels`: {bad[0].value!r} is not a channel of the plan; "
                    f"expected one of {', '.join(c.value for c in comms.channels)}"
                )
            langs = [lang for lang in t.languages if lang not in comms.languages]
            if langs:
                raise ValueError(
                    f"`communications.templates.{k}.languages`: {langs[0]!r} is not a language of the plan; "
                    f"expected one of {', '.join(comms.languages)}"
                )
        for k, send in enumerate(comms.sends):
            template = templates.get(send.template)
            if template is None:
                raise ValueError(
                    f"`communications.sends.{k}.template`: {send.template!r} is not a template; expected one of "
                    f"{', '.join(templates) or '(no templates are defined)'}"
                )
            if send.channel not in template.channels:
                raise ValueError(
                    f"`communications.sends.{k}.channel`: template {template.id!r} has no {send.channel.value} "
                    f"version; expected one of {', '.join(c.value for c in template.channels)}"
                )
            for sid in send.segments or ():
                if sid not in seg_ids:
                    raise ValueError(
                        f"`communications.sends.{k}.segments`: {sid!r} is not a segment; expected one of "
                        f"{', '.join(sorted(seg_ids))}"
                    )
            if send.at != REMINDERS and send.at not in {p.value for p in Phase} and send.at != START:
                try:
                    parse_date_spec(send.at)
                except ValueError as exc:
                    raise ValueError(f"`communications.sends.{k}.at`: {exc}") from None

    # --- derived views ------------------------------------------------------------------------------------------

    def option(
        self, option_id: str
    ) -> EarlySettlementOption | ExtensionOption | RestructuringOption | HardshipHolidayOption:
        for o in self.options:
            if o.id == option_id:
                return o
        raise PlanInvalid(
            f"`option`: {option_id!r} is not an option of plan {self.id}; expected one of "
            f"{', '.join(o.id for o in self.options)}",
            field="option",
        )

    def segment(self, segment_id: str) -> Segment:
        for s in self.segments:
            if s.id == segment_id:
                return s
        raise PlanInvalid(
            f"`segment`: {segment_id!r} is not a segment of plan {self.id}; expected one of "
            f"{', '.join(s.id for s in self.segments)}",
            field="segment",
        )

    def take_up(self, segment: Segment, option_id: str) -> Decimal:
        """The share of the segment's accounts expected to take ``option_id``."""
        if option_id in segment.take_up:
            return segment.take_up[option_id]
        return self.option(option_id).take_up

    def plan_dates(self) -> dict[str, date]:
        """The plan-wide phases resolved to dates (``start`` included)."""
        dates = resolve_phases(self.timeline.specs(), where="timeline")
        check_order(dates, where="timeline")
        return dates

    def wave_timelines(self) -> tuple[WaveTimeline, ...]:
        """Each wave's dates (the plan's, moved by the wave's shift and overridden by its own), checked for order.

        A plan without waves has one wave, ``all``, holding every segment.
        """
        plan = self.plan_dates()
        reminders = tuple(r.resolve(partial(_lookup, plan, "timeline.reminders")) for r in self.timeline.reminders)
        _check_reminders(plan, reminders, where="timeline.reminders")
        if not self.waves:
            return (WaveTimeline("all", tuple(s.id for s in self.segments), plan, tuple(sorted(reminders))),)
        out = []
        for k, wave in enumerate(self.waves):
            where = f"waves.{k}.timeline"
            base = dict(plan)
            shift = parse_date_spec(f"start{wave.shift.replace(' ', '')}") if wave.shift else None
            if shift is not None:
                for phase in WAVE_PHASES:
                    if phase.value in base and phase.value not in wave.timeline:
                        base[phase.value] = _shifted(base[phase.value], shift)
            own = resolve_phases(wave.timeline, outer=base, where=where)
            dates = {**base, **own}
            check_order(dates, where=where)
            if wave.reminders is not None:
                wave_reminders = tuple(
                    r.resolve(partial(_lookup, dates, f"waves.{k}.reminders")) for r in wave.reminders
                )
            elif shift is not None:
                wave_reminders = tuple(_shifted(r, shift) for r in reminders)
            else:
                wave_reminders = reminders
            _check_reminders(dates, wave_reminders, where=f"waves.{k}.reminders")
            out.append(WaveTimeline(wave.id, wave.segments, dates, tuple(sorted(wave_reminders))))
        return tuple(out)

    def wave_of(self, segment_id: str) -> WaveTimeline:
        for wave in self.wave_timelines():
            if segment_id in wave.segments:
                return wave
        raise PlanInvalid(f"`segment`: {segment_id!r} is in no wave of plan {self.id}", field="segment")

    def communication_schedule(self) -> tuple[ScheduledSend, ...]:
        """Every send of the plan with its date, in date order (what the notice sender works from).

        A send at a per-wave phase (individual notices, the option window, reminders ...) goes out once per
        wave on that wave's date; a send at a plan-wide phase (the announcement 公告) once, to every segment.
        """
        templates = {t.id: t for t in self.communications.templates}
        waves = self.wave_timelines()
        plan_wide = {p.value for p in Phase} - {p.value for p in WAVE_PHASES}
        out: list[ScheduledSend] = []
        for send in self.communications.sends:
            template = templates[send.template]
            languages = tuple(template.languages or self.communications.languages)
            spec = None if send.at in {REMINDERS, *(p.value for p in Phase)} else parse_date_spec(send.at)
            wide = send.at in plan_wide or (spec is not None and (spec.fixed is not None or spec.ref in plan_wide))
            groups = (
                [("all", tuple(s for w in waves for s in w.segments), waves[0])]
                if wide
                else [(w.wave, w.segments, w) for w in waves]
            )
            for wave_id, wave_segments, wave in groups:
                segments = tuple(s for s in wave_segments if send.segments is None or s in send.segments)
                if not segments:
                    continue
                if send.at == REMINDERS:
                    days: Sequence[tuple[date, str | None]] = [(d, REMINDERS) for d in wave.reminders]
                elif spec is None:
                    days = [(wave.dates[send.at], send.at)] if send.at in wave.dates else []
                elif spec.fixed is None and spec.ref not in wave.dates:
                    days = []  # refers to a phase the plan does not date
                else:
                    days = [(spec.resolve(partial(_lookup, wave.dates, "communications.sends")), None)]
                for on, phase in days:
                    out.append(
                        ScheduledSend(
                            template=template.id,
                            notice_type=template.notice_type,
                            channel=send.channel,
                            languages=languages,
                            on=on,
                            wave=wave_id,
                            segments=segments,
                            phase=phase,
                        )
                    )
        return tuple(sorted(out, key=lambda s: (s.on, s.wave, s.template, s.channel.value)))


def _shifted(day: date, shift: DateSpec) -> date:
    return add_months(day, shift.months) + timedelta(days=shift.days)


def _lookup(dates: dict[str, date], where: str, ref: str) -> date:
    if ref not in dates:
        raise ValueError(f"`{where}` refers to `{ref}`, which is not dated in this plan")
    return dates[ref]


def _check_reminders(dates: dict[str, date], reminders: Sequence[date], *, where: str) -> None:
    first = dates.get(Phase.INDIVIDUAL_NOTICES.value) or dates.get(Phase.ANNOUNCEMENT.value)
    last = dates.get(Phase.OPTION_WINDOW_CLOSES.value)
    for day in reminders:
        if first is not None and day < first:
            raise ValueError(
                f"`{where}`: {day.isoformat()} is before the first notice {first.isoformat()}; "
                "expected reminders after customers are told"
            )
        if last is not None and day > last:
            raise ValueError(
                f"`{where}`: {day.isoformat()} is after the option window closes {last.isoformat()}; "
                "expected reminders while customers can still choose"
            )


def parse_plan(data: Any, *, source: str = "plan") -> Plan:
    """Validate a mapping (from YAML) as a :class:`Plan`; one clear error naming the field and what is allowed."""
    if not isinstance(data, dict):
        raise PlanInvalid(f"{source}: expected a mapping with `id`, `lender`, `timeline` and `segments`")
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        raise PlanInvalid(_first_problem(exc, source), field=field_of_validation_error(exc)) from None


def _first_problem(exc: ValidationError, source: str) -> str:
    """One clear sentence: the first problem (a discriminated union reports one line per kind otherwise)."""
    errors = exc.errors()
    first = errors[0]
    loc = ".".join(str(p) for p in first.get("loc", ()))
    msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if first.get("type") == "union_tag_invalid" or first.get("type") == "union_tag_not_found":
        allowed = "early-settlement, extension, restructuring, hardship-holiday"
        return f"{source}: `{loc}`: an option needs `kind`, one of {allowed}"
    if len(errors) == 1 or not loc:
        return describe_validation_error(exc, source=source) if len(errors) == 1 else f"{source}: {msg}"
    got = first.get("input")
    got_txt = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
    return f"{source}: `{loc}`: {msg}{got_txt}"
