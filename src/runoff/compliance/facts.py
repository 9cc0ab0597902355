"""The compliance engine's inputs: small typed facts that a plan, an offer, a notice and a contact turn into.

The engine never reads a plan file, the ledger or the clock: a caller (the plan check, the offer pricer,
the notice sender, the collections desk) states what it is about to do as one of these models, with every
date and timestamp explicit, and the engine answers with findings. Field names are the vocabulary the
rule packs use in ``when`` / ``unless`` conditions, so renaming a field is a change to the packs too.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from runoff.money import ZERO


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone; expected a name like Asia/Shanghai") from None
    return value


TimeZoneName = Annotated[str, AfterValidator(_zone)]
Region = Annotated[str, Field(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$", description="ISO 3166 code: CN, US-MA, IE")]


class OptionKind(StrEnum):
    """What an offer gives the customer in the wind-down."""

    EARLY_SETTLEMENT = "early-settlement"  # 提前结清
    EXTENSION = "extension"  # 展期
    RESTRUCTURING = "restructuring"  # 债务重组
    HARDSHIP_HOLIDAY = "hardship-holiday"
    ORIGINAL_SCHEDULE = "original-schedule"  # the default when the customer does nothing


class ProductClass(StrEnum):
    """The kind of credit, where a rule binds only one (Reg Z card rules, Irish caps)."""

    INSTALLMENT_LOAN = "installment-loan"  # 分期 on a BNPL line: the default
    REVOLVING_LINE = "revolving-line"  # open-end credit line (额度)
    CREDIT_CARD = "credit-card"
    RUNNING_ACCOUNT = "running-account"  # Irish high-cost running accounts
    HIGH_COST = "high-cost"  # Irish licensed moneylending


class NoticeType(StrEnum):
    """What a notice (用户告知书) is about; timing and content rules key on it."""

    CLOSURE = "closure"  # the product is wound down
    STOP_DRAWS = "stop-draws"  # no new loans on existing lines
    LINE_TERMINATION = "line-termination"  # the credit line itself ends (non-default)
    PLATFORM_CLOSURE = "platform-closure"  # the shopping platform removes the checkout option
    RATE_CHANGE = "rate-change"
    FEE_INCREASE = "fee-increase"
    TERMS_CHANGE = "terms-change"
    OFFER = "offer"  # the customer's options with their rates and costs
    DEFAULT_NOTICE = "default-notice"  # before termination or acceleration for breach
    VALIDATION = "validation"  # US Reg F validation notice
    NEGATIVE_REPORT = "negative-report"  # before/after first negative credit reporting
    PRE_FURNISHING = "pre-furnishing"  # message sent before first furnishing to a bureau
    PERIODIC_STATEMENT = "periodic-statement"
    REMINDER = "reminder"


class Channel(StrEnum):
    """How a notice or contact reaches the customer."""

    LETTER = "letter"
    EMAIL = "email"
    SMS = "sms"
    IN_APP = "in-app"
    ANNOUNCEMENT = "announcement"  # public notice (公告): the only public channel
    CALL = "call"
    VOICE_MESSAGE = "voice-message"
    VISIT = "visit"


ELECTRONIC_CHANNELS = frozenset({Channel.EMAIL, Channel.SMS, Channel.IN_APP})


class ReferenceEvent(StrEnum):
    """The event a notice's timing is measured against."""

    EFFECTIVE = "effective"  # the change takes effect
    INITIAL_COMMUNICATION = "initial-communication"  # first collection communication (Reg F)
    FIRST_NEGATIVE_REPORT = "first-negative-report"
    FIRST_FURNISHING = "first-furnishing"
    PAYMENT_DUE = "payment-due"


