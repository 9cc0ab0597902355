"""Collection contacts (催收): local-time windows, frequency per the rule's counting key, third parties, opt-outs.

A batch of contacts is checked at once because frequency rules count across contacts: three connected
calls to one debtor in a day across the lender and all its agencies (NIFA), six unanswered attempts to one
number (CBA), seven placed calls per person and debt in seven days (Reg F). Local time is the customer's
(``zoneinfo``), so the same 21:30 Beijing call is fine for a customer in Shanghai and at 22:30 refused for
one in Tokyo.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import holidays
from pydantic import BaseModel, ValidationError

from runoff.calendar import BusinessCalendar
from runoff.compliance.checks import (
    ContactCooloff,
    ContactFrequency,
    ContactWindow,
    OptOutHonoured,
    Prohibition,
    ValueBound,
    _Check,
    conditions_match,
)
from runoff.compliance.facts import ContactFacts, OptOut
from runoff.compliance.findings import Finding, make_finding, sort_findings
from runoff.compliance.profile import LenderProfile
from runoff.compliance.rules import Rule, RulePack
from runoff.compliance.selection import RuleBook
from runoff.errors import InvalidInput, describe_validation_error

_Row = TypeVar("_Row", bound=BaseModel)


@lru_cache(maxsize=32)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=16)
def _public_holidays(country: str) -> holidays.HolidayBase:
    return holidays.country_holidays(country)


def _local(contact: ContactFacts, timezone: str) -> datetime:
    return contact.at.astimezone(_zone(contact.time_zone if timezone == "customer" else timezone))


def _zone_name(contact: ContactFacts, timezone: str) -> str:
    return contact.time_zone if timezone == "customer" else timezone


def _consent_excluded(contact: ContactFacts, days: int | None) -> bool:
    """Reg F: a call placed with the consumer's direct consent given within ``days`` does not count."""
    if days is None or contact.consent_given_at is None:
        return False
    age = contact.at - contact.consent_given_at
    return timedelta(0) <= age <= timedelta(days=days)


def _in_window(check: ContactWindow, contact: ContactFacts) -> tuple[bool, datetime]:
    local = _local(contact, check.timezone)
    clock = local.time().replace(tzinfo=None)
    if local.isoweekday() not in check.weekdays:
        return False, local
    if check.no_public_holidays:
        assert check.holiday_country is not None
        if local.date() in _public_holidays(check.holiday_country):
            return False, local
    if clock < check.start:
        return False, local
    if clock < check.end or (check.end_inclusive and clock == check.end):
        return True, local
    return False, local


def _counting_key(fields: Sequence[str], contact: ContactFacts) -> tuple[object, ...]:
    """The contact's value of the rule's counting key; a missing number or party is counted per customer
    (stricter than per number, never looser), so contacts of different customers are never pooled."""
    key = tuple(getattr(contact, k) for k in fields)
    if None in key and "customer_id" not in fields:
        key = (*key, contact.customer_id)
    return key


def _whom(check_key: Sequence[str], contact: ContactFacts) -> str:
    parts = []
    if "customer_id" in check_key:
        parts.append(f"customer {contact.customer_id}")
    if "debt_id" in check_key:
        parts.append(f"about debt {contact.debt_id}")
    if "address" in check_key:
        parts.append(f"number {contact.address}")
    if "third_party_id" in check_key:
        parts.append(f"third party {contact.third_party_id}")
    return " ".join(parts)


class _Batch:
    """One batch under one rule book: applicable (rule, check) pairs per contact, computed once."""

    def __init__(self, contacts: Sequence[ContactFacts], book: RuleBook) -> None:
        self.book = book
        self.profile = book.profile
        self.contacts = contacts
        self.pairs: list[list[tuple[Rule, _Check]]] = []
        for c in contacts:
            collector = c.collector_type or self.profile.default_collector
            on = c.local_at.date()
            pairs = [
                (rule, check)
                for rule, check in book.checks_for(on, target="contact", region=c.region, collector=collector)
                if conditions_match(check, c)
            ]
            self.pairs.append(pairs)

    def finding(self, rule: Rule, check: _Check, contact: ContactFacts, value: str, text: str) -> Finding:
        return make_finding(
            rule,
            check,
            self.profile,
            object_kind="contact",
            object_id=contact.contact_id,
            customer_id=contact.customer_id,
            on=contact.local_at.date(),
            value=value,
            text=text,
        )

    def grouped(self, kind: type[_Check]) -> list[tuple[Rule, _Check, list[ContactFacts]]]:
        """Contacts per (rule, check) for one check type, in time order."""
        groups: dict[tuple[str, int], tuple[Rule, _Check, list[ContactFacts]]] = {}
        for contact, pairs in zip(self.contacts, self.pairs, strict=True):
            for rule, check in pairs:
                if isinstance(check, kind):
                    groups.setdefault((rule.id, id(check)), (rule, check, []))[2].append(contact)
        for _, _, members in groups.values():
            members.sort(key=lambda c: c.at)
        return list(groups.values())


