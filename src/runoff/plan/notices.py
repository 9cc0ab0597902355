"""Customer notices (用户告知书) as data: what one customer is told, built from the loan's position on the send date.

:func:`notice_content` takes the loan's servicing position as it stands on ``as_of`` (the send date), the plan
and the lender's contact details, and returns a :class:`NoticeContent`: what changes and when (the plan's dated
phases for the customer's wave), each option of the customer's segment priced by the servicing quotes with its
annualised rate (APR by IRR, 年化利率) and total cost, that the existing installments continue unchanged when the
customer does nothing (no acceleration without default), how to repay, whom to complain to (the lender and the
regulator) and how to opt out of electronic messages. Nothing here reads the ledger or the clock: the caller
passes a fresh position, so the figures are those of the send date, never of an earlier offers run.

:func:`announcement_content` is the public announcement (公告): plan-level, no personal figures, the rate basis
of every option. :mod:`runoff.plan.notice_text` renders both through the Jinja2 templates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from runoff.compliance.facts import Channel, NoticeType, OptionKind, ReferenceEvent
from runoff.compliance.taxonomy import Jurisdiction
from runoff.errors import InvalidInput, RunoffError, describe_validation_error, field_of_validation_error
from runoff.money import ZERO
from runoff.plan.features import FEATURES, FeatureKind
from runoff.plan.model import (
    DefaultAction,
    EarlySettlementOption,
    ExtensionOption,
    HardshipHolidayOption,
    Plan,
    RestructuringOption,
    Segment,
    WaveTimeline,
)
from runoff.plan.quoting import quote_option
from runoff.plan.timeline import Phase
from runoff.servicing.apr import Apr, apr_of_cash_flows
from runoff.servicing.delinquency import bucket_of, days_past_due
from runoff.servicing.position import LoanPosition
from runoff.servicing.product import Method
from runoff.servicing.quotes import remaining_payable


class NoticeInvalid(InvalidInput):
    """A notice cannot be built: an unknown language or channel, a loan in no segment, a bad contacts file."""

    code = "notice.invalid"


# --- languages and channels -----------------------------------------------------------------------------------------


class Language(StrEnum):
    """The languages notices are written in; each has a template folder and a Babel locale."""

    ZH_CN = "zh-CN"
    EN = "en"

    @property
    def locale(self) -> str:
        """The Babel locale that formats amounts, rates and dates (zh_CN, en_US)."""
        return "zh_CN" if self is Language.ZH_CN else "en_US"


LANGUAGE_ALIASES: dict[str, Language] = {
    "zh-cn": Language.ZH_CN,
    "zh_cn": Language.ZH_CN,
    "zh": Language.ZH_CN,
    "cn": Language.ZH_CN,
    "chinese": Language.ZH_CN,
    "中文": Language.ZH_CN,
    "en": Language.EN,
    "en-us": Language.EN,
    "en_us": Language.EN,
    "en-gb": Language.EN,
    "english": Language.EN,
}

NOTICE_CHANNELS: tuple[Channel, ...] = (Channel.LETTER, Channel.SMS, Channel.EMAIL, Channel.IN_APP)
"""The channels an individual notice is rendered for; the public announcement has its own page."""


def parse_language(text: str | Language) -> Language:
    """``zh-CN`` / ``zh`` / ``中文`` → zh-CN, ``en`` / ``en-US`` → en; anything else is one clear error."""
    if isinstance(text, Language):
        return text
    found = LANGUAGE_ALIASES.get(str(text).strip().lower())
    if found is None:
        raise NoticeInvalid(f"`language`: {text!r} is not a notice language; expected zh-CN or en", field="language")
    return found


def parse_channel(text: str | Channel) -> Channel:
    """One of letter, sms, email, in-app (``inapp`` and ``app`` accepted for in-app)."""
    value = text.value if isinstance(text, Channel) else str(text).strip().lower()
    value = {"inapp": "in-app", "in_app": "in-app", "app": "in-app", "mail": "letter", "e-mail": "email"}.get(
        value, value
    )
    for channel in NOTICE_CHANNELS:
        if channel.value == value:
            return channel
    allowed = ", ".join(c.value for c in NOTICE_CHANNELS)
    raise NoticeInvalid(f"`channel`: {text!r} is not a notice channel; expected one of {allowed}", field="channel")


# --- the lender's contact details -----------------------------------------------------------------------------------


class LocalText(BaseModel):
    """A text in both notice languages; a plain string in a file stands for both."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    zh_cn: str = Field(alias="zh-CN", min_length=1)
    en: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _one_text(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"zh-CN": data, "en": data}
        return data

    def get(self, language: Language) -> str:
        return self.zh_cn if language is Language.ZH_CN else self.en