class ContentItem(StrEnum):
    """A piece of information a notice carries; content rules list the ones they require."""

    ANNUALISED_RATE = "annualised-rate"  # 年化利率 by IRR
    SIMPLE_INTEREST_LABEL = "simple-interest-label"
    TOTAL_COST = "total-cost"
    ALL_FEES = "all-fees"
    FEE_PAYEES = "fee-payees"
    DEFAULT_CONSEQUENCES = "default-consequences"
    KEY_TERMS_HIGHLIGHTED = "key-terms-highlighted"
    CHANGE_DESCRIPTION = "change-description"
    EFFECTIVE_DATE = "effective-date"
    CONSENT_REQUIRED = "consent-required"
    COMPLAINT_AUTHORITY = "complaint-authority"
    COMPLAINT_DEADLINE = "complaint-deadline"
    PAYMENT_AFTER_CHANGE = "payment-after-change"
    PAYMENT_SCHEDULE_CHANGE = "payment-schedule-change"
    RIGHT_TO_REJECT = "right-to-reject"
    REJECTION_INSTRUCTIONS = "rejection-instructions"
    TOLL_FREE_NUMBER = "toll-free-number"
    INCREASE_REASON = "increase-reason"
    INCREASE_END_CONDITION = "increase-end-condition"
    VALIDATION_INFORMATION = "validation-information"
    OPT_OUT_INSTRUCTIONS = "opt-out-instructions"
    WITHDRAWAL_RIGHT = "withdrawal-right"
    REPAYMENT_CHANNELS = "repayment-channels"
    EXISTING_INSTALLMENTS_CONTINUE = "existing-installments-continue"


class CollectorType(StrEnum):
    """Who makes a collection contact: the lender itself or a third-party agency (FDCPA debt collector)."""

    FIRST_PARTY = "first-party"
    AGENCY = "agency"


class Party(StrEnum):
    """Whom a contact reaches."""

    DEBTOR = "debtor"
    THIRD_PARTY = "third-party"
    EMERGENCY_CONTACT = "emergency-contact"  # 紧急联系人
    FAMILY = "family"
    EMPLOYER = "employer"
    ATTORNEY = "attorney"


class ContactPurpose(StrEnum):
    """Why a contact is made."""

    COLLECTION = "collection"  # a demand to pay
    NOTIFICATION = "notification"
    LOCATION = "location"  # to confirm or correct where the debtor can be reached
    RESTORE_CONTACT = "restore-contact"  # ask a contact person to pass on a request to get in touch


class NumberKind(StrEnum):
    """The kind of number or address contacted (Massachusetts counts personal numbers apart)."""

    PERSONAL = "personal"  # residence, mobile or personal number
    WORKPLACE = "workplace"
    OTHER = "other"


class Place(StrEnum):
    """Where a contact reaches the person."""

    REMOTE = "remote"  # phone, message, letter
    HOME = "home"
    WORKPLACE = "workplace"
    PUBLIC = "public"


class PlanAction(StrEnum):
    """A step an exit plan takes; process rules require evidence before some of them."""

    STOP_NEW_CUSTOMERS = "stop-new-customers"
    STOP_DRAWS = "stop-draws"
    CLOSE_ACCOUNTS = "close-accounts"
    CLOSE_PRODUCT = "close-product"
    RESTRUCTURING_OFFERS = "restructuring-offers"
    AGENCY_HANDOVER = "agency-handover"
    ENFORCEMENT = "enforcement"  # acceleration, legal action
    WRITE_OFF = "write-off"
    BOOK_SALE = "book-sale"


class Evidence(StrEnum):
    """A policy, assessment or record a plan states it has (process rules check for them)."""

    FORBEARANCE_ASSESSMENT = "forbearance-assessment"
    FORBEARANCE_POLICY = "forbearance-policy"
    ARREARS_POLICY = "arrears-policy"
    VULNERABLE_CUSTOMER_POLICY = "vulnerable-customer-policy"
    DEBT_ADVICE_REFERRAL = "debt-advice-referral"
    CREDITWORTHINESS_ASSESSMENT = "creditworthiness-assessment"
    ASSIGNMENT_NOTICES = "assignment-notices"
    RETENTION_SCHEDULE = "retention-schedule"
    LAWFUL_BASIS_MAP = "lawful-basis-map"
    DELETION_PLAN = "deletion-plan"
    DATA_PROCESSING_AGREEMENT = "data-processing-agreement"
    BOOK_TRANSFER_CONSENT = "book-transfer-consent"
    SENSITIVE_DATA_CONSENT = "sensitive-data-consent"
    AGENCY_DUE_DILIGENCE = "agency-due-diligence"
    AGENCY_WHITELIST = "agency-whitelist"
    OUTSOURCING_NOTICE = "outsourcing-notice"
    COLLECTION_METHODS_PUBLISHED = "collection-methods-published"
    COLLECTION_MANAGER_NAMED = "collection-manager-named"
    ADVERSE_ACTION_NOTICES = "adverse-action-notices"
    CREDIT_BALANCE_REFUNDS = "credit-balance-refunds"
    FAIR_VALUE_ASSESSMENT = "fair-value-assessment"
    GONE_AWAY_TRACING = "gone-away-tracing"


