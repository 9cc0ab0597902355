"""The taxonomy of rules: jurisdictions, kinds, confirmation status, severity, whom a rule binds.

Kept apart from the rule model so the parameter blocks (:mod:`runoff.compliance.checks`) and the rule
model (:mod:`runoff.compliance.rules`) share one vocabulary.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator


class Jurisdiction(StrEnum):
    """The legal system a rule belongs to; a lender profile lists the ones it operates under."""

    CN = "cn"
    US = "us"
    EU = "eu"
    UK = "uk"


EU_MEMBER_STATES = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
    ]
)


def jurisdiction_of_region(region: str) -> Jurisdiction | None:
    """The jurisdiction of an ISO 3166 region code (``US-MA`` → us, ``IE`` → eu, ``GB`` → uk)."""
    country = region[:2].upper()
    if country == "CN":
        return Jurisdiction.CN
    if country == "US":
        return Jurisdiction.US
    if country in ("GB", "UK"):
        return Jurisdiction.UK
    if country in EU_MEMBER_STATES:
        return Jurisdiction.EU
    return None


def region_matches(pattern: str, region: str) -> bool:
    """``IE`` matches ``IE`` and ``IE-D``; ``US-MA`` matches only ``US-MA`` (and its subdivisions)."""
    return region == pattern or region.startswith(pattern + "-")


class RuleKind(StrEnum):
    """The catalogue's kinds of check."""

    DEADLINE = "deadline"
    CAP = "cap"
    WINDOW = "window"
    FREQUENCY = "frequency"
    CONTENT = "content"
    PROHIBITION = "prohibition"
    PROCESS = "process"
    RETENTION = "retention"


class RuleStatus(StrEnum):
    """How sure the catalogue is of a rule: only confirmed rules block unless the profile says otherwise."""

    CONFIRMED = "confirmed"
    SECONDARY = "secondary"
    UNCONFIRMED = "unconfirmed"

    @property
    def label(self) -> str:
        return {"confirmed": "confirmed", "secondary": "secondary source", "unconfirmed": "unconfirmed"}[self.value]


_STATUS_ALIASES = {"c": "confirmed", "s": "secondary", "u": "unconfirmed", "secondary source": "secondary"}


def _parse_status(value: Any) -> Any:
    if isinstance(value, str):
        return _STATUS_ALIASES.get(value.strip().lower(), value.strip().lower())
    return value


Status = Annotated[RuleStatus, BeforeValidator(_parse_status)]


class Severity(StrEnum):
    """What a finding does: ``block`` refuses the action, ``warn`` asks a person to look, ``info`` reports."""

    BLOCK = "block"
    WARN = "warn"
    INFO = "info"


class LenderType(StrEnum):
    """The lender's licence, which decides which price ceilings bind it (CN-CAP-01 vs CN-CAP-03..06)."""

    BANK = "bank"
    CONSUMER_FINANCE = "consumer-finance"  # 消费金融公司
    MICROLOAN = "microloan"  # 小额贷款公司
    PRIVATE_LENDER = "private-lender"  # not licensed by a financial regulator (民间借贷)


class Role(StrEnum):
    """An extra role some rules bind (the shopping platform side of a BNPL product)."""

    E_COMMERCE_PLATFORM = "e-commerce-platform"


class DataCategory(StrEnum):
    """A category of personal data with its own retention floor after closure."""

    CUSTOMER_IDENTITY = "customer-identity"
    TRANSACTIONS = "transactions"
    COLLECTION_RECORDS = "collection-records"
    CALL_RECORDINGS = "call-recordings"
    NEGATIVE_CREDIT_INFORMATION = "negative-credit-information"
    ADVERSE_ACTION_RECORDS = "adverse-action-records"
    PLATFORM_ORDERS = "platform-orders"


class RetentionAnchor(StrEnum):
    """What a retention period is counted from."""

    RELATIONSHIP_END = "relationship-end"
    LAST_COLLECTION_ACTIVITY = "last-collection-activity"
    EACH_CALL = "each-call"
    END_OF_ADVERSE_EVENT = "end-of-adverse-event"
    TRANSACTION_COMPLETION = "transaction-completion"
    ADVERSE_ACTION = "adverse-action"