def _text(zh: str, en: str) -> LocalText:
    return LocalText.model_validate({"zh-CN": zh, "en": en})


class RepaymentChannel(BaseModel):
    """A way to keep paying (还款渠道) that stays open until the last balance is cleared."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: LocalText
    detail: LocalText | None = None


class NoticeContacts(BaseModel):
    """Who the customer can reach: service and complaint lines, the regulator, repayment channels, opt-out words.

    A lender keeps these in a YAML file (``--contacts``); :func:`default_contacts` gives placeholders per
    jurisdiction with the regulators' public lines (NFRA 12378 in China, the CFPB in the US).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    lender_name: LocalText
    service_hotline: str = Field(min_length=1)
    website: str = Field(min_length=1)
    complaint_phone: str = Field(min_length=1)
    complaint_email: str | None = None
    complaint_address: LocalText | None = None
    complaint_response_days: int = Field(default=15, ge=1, le=90, description="we answer a complaint within")
    complaint_window_days: int | None = Field(
        default=60, ge=1, le=3650, description="the customer may object or complain within this many days"
    )
    regulator_name: LocalText
    regulator_hotline: str | None = None
    regulator_website: str | None = None
    repayment_channels: tuple[RepaymentChannel, ...] = ()
    opt_out_sms: LocalText = Field(default_factory=lambda: _text("回复TD退订", "Reply STOP to opt out"))
    opt_out_electronic: LocalText = Field(
        default_factory=lambda: _text(
            "如不希望继续接收此类电子消息，可点击“退订”或在App“消息设置”中关闭",
            "To stop these messages, use the unsubscribe link or turn them off under Message settings in the app",
        )
    )
    opt_out_on_all_electronic: bool = Field(
        default=True, description="put the opt-out text in every electronic message, not only where a rule asks"
    )


def default_contacts(plan: Plan) -> NoticeContacts:
    """Placeholder contacts for ``plan``'s lender with the regulator of its first jurisdiction.

    The service and complaint numbers are placeholders to replace with the lender's own (``--contacts``).
    """
    name = plan.lender.name
    jurisdiction = sorted(plan.lender.jurisdictions)[0]
    regulators = {
        Jurisdiction.CN: (_text("国家金融监督管理总局", "National Financial Regulatory Administration"), "12378", None),
        Jurisdiction.US: (
            _text("美国消费者金融保护局", "Consumer Financial Protection Bureau"),
            "(855) 411-2372",
            "https://www.consumerfinance.gov/complaint/",
        ),
    }
    regulator = regulators.get(
        jurisdiction, (_text("您所在国家的金融监管机构", "your national financial regulator"), None, None)
    )
    return NoticeContacts(
        lender_name=LocalText.model_validate(name),
        service_hotline="400-000-0000",
        website="https://www.example.com/notice",
        complaint_phone="400-000-0000",
        regulator_name=regulator[0],
        regulator_hotline=regulator[1],
        regulator_website=regulator[2],
        repayment_channels=(
            RepaymentChannel(
                name=_text("App“我的账单”页面还款", "In the app, under My bills"),
                detail=_text("支持银行卡、余额自动扣款", "bank card or account balance, or automatic debit"),
            ),
            RepaymentChannel(
                name=_text("银行转账至指定还款账户", "Bank transfer to the designated repayment account"),
                detail=_text("账户信息见App或致电客服", "account details in the app or from customer service"),
            ),
        ),
    )


def parse_contacts(data: Any, *, source: str = "contacts") -> NoticeContacts:
    """Validate a mapping (from YAML) as :class:`NoticeContacts`; one clear error naming the field."""
    if not isinstance(data, dict):
        raise NoticeInvalid(f"{source}: expected a mapping with `lender_name`, `service_hotline`, ...")
    try:
        return NoticeContacts.model_validate(data)
    except ValidationError as exc:
        raise NoticeInvalid(
            describe_validation_error(exc, source=source), field=field_of_validation_error(exc)
        ) from None


# --- the content model ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DatedChange:
    """One thing that changes for the customer and the day it happens (a phase of the plan)."""

    phase: str
    on: date