class _Facts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OfferFacts(_Facts):
    """One priced option for one account: its cash flows and the facts the pricing rules need.

    ``amount_lent`` is what the customer actually has (net of anything deducted in advance, Civil Code
    Art. 670); ``payments`` are (period index, amount) with every fee included, as the APR by IRR needs them.
    Give ``apr_nominal``/``apr_effective`` when the pricer already computed them; otherwise the engine
    computes them from the cash flows.
    """

    offer_id: str = Field(min_length=1)
    account_id: str | None = None
    customer_id: str | None = None
    option: OptionKind
    offered_on: date
    region: Region | None = None
    product_class: ProductClass = ProductClass.INSTALLMENT_LOAN
    amount_lent: Decimal | None = Field(default=None, gt=0)
    payments: tuple[tuple[int, Decimal], ...] = ()
    periods_per_year: int = Field(default=12, ge=1, le=365)
    apr_nominal: Decimal | None = None
    apr_effective: Decimal | None = None
    displayed_apr: Decimal | None = Field(default=None, description="the annualised rate the offer shows")
    formation_date: date | None = Field(default=None, description="the loan contract's date (CN LPR lookups)")
    maturity_date: date | None = None
    applied_on: date | None = Field(default=None, description="when the customer applied (extension)")
    term_months: int | None = Field(default=None, ge=0)
    bullet: bool = False
    new_credit_limit: Decimal | None = None
    # early settlement (提前结清)
    settlement_date: date | None = None
    interest_charged: Decimal = ZERO
    interest_accrued_to_settlement: Decimal = ZERO
    settlement_fee: Decimal = ZERO
    amount_repaid_early: Decimal = ZERO
    remaining_months: int | None = Field(default=None, ge=0)
    interest_to_agreed_end: Decimal | None = None
    creditor_cost: Decimal | None = None
    fixed_rate: bool = True
    contract_allows_interest_beyond_settlement: bool = False
    # flags the pricing rules read
    facilitated: bool = False  # 助贷: bank-funded, platform-sourced
    covered_borrower: bool = False  # US Military Lending Act
    new_agreement: bool = False
    reprices_existing_balance: bool = False
    repricing_exception: bool = False
    interest_deducted_in_advance: bool = False
    auto_enrolled_paid_services: bool = False
    simple_rate_shown: bool = False

    @model_validator(mode="after")
    def _has_a_rate_or_cash_flows(self) -> OfferFacts:
        if self.apr_nominal is None and not (self.amount_lent and self.payments):
            raise ValueError("give `apr_nominal` (and `apr_effective`) or `amount_lent` with `payments`")
        return self


class NoticeFacts(_Facts):
    """One notice: what it is about, how and when it goes out, and what it says."""

    notice_id: str = Field(min_length=1)
    customer_id: str | None = None
    notice_type: NoticeType
    channel: Channel
    language: str = "zh-CN"
    region: Region | None = None
    product_class: ProductClass = ProductClass.INSTALLMENT_LOAN
    sent_on: date
    references: dict[ReferenceEvent, date] = Field(default_factory=dict)
    contents: frozenset[ContentItem] = frozenset()
    collector_type: CollectorType | None = None
    facilitated: bool = False
    new_agreement: bool = False
    delinquency_repricing: bool = False
    simple_rate_shown: bool = False
    daily_rate_more_prominent: bool = False
    rights_waiver: bool = False
    closure_fee: bool = False
    acceleration_clause: bool = False

    @property
    def public(self) -> bool:
        return self.channel is Channel.ANNOUNCEMENT