def _windows(batch: _Batch) -> Iterable[Finding]:
    for contact, pairs in zip(batch.contacts, batch.pairs, strict=True):
        for rule, check in pairs:
            if not isinstance(check, ContactWindow) or contact.channel not in check.channels:
                continue
            ok, local = _in_window(check, contact)
            if not ok:
                yield batch.finding(
                    rule,
                    check,
                    contact,
                    f"{local:%Y-%m-%d %H:%M} {_zone_name(contact, check.timezone)}",
                    f"{contact.channel.value} {contact.contact_id} to customer {contact.customer_id} at "
                    f"{local:%H:%M} {_zone_name(contact, check.timezone)} on {local:%Y-%m-%d} ({local:%a}) is "
                    f"outside the allowed window: {check.describe()}",
                )


def _frequencies(batch: _Batch) -> Iterable[Finding]:
    for rule, check, members in batch.grouped(ContactFrequency):
        assert isinstance(check, ContactFrequency)
        counted = [
            c
            for c in members
            if c.channel in check.channels
            and (check.connected is None or c.connected is check.connected)
            and not _consent_excluded(c, check.consent_exclusion_days)
        ]
        by_key: dict[tuple[object, ...], list[ContactFacts]] = defaultdict(list)
        for c in counted:
            by_key[_counting_key(check.key, c)].append(c)
        for group in by_key.values():
            yield from _count(batch, rule, check, group)


def _count(batch: _Batch, rule: Rule, check: ContactFrequency, group: list[ContactFacts]) -> Iterable[Finding]:
    window: deque[date] = deque()
    per_day: dict[date, int] = defaultdict(int)
    total = 0
    for c in group:
        day = _local(c, check.timezone).date()
        if check.per == "local-day":
            per_day[day] += 1
            count = per_day[day]
        elif check.per == "ever":
            total += 1
            count = total
        else:
            assert check.days is not None
            window.append(day)
            while window and (day - window[0]).days >= check.days:
                window.popleft()
            count = len(window)
        if count > check.max_count:
            span = (
                f"on {day}"
                if check.per == "local-day"
                else ("in all" if check.per == "ever" else f"in the {check.days} days to {day}")
            )
            yield batch.finding(
                rule,
                check,
                c,
                str(count),
                f"{count} {check.counted} to {_whom(check.key, c)} {span}, limit {check.max_count} {check.window_text}",
            )


def _cooloffs(batch: _Batch) -> Iterable[Finding]:
    for rule, check, members in batch.grouped(ContactCooloff):
        assert isinstance(check, ContactCooloff)
        last_conversation: dict[tuple[object, ...], tuple[date, datetime]] = {}
        for c in members:
            if c.channel not in check.channels or _consent_excluded(c, check.consent_exclusion_days):
                continue
            key = _counting_key(check.key, c)
            day = _local(c, check.timezone).date()
            previous = last_conversation.get(key)
            if previous is not None and previous[1] < c.at and (day - previous[0]).days < check.days:
                yield batch.finding(
                    rule,
                    check,
                    c,
                    str(day),
                    f"call {c.contact_id} to {_whom(check.key, c)} on {day} is day {(day - previous[0]).days + 1} "
                    f"after a conversation on {previous[0]}; no call within {check.days} days",
                )
            if c.connected:
                last_conversation[key] = (day, c.at)


def _opt_out_deadline(check: OptOutHonoured, opt_out: OptOut, contact: ContactFacts) -> date | datetime:
    """When the opt-out must be in effect: at once, or the end of the grace day (customer's local dates)."""
    received = opt_out.received_at.astimezone(_zone(contact.time_zone))
    if check.grace_business_days is not None:
        assert check.calendar is not None
        cal = BusinessCalendar(country=check.calendar)
        day = received.date()
        for _ in range(check.grace_business_days):
            day += timedelta(days=1)
            while not cal.is_business_day(day):
                day += timedelta(days=1)
        return day
    if check.grace_days:
        return received.date() + timedelta(days=check.grace_days)
    return opt_out.received_at