@dataclass(frozen=True, slots=True)
class OptionTerms:
    """One option as the customer sees it: what to pay now, the new schedule, the total cost and its APR by IRR.

    ``total_cost`` is everything paid from the send date under the option; ``saving`` is against carrying on
    under the current schedule. ``apr_nominal`` is period IRR × periods a year (the PBOC convention),
    ``apr_effective`` (1 + IRR)^k − 1; None when not defined (nothing left to prepay).
    """

    option_id: str
    kind: OptionKind
    label: str
    pay_now: Decimal
    total_cost: Decimal
    saving: Decimal
    apr_nominal: Decimal | None
    apr_effective: Decimal | None
    installments: int
    installment_amount: Decimal | None
    first_due: date | None
    maturity: date | None
    forgiven: Decimal
    waived: Decimal
    months: int | None = None  # extension months, holiday months, restructuring term
    annual_rate: Decimal | None = None  # a restructuring's stated rate


@dataclass(frozen=True, slots=True)
class LoanSummary:
    """The loan as it stands on the send date under its current schedule (what continues if nothing is chosen)."""

    loan_id: str
    product_id: str
    principal: Decimal
    outstanding_principal: Decimal
    remaining_payable: Decimal
    overdue: Decimal
    days_past_due: int
    installments_left: int
    next_due_date: date | None
    next_due_amount: Decimal
    maturity: date
    apr_nominal: Decimal | None
    apr_effective: Decimal | None
    penalty_daily_rate: Decimal
    upcoming: tuple[tuple[date, Decimal], ...]
    method: Method


@dataclass(frozen=True, slots=True)
class NoticeContent:
    """Everything a notice says, before language and channel: the figures are those of ``as_of``."""

    notice_id: str
    plan_id: str
    plan_name: str
    notice_type: NoticeType
    as_of: date
    customer_id: str | None
    customer_name: str | None
    region: str
    segment: str
    wave: str
    loan: LoanSummary | None
    changes: tuple[DatedChange, ...]
    options: tuple[OptionTerms, ...]
    unavailable: tuple[tuple[str, str], ...]  # (option id, why) for options the loan cannot take
    original_schedule_continues: bool
    window_opens: date
    window_closes: date
    effective_on: date
    contacts: NoticeContacts

    @property
    def apr_complete(self) -> bool:
        """Every figure that needs an annualised rate has one (the loan's own and each option's)."""
        loan_ok = self.loan is None or self.loan.apr_nominal is not None
        return loan_ok and all(o.apr_nominal is not None for o in self.options)

    @property
    def complaint_deadline(self) -> date | None:
        days = self.contacts.complaint_window_days
        return None if days is None else date.fromordinal(self.as_of.toordinal() + days)

    @property
    def references(self) -> dict[ReferenceEvent, date]:
        return {ReferenceEvent.EFFECTIVE: self.effective_on}


@dataclass(frozen=True, slots=True)
class AnnouncedOption:
    """An option as the public announcement describes it: its kind and the basis of its rate (no personal figures)."""

    option_id: str
    kind: OptionKind
    label: str
    segments: tuple[str, ...]
    months: int | None = None
    annual_rate: Decimal | None = None
    discount_rate: Decimal = ZERO
    haircut: Decimal = ZERO
    waive_penalties: bool = False
    waive_settlement_fee: bool = False


@dataclass(frozen=True, slots=True)
class WaveDates:
    """One wave of a phased exit as the announcement lists it: which customers and their dates."""

    wave: str
    segments: tuple[str, ...]
    segment_labels: tuple[str, ...]
    changes: tuple[DatedChange, ...]


@dataclass(frozen=True, slots=True)
class AnnouncementContent:
    """The public announcement (公告): plan-wide dates, waves, the option menu and the contacts."""

    notice_id: str
    plan_id: str
    plan_name: str
    as_of: date
    changes: tuple[DatedChange, ...]
    waves: tuple[WaveDates, ...]
    options: tuple[AnnouncedOption, ...]
    original_schedule_continues: bool
    contacts: NoticeContacts
    effective_on: date

    @property
    def complaint_deadline(self) -> date | None:
        days = self.contacts.complaint_window_days
        return None if days is None else date.fromordinal(self.as_of.toordinal() + days)

    @property
    def apr_complete(self) -> bool:
        """Every option states its rate basis: settlement and extension at the loan's own rate, a restructuring's own."""
        return all(o.kind is not OptionKind.RESTRUCTURING or o.annual_rate is not None for o in self.options)

    @property
    def references(self) -> dict[ReferenceEvent, date]:
        return {ReferenceEvent.EFFECTIVE: self.effective_on}