class ContactFacts(_Facts):
    """One collection contact or attempt, with the customer's time zone so windows are local.

    ``at`` must carry a time zone (an aware timestamp); ``time_zone`` is where the customer is.
    """

    contact_id: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    debt_id: str | None = None
    at: datetime
    time_zone: TimeZoneName
    region: Region | None = None
    channel: Channel = Channel.CALL
    address: str | None = Field(default=None, description="the number or address contacted")
    number_kind: NumberKind = NumberKind.PERSONAL
    connected: bool = False  # answered: a conversation took place
    collector_type: CollectorType | None = None
    agency_id: str | None = None
    party: Party = Party.DEBTOR
    third_party_id: str | None = None
    purpose: ContactPurpose = ContactPurpose.COLLECTION
    place: Place = Place.REMOTE
    visitors: int | None = Field(default=None, ge=1)
    autodialed: bool = False
    agreed_time: bool = False  # the debtor agreed to be contacted at this time
    agreed_frequency: bool = False  # the debtor agreed to more contacts
    debtor_consent: bool = False
    written_consent: bool = False
    consent_given_at: datetime | None = None
    debtor_unreachable: bool = False
    debt_related_party: bool = False
    debt_disclosed: bool = False
    identity_verified: bool = True
    debtor_has_attorney: bool = False
    third_party_requested: bool = False
    outside_customer_preferences: bool = False
    opt_out_instructions: bool = True
    collection_fee_demanded: bool = False
    non_designated_repayment_channel: bool = False
    abusive_language: bool = False
    impersonated_authority: bool = False
    public_posting: bool = False
    induced_new_borrowing: bool = False
    private_information_spread: bool = False

    @field_validator("at", "consent_given_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError(
                f"{value.isoformat()} has no time zone; expected an aware timestamp like 2026-03-02T21:59+08:00"
            )
        return value

    @property
    def local_at(self) -> datetime:
        return self.at.astimezone(ZoneInfo(self.time_zone))


class OptOut(_Facts):
    """A customer's request to stop messages on a channel (one address, or all of them when ``address`` is None)."""

    customer_id: str = Field(min_length=1)
    channel: Channel
    address: str | None = None
    received_at: datetime

    @field_validator("received_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.utcoffset() is None:
            raise ValueError(f"{value.isoformat()} has no time zone; expected an aware timestamp")
        return value


class PlannedChange(_Facts):
    """A change the plan makes (stop draws, close lines, raise a fee) with its public and individual notice dates."""

    change: NoticeType
    effective_on: date
    announced_on: date | None = Field(default=None, description="public announcement (公告)")
    notified_on: date | None = Field(default=None, description="individual notices go out")
    segment: str | None = None
    region: Region | None = None
    product_class: ProductClass = ProductClass.INSTALLMENT_LOAN


class SegmentFacts(_Facts):
    """One segment of the plan: how many accounts and how much balance it holds, and its default action."""

    name: str = Field(min_length=1)
    accounts: int = Field(ge=0)
    balance: Decimal = Field(ge=0)
    default_action: OptionKind = OptionKind.ORIGINAL_SCHEDULE
    accelerates_without_default: bool = False


class PlanFacts(_Facts):
    """What the compliance engine needs to know about an exit plan (plan/ builds this from the plan file)."""

    plan_id: str = Field(min_length=1)
    regions: frozenset[Region] = frozenset()
    product_class: ProductClass = ProductClass.INSTALLMENT_LOAN
    changes: tuple[PlannedChange, ...] = ()
    segments: tuple[SegmentFacts, ...] = ()
    accounts_total: int = Field(default=0, ge=0)
    balance_total: Decimal = Field(default=ZERO, ge=0)
    accounts_unassigned: int = Field(default=0, ge=0)
    accounts_in_several_segments: int = Field(default=0, ge=0)
    actions: frozenset[PlanAction] = frozenset()
    evidence: frozenset[Evidence] = frozenset()
    repayment_channels_close_before_balances_cleared: bool = False
    closure_fee_charged: bool = False
    fees_not_in_contract: bool = False
    selective_closure: bool = False


FACTS_BY_OBJECT: dict[str, type[BaseModel]] = {
    "offer": OfferFacts,
    "notice": NoticeFacts,
    "contact": ContactFacts,
    "plan": PlanFacts,
    "segment": SegmentFacts,
}
