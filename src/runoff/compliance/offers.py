"""Offers: each priced option checked against the price caps, settlement rules and disclosure rules.

An option's price is its APR by IRR with every fee in the cash flows (PBOC 2021 No. 3): the nominal rate
(period IRR × periods a year) and the effective one ((1 + i)^k − 1), each cap saying which it compares.
Early settlement (提前结清) charges interest only to the settlement date where the rules say so (Civil
Code Art. 677, CCD2 Art. 29) and compensation within the EU caps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from runoff.compliance.checks import (
    DateOrder,
    ObjectKind,
    Prohibition,
    RateCap,
    RateDisclosure,
    SettlementCompensationCap,
    SettlementInterest,
    ValueBound,
    _Check,
    conditions_match,
)
from runoff.compliance.facts import (
    OfferFacts,
    OptionKind,
)
from runoff.compliance.findings import Finding, make_finding, not_evaluated, pct, sort_findings
from runoff.compliance.profile import LenderProfile
from runoff.compliance.rules import Rule, RulePack
from runoff.compliance.selection import RuleBook, rule_book
from runoff.compliance.taxonomy import Severity
from runoff.money import quantize
from runoff.servicing.apr import apr_of_cash_flows


@dataclass(frozen=True)
class _Rates:
    nominal: Decimal
    effective: Decimal

    def of(self, basis: str) -> Decimal:
        return self.nominal if basis == "nominal" else self.effective


def offer_rates(offer: OfferFacts) -> _Rates:
    """The offer's APR by IRR: as given by the pricer, or computed from its cash flows."""
    if offer.apr_nominal is not None:
        effective = offer.apr_effective
        if effective is None:
            k = offer.periods_per_year
            effective = (1 + offer.apr_nominal / k) ** k - 1
        return _Rates(offer.apr_nominal, effective)
    assert offer.amount_lent is not None  # the model validator guarantees cash flows here
    apr = apr_of_cash_flows(offer.amount_lent, list(offer.payments), offer.periods_per_year)
    return _Rates(apr.nominal, apr.effective)


def rate_cap_on(check: RateCap, offer: OfferFacts, book: RuleBook) -> tuple[Decimal, str, str] | None:
    """(annual cap, basis, how it was found) for ``offer``; None when no row of the rule's table applies."""
    on = offer.offered_on
    if check.date_basis == "formation-date" and offer.formation_date is not None:
        on = offer.formation_date
    if check.max_rate is not None:
        return check.max_rate, check.basis, pct(check.max_rate)
    if check.reference is not None:
        assert check.multiple is not None
        value = book.references[check.reference].value_on(on)
        if value is None:
            return None
        cap = check.multiple * value
        return cap, check.basis, f"{pct(cap)} ({check.multiple} × {check.reference} {pct(value)} on {on})"
    for row in check.table:
        if row.applies(on, offer.region, offer.product_class):
            where = f" in {row.region}" if row.region else ""
            per = "" if row.per == "year" else f" ({pct(row.max_rate)} a {row.per})"
            return row.annual_rate, row.basis, f"{pct(row.annual_rate)}{per}{where}"
    return None