# --- segment of one loan --------------------------------------------------------------------------------------------


def loan_features(position: LoanPosition, *, as_of: date, region: str | None = None) -> dict[str, Any]:
    """The segment features one ledger loan gives on ``as_of`` (the loan stands for its account).

    Features the ledger does not hold (PD, income, city tier, affordability) are null, so a condition on them
    is false for this loan; give the segment explicitly when the plan segments by them.
    """
    dpd = days_past_due(position, as_of)
    bucket = bucket_of(dpd).value
    overdue = sum((i.outstanding_total for i in position.installments if i.due_date < as_of), ZERO)
    row: dict[str, Any] = {f.column: None for f in FEATURES.values()}
    row.update(
        {
            "dpd": dpd,
            "bucket": bucket,
            "balance_fen": int(position.outstanding_principal * 100),
            "overdue_fen": int(max(overdue, ZERO) * 100),
            "product": position.product.id,
            "method": position.product.method.value,
            "term_left": len(position.not_yet_due(as_of)),
            "loans": 1,
            "region": region,
        }
    )
    for feature in FEATURES.values():
        if feature.kind is FeatureKind.ORDINAL:
            value = row[feature.column]
            row[feature.rank_column] = feature.vocabulary.index(value) if value in feature.vocabulary else None
    return row


def segment_of(plan: Plan, features: Mapping[str, Any]) -> Segment:
    """The first segment of ``plan`` whose condition the features meet (first match wins)."""
    schema: dict[str, pl.DataType] = {}
    for feature in FEATURES.values():
        kind = feature.kind
        if kind in (FeatureKind.INTEGER, FeatureKind.MONEY):
            schema[feature.column] = pl.Int64()
        elif kind is FeatureKind.NUMBER:
            schema[feature.column] = pl.Float64()
        else:
            schema[feature.column] = pl.String()
        if kind is FeatureKind.ORDINAL:
            schema[feature.rank_column] = pl.Int64()
    frame = pl.DataFrame([{name: features.get(name) for name in schema}], schema=schema, orient="row")
    hits = frame.select([seg.when.to_polars().alias(f"s{k}") for k, seg in enumerate(plan.segments)]).row(0)
    for seg, hit in zip(plan.segments, hits, strict=True):
        if hit:
            return seg
    bucket = features.get("bucket")
    raise NoticeInvalid(
        f"`segment`: the loan (bucket {bucket}, balance {features.get('balance_fen')} fen) matches no segment of "
        f"plan {plan.id}; give the segment explicitly or add a catch-all segment",
        field="segment",
    )


# --- building the content -------------------------------------------------------------------------------------------

REFERENCE_PHASE: dict[NoticeType, tuple[Phase, ...]] = {
    NoticeType.CLOSURE: (Phase.STOP_NEW_DRAWS, Phase.OPTION_WINDOW_OPENS),
    NoticeType.STOP_DRAWS: (Phase.STOP_NEW_DRAWS, Phase.OPTION_WINDOW_OPENS),
    NoticeType.LINE_TERMINATION: (Phase.STOP_NEW_DRAWS, Phase.OPTION_WINDOW_OPENS),
    NoticeType.OFFER: (Phase.OPTION_WINDOW_OPENS,),
    NoticeType.REMINDER: (Phase.OPTION_WINDOW_CLOSES,),
}
"""Which phase a notice's timing is measured against (its ``effective`` reference date)."""

CUSTOMER_PHASES: tuple[Phase, ...] = (
    Phase.STOP_NEW_CUSTOMERS,
    Phase.ANNOUNCEMENT,
    Phase.STOP_NEW_DRAWS,
    Phase.OPTION_WINDOW_OPENS,
    Phase.OPTION_WINDOW_CLOSES,
    Phase.FINAL_DUE_DATE,
    Phase.REPAYMENT_CHANNELS_CLOSE,
)
"""The phases a customer is told about (hand-over, charge-off and sale are internal)."""


def _effective_on(notice_type: NoticeType, dates: Mapping[str, date]) -> date:
    for phase in REFERENCE_PHASE.get(notice_type, (Phase.OPTION_WINDOW_OPENS,)):
        if phase.value in dates:
            return dates[phase.value]
    return dates[Phase.OPTION_WINDOW_OPENS.value]