def _opt_outs(batch: _Batch, opt_outs: Sequence[OptOut]) -> Iterable[Finding]:
    if not opt_outs:
        return
    by_customer: dict[str, list[OptOut]] = defaultdict(list)
    for o in opt_outs:
        by_customer[o.customer_id].append(o)
    for contact, pairs in zip(batch.contacts, batch.pairs, strict=True):
        mine = by_customer.get(contact.customer_id)
        if not mine:
            continue
        for rule, check in pairs:
            if not isinstance(check, OptOutHonoured) or contact.channel not in check.channels:
                continue
            for o in mine:
                if o.channel is not contact.channel or (o.address is not None and o.address != contact.address):
                    continue
                deadline = _opt_out_deadline(check, o, contact)
                late = contact.at > deadline if isinstance(deadline, datetime) else contact.local_at.date() > deadline
                if late:
                    yield batch.finding(
                        rule,
                        check,
                        contact,
                        contact.at.isoformat(),
                        f"{contact.channel.value} {contact.contact_id} to customer {contact.customer_id} at "
                        f"{contact.local_at:%Y-%m-%d %H:%M} after an opt-out received "
                        f"{o.received_at.astimezone(_zone(contact.time_zone)):%Y-%m-%d %H:%M}; {check.describe()}",
                    )
                    break


def _prohibitions(batch: _Batch) -> Iterable[Finding]:
    for contact, pairs in zip(batch.contacts, batch.pairs, strict=True):
        for rule, check in pairs:
            if isinstance(check, Prohibition):
                yield batch.finding(
                    rule,
                    check,
                    contact,
                    contact.party.value,
                    f"{contact.channel.value} {contact.contact_id} to {contact.party.value} of customer "
                    f"{contact.customer_id}: {check.act}",
                )
            elif isinstance(check, ValueBound):
                value = getattr(contact, check.field)
                if value is None:
                    continue
                too_low = check.min is not None and value < check.min
                too_high = check.max is not None and value > check.max
                if too_low or too_high:
                    yield batch.finding(
                        rule,
                        check,
                        contact,
                        str(value),
                        f"{contact.channel.value} {contact.contact_id} to customer {contact.customer_id} has "
                        f"{check.field} {value}; allowed {check.describe()}",
                    )


def check_contacts(
    contacts: Sequence[ContactFacts],
    profile: LenderProfile,
    *,
    opt_outs: Sequence[OptOut] = (),
    packs: Sequence[RulePack] | None = None,
    book: RuleBook | None = None,
) -> list[Finding]:
    """Check a batch of collection contacts: windows, frequencies, cool-offs, opt-outs, third parties.

    Each contact is checked against the rules in force on its local date that bind whoever made it
    (``collector_type``, the profile's own collection when not given) for a customer in its region.
    """
    book = book if book is not None else RuleBook(profile, packs)
    batch = _Batch(contacts, book)
    findings: list[Finding] = []
    findings.extend(_windows(batch))
    findings.extend(_frequencies(batch))
    findings.extend(_cooloffs(batch))
    findings.extend(_opt_outs(batch, opt_outs))
    findings.extend(_prohibitions(batch))
    return sort_findings(findings)


def _parse_rows(rows: Iterable[Mapping[str, Any]], model: type[_Row], *, source: str, first_line: int) -> list[_Row]:
    out = []
    for line, row in enumerate(rows, start=first_line):
        data = {str(k).strip(): v for k, v in row.items() if k is not None and v not in ("", None)}
        try:
            out.append(model.model_validate(data))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first.get("loc", ())) or None
            raise InvalidInput(describe_validation_error(exc, source=f"{source} line {line}"), field=field) from None
    return out


def parse_contact_rows(
    rows: Iterable[Mapping[str, Any]], *, source: str = "contacts", first_line: int = 2
) -> list[ContactFacts]:
    """Rows of a contact log (e.g. a CSV with a header line) as :class:`ContactFacts`; empty cells take defaults.

    A bad row raises ``InvalidInput`` naming the line, the field and the value.
    """
    return _parse_rows(rows, ContactFacts, source=source, first_line=first_line)


def parse_opt_out_rows(
    rows: Iterable[Mapping[str, Any]], *, source: str = "opt-outs", first_line: int = 2
) -> list[OptOut]:
    """Rows of an opt-out list as :class:`OptOut`."""
    return _parse_rows(rows, OptOut, source=source, first_line=first_line)