def check_offer(
    offer: OfferFacts,
    profile: LenderProfile,
    *,
    packs: Sequence[RulePack] | None = None,
    book: RuleBook | None = None,
) -> list[Finding]:
    """Check one priced option against the caps, settlement rules and disclosure rules in force on its date."""
    book = rule_book(profile, packs, book)
    findings: list[Finding] = []
    rates: _Rates | None = None
    oid = offer.offer_id
    on = offer.offered_on

    def finding(rule: Rule, check: _Check, value: str, text: str, severity: Severity | None = None) -> Finding:
        return make_finding(
            rule,
            check,
            profile,
            object_kind="offer",
            object_id=oid,
            customer_id=offer.customer_id,
            on=on,
            value=value,
            text=text,
            severity=severity,
        )

    for rule, check in book.checks_for(on, target="offer", region=offer.region):
        if not conditions_match(check, offer):
            continue
        if isinstance(check, RateCap | RateDisclosure) and rates is None:
            rates = offer_rates(offer)
        if isinstance(check, RateCap):
            assert rates is not None
            found = rate_cap_on(check, offer, book)
            if found is None:
                if check.reference is not None:
                    findings.append(
                        not_evaluated(
                            rule, check, profile, object_kind="offer", object_id=oid, missing=check.reference, on=on
                        )
                    )
                continue
            cap, basis, how = found
            rate = rates.of(basis)
            if rate > cap:
                findings.append(
                    finding(
                        rule,
                        check,
                        pct(rate),
                        f"{offer.option.value} offer {oid} has an annualised rate ({basis}) of {pct(rate)}, "
                        f"above the cap of {how}",
                    )
                )
            elif check.warn_above is not None and rate > check.warn_above:
                findings.append(
                    finding(
                        rule,
                        check,
                        pct(rate),
                        f"{offer.option.value} offer {oid} has an annualised rate ({basis}) of {pct(rate)}, "
                        f"in the monitored band above {pct(check.warn_above)}",
                        severity=Severity.WARN,
                    )
                )
        elif isinstance(check, RateDisclosure):
            assert rates is not None
            rate = rates.of(check.basis)
            if offer.displayed_apr is None:
                findings.append(finding(rule, check, "(none)", f"offer {oid} shows no annualised rate"))
            elif abs(offer.displayed_apr - rate) > check.tolerance:
                findings.append(
                    finding(
                        rule,
                        check,
                        pct(offer.displayed_apr),
                        f"offer {oid} shows an annualised rate of {pct(offer.displayed_apr)}, "
                        f"its cash flows give {pct(rate)} ({check.basis} IRR)",
                    )
                )
        elif isinstance(check, SettlementCompensationCap):
            if offer.option is not OptionKind.EARLY_SETTLEMENT:
                continue
            if offer.remaining_months is None and (offer.fixed_rate or not check.fixed_rate_only):
                findings.append(
                    not_evaluated(
                        rule, check, profile, object_kind="offer", object_id=oid, missing="remaining_months", on=on
                    )
                )
            elif (found_fee := _compensation_breach(check, offer)) is not None:
                allowed, why = found_fee
                findings.append(
                    finding(
                        rule,
                        check,
                        str(quantize(offer.settlement_fee)),
                        f"early settlement {oid} charges compensation of {quantize(offer.settlement_fee)}, "
                        f"at most {allowed} allowed ({why})",
                    )
                )
        elif isinstance(check, SettlementInterest):
            if offer.option is not OptionKind.EARLY_SETTLEMENT:
                continue
            if offer.interest_charged > offer.interest_accrued_to_settlement:
                when = f" {offer.settlement_date}" if offer.settlement_date else ""
                findings.append(
                    finding(
                        rule,
                        check,
                        str(quantize(offer.interest_charged)),
                        f"early settlement {oid} charges interest of {quantize(offer.interest_charged)}, "
                        f"only {quantize(offer.interest_accrued_to_settlement)} accrued to the settlement date{when}",
                    )
                )
        elif isinstance(check, DateOrder):
            earlier, later = getattr(offer, check.earlier), getattr(offer, check.later)
            if earlier is None or later is None:
                missing = check.earlier if earlier is None else check.later
                findings.append(
                    not_evaluated(rule, check, profile, object_kind="offer", object_id=oid, missing=missing, on=on)
                )
            elif (later - earlier).days < check.min_days:
                findings.append(
                    finding(
                        rule,
                        check,
                        str(earlier),
                        f"{offer.option.value} offer {oid}: {check.earlier} {earlier} is not "
                        f"{check.min_days} day(s) before {check.later} {later}",
                    )
                )
        elif isinstance(check, ValueBound):
            findings.extend(_value_bound(rule, check, profile, offer, oid, offer.customer_id, on, "offer"))
        elif isinstance(check, Prohibition):
            findings.append(finding(rule, check, "true", f"offer {oid}: {check.act}"))
    return sort_findings(findings)


def _compensation_breach(check: SettlementCompensationCap, offer: OfferFacts) -> tuple[Decimal, str] | None:
    """(allowed, why) when the settlement fee is above what the rule allows (``remaining_months`` known)."""
    if not offer.fixed_rate and check.fixed_rate_only:
        allowed, why = Decimal(0), "no compensation when the borrowing rate is not fixed"
    else:
        assert offer.remaining_months is not None
        long = offer.remaining_months > check.threshold_months
        rate = check.rate_long if long else check.rate_short
        allowed = rate * offer.amount_repaid_early
        why = f"{pct(rate)} of {quantize(offer.amount_repaid_early)} repaid early, {offer.remaining_months} months left"
        remaining = offer.interest_to_agreed_end
        if check.within_remaining_interest and remaining is not None and remaining < allowed:
            allowed, why = remaining, "the interest to the agreed end"
        if check.within_creditor_cost and offer.creditor_cost is not None and offer.creditor_cost < allowed:
            allowed, why = offer.creditor_cost, "the creditor's cost"
    allowed = quantize(allowed)
    if offer.settlement_fee > allowed:
        return allowed, why
    return None


def _value_bound(
    rule: Rule,
    check: ValueBound,
    profile: LenderProfile,
    facts: object,
    object_id: str,
    customer_id: str | None,
    on: date,
    object_kind: ObjectKind,
) -> list[Finding]:
    value = getattr(facts, check.field)
    if value is None:
        return []
    number = Decimal(value)
    if (check.max is not None and number > check.max) or (check.min is not None and number < check.min):
        return [
            make_finding(
                rule,
                check,
                profile,
                object_kind=object_kind,
                object_id=object_id,
                customer_id=customer_id,
                on=on,
                value=str(value),
                text=f"{object_kind} {object_id} has {check.field} {value}; allowed {check.describe()}",
            )
        ]
    return []