def _changes(dates: Mapping[str, date]) -> tuple[DatedChange, ...]:
    out = [DatedChange(p.value, dates[p.value]) for p in CUSTOMER_PHASES if p.value in dates]
    return tuple(sorted(out, key=lambda c: (c.on, CUSTOMER_PHASES.index(Phase(c.phase)))))


def schedule_apr(position: LoanPosition) -> Apr | None:
    """The loan's own annualised rate by IRR: the live schedule's installments discounted to its principal."""
    flows = [(i.number, i.principal_due + i.interest_due + i.fee_due) for i in position.installments if i.number >= 1]
    lent = sum((i.principal_due for i in position.installments if i.number >= 1), ZERO)
    if lent <= 0 or not flows:
        return None
    try:
        return apr_of_cash_flows(lent, flows, position.product.periods_per_year)
    except RunoffError:
        return None


def loan_summary(position: LoanPosition, *, as_of: date, upcoming: int = 3) -> LoanSummary:
    """The loan on ``as_of``: balances, what falls due next, its own APR and the next ``upcoming`` installments."""
    future = position.not_yet_due(as_of)
    due_by = [i for i in position.installments if i.due_date <= as_of]
    overdue = sum((max(i.outstanding_scheduled, ZERO) for i in due_by), ZERO)
    nxt = future[0] if future else None
    apr = schedule_apr(position)
    open_future = [i for i in future if i.outstanding_scheduled > 0]
    return LoanSummary(
        loan_id=position.loan_id,
        product_id=position.product.id,
        principal=position.principal,
        outstanding_principal=position.outstanding_principal,
        remaining_payable=remaining_payable(position, as_of),
        overdue=overdue,
        days_past_due=days_past_due(position, as_of),
        installments_left=len(open_future),
        next_due_date=nxt.due_date if nxt is not None else None,
        next_due_amount=nxt.outstanding_scheduled if nxt is not None else ZERO,
        maturity=position.installments[-1].due_date,
        apr_nominal=apr.nominal if apr is not None else None,
        apr_effective=apr.effective if apr is not None else None,
        penalty_daily_rate=position.product.penalty.daily_rate,
        upcoming=tuple((i.due_date, i.outstanding_scheduled) for i in open_future[:upcoming]),
        method=position.product.method,
    )


OptionSpec = EarlySettlementOption | ExtensionOption | RestructuringOption | HardshipHolidayOption


def _months(option: OptionSpec) -> int | None:
    if isinstance(option, ExtensionOption):
        return option.extra_months
    if isinstance(option, HardshipHolidayOption):
        return option.months
    if isinstance(option, RestructuringOption):
        return option.term_months
    return None


def option_terms(position: LoanPosition, option: OptionSpec, *, as_of: date) -> OptionTerms:
    """Price ``option`` for the loan on ``as_of`` through the servicing quote (:func:`quote_option`)."""
    quote = quote_option(position, option, as_of=as_of)
    settling = isinstance(option, EarlySettlementOption)
    installments = () if settling else quote.schedule.installments
    apr = quote.apr
    nominal = apr.nominal if apr is not None else None
    effective = apr.effective if apr is not None else None
    if apr is None and settling and quote.due_now.interest == 0 and quote.due_now.fee == 0:
        nominal = effective = ZERO  # settling before any interest accrues costs nothing beyond the principal
    return OptionTerms(
        option_id=option.id,
        kind=option.option_kind,
        label=option.label,
        pay_now=quote.pay_now,
        total_cost=quote.total_cost,
        saving=quote.saving,
        apr_nominal=nominal,
        apr_effective=effective,
        installments=len(installments),
        installment_amount=max((i.total for i in installments), default=None),
        first_due=installments[0].due_date if installments else None,
        maturity=installments[-1].due_date if installments else None,
        forgiven=quote.forgiven_principal,
        waived=quote.due_now.waived,
        months=_months(option),
        annual_rate=option.annual_rate if isinstance(option, RestructuringOption) else None,
    )


def _wave(plan: Plan, segment_id: str) -> WaveTimeline:
    return plan.wave_of(segment_id)


