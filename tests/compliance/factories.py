"""Factories for the compliance tests: profiles, contacts at a local wall-clock time, offers, notices."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from runoff.compliance.facts import ContactFacts, NoticeFacts, OfferFacts
from runoff.compliance.profile import LenderProfile


def profile(**kw: Any) -> LenderProfile:
    data: dict[str, Any] = {"jurisdictions": ["cn"], "lender_type": "consumer-finance"}
    data.update(kw)
    return LenderProfile.model_validate(data)


def contact(
    contact_id: str,
    local: str,
    *,
    zone: str = "Asia/Shanghai",
    customer: str = "C",
    region: str | None = "CN",
    **kw: Any,
) -> ContactFacts:
    """A contact at local wall-clock time ``local`` ("2026-03-02 21:59") in ``zone``."""
    at = datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(zone))
    return ContactFacts(contact_id=contact_id, customer_id=customer, at=at, time_zone=zone, region=region, **kw)


def offer(offer_id: str = "O1", **kw: Any) -> OfferFacts:
    data: dict[str, Any] = {
        "offer_id": offer_id,
        "option": "restructuring",
        "offered_on": date(2026, 5, 4),
        "region": "CN",
        "apr_nominal": Decimal("0.10"),
    }
    data.update(kw)
    return OfferFacts.model_validate(data)


def notice(notice_id: str = "N1", **kw: Any) -> NoticeFacts:
    data: dict[str, Any] = {
        "notice_id": notice_id,
        "notice_type": "rate-change",
        "channel": "letter",
        "sent_on": date(2026, 3, 1),
        "region": "CN",
    }
    data.update(kw)
    return NoticeFacts.model_validate(data)


def ids(findings) -> list[str]:
    return sorted({f.rule_id for f in findings})