def notice_content(
    plan: Plan,
    position: LoanPosition,
    *,
    as_of: date,
    notice_type: NoticeType,
    contacts: NoticeContacts,
    notice_id: str,
    segment: str | None = None,
    customer_id: str | None = None,
    customer_name: str | None = None,
    region: str | None = None,
) -> NoticeContent:
    """What one customer is told on ``as_of`` about ``position``'s loan under ``plan``.

    The segment is the first whose condition the loan meets (:func:`loan_features`) unless given. Each option
    of the segment is priced on ``as_of``; an option the loan cannot take (a holiday with nothing left to defer)
    is listed in ``unavailable`` with why, not silently dropped.
    """
    region = region or plan.region
    seg = (
        plan.segment(segment)
        if segment is not None
        else segment_of(plan, loan_features(position, as_of=as_of, region=region))
    )
    wave = _wave(plan, seg.id)
    options: list[OptionTerms] = []
    unavailable: list[tuple[str, str]] = []
    for option_id in seg.options:
        spec = plan.option(option_id)
        try:
            options.append(option_terms(position, spec, as_of=as_of))
        except RunoffError as exc:
            unavailable.append((option_id, exc.message))
    dates = wave.dates
    return NoticeContent(
        notice_id=notice_id,
        plan_id=plan.id,
        plan_name=plan.name or plan.id,
        notice_type=notice_type,
        as_of=as_of,
        customer_id=customer_id,
        customer_name=customer_name,
        region=region,
        segment=seg.id,
        wave=wave.wave,
        loan=loan_summary(position, as_of=as_of),
        changes=_changes(dates),
        options=tuple(options),
        unavailable=tuple(unavailable),
        original_schedule_continues=seg.default_action is DefaultAction.ORIGINAL_SCHEDULE,
        window_opens=dates[Phase.OPTION_WINDOW_OPENS.value],
        window_closes=dates[Phase.OPTION_WINDOW_CLOSES.value],
        effective_on=_effective_on(notice_type, dates),
        contacts=contacts,
    )


def _announced(option: OptionSpec, segments: Sequence[str]) -> AnnouncedOption:
    return AnnouncedOption(
        option_id=option.id,
        kind=option.option_kind,
        label=option.label,
        segments=tuple(segments),
        months=_months(option),
        annual_rate=option.annual_rate if isinstance(option, RestructuringOption) else None,
        discount_rate=option.discount_rate if isinstance(option, EarlySettlementOption) else ZERO,
        haircut=option.haircut if isinstance(option, RestructuringOption) else ZERO,
        waive_penalties=bool(getattr(option, "waive_penalties", False)),
        waive_settlement_fee=isinstance(option, EarlySettlementOption) and option.waive_settlement_fee,
    )


def announcement_content(plan: Plan, *, as_of: date, contacts: NoticeContacts, notice_id: str) -> AnnouncementContent:
    """The public announcement (公告) of ``plan`` as of ``as_of``: dates per wave and the option menu."""
    plan_dates = plan.plan_dates()
    labels = {s.id: s.label or s.id for s in plan.segments}
    waves = tuple(
        WaveDates(
            wave=w.wave,
            segments=w.segments,
            segment_labels=tuple(labels[s] for s in w.segments),
            changes=_changes(w.dates),
        )
        for w in plan.wave_timelines()
    )
    offered: dict[str, list[str]] = {}
    for seg in plan.segments:
        for option_id in seg.options:
            offered.setdefault(option_id, []).append(labels[seg.id])
    options = tuple(_announced(plan.option(o.id), offered[o.id]) for o in plan.options if o.id in offered)
    return AnnouncementContent(
        notice_id=notice_id,
        plan_id=plan.id,
        plan_name=plan.name or plan.id,
        as_of=as_of,
        changes=_changes(plan_dates),
        waves=waves,
        options=options,
        original_schedule_continues=all(s.default_action is DefaultAction.ORIGINAL_SCHEDULE for s in plan.segments),
        contacts=contacts,
        effective_on=_effective_on(NoticeType.CLOSURE, plan_dates),
    )


__all__ = [
    "NOTICE_CHANNELS",
    "AnnouncedOption",
    "AnnouncementContent",
    "DatedChange",
    "Language",
    "LoanSummary",
    "LocalText",
    "NoticeContacts",
    "NoticeContent",
    "NoticeInvalid",
    "OptionTerms",
    "RepaymentChannel",
    "WaveDates",
    "announcement_content",
    "default_contacts",
    "loan_features",
    "loan_summary",
    "notice_content",
    "option_terms",
    "parse_channel",
    "parse_contacts",
    "parse_language",
    "segment_of",
]
