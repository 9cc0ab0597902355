"""Offers: rate caps on both sides of the boundary, APR by IRR of the offer's own cash flows, settlement rules."""

from datetime import date
from decimal import Decimal

import numpy_financial as npf
import pytest

from runoff.compliance.engine import check_offer, require_allowed
from runoff.compliance.findings import pct
from runoff.compliance.offers import offer_rates
from runoff.compliance.taxonomy import Severity
from runoff.errors import ComplianceBlocked
from tests.compliance.factories import ids, offer, profile

BANK = profile(lender_type="bank")
PRIVATE = profile(lender_type="private-lender")
US_BANK = profile(jurisdictions=["us"], lender_type="bank")
EU_BANK = profile(jurisdictions=["eu"], lender_type="bank")


def _flat_fee_payments(principal: int, months: int, fee_rate: str) -> tuple[Decimal, list[tuple[int, Decimal]]]:
    """等本等费: equal principal plus a fee on the original principal every month."""
    p = Decimal(principal)
    each = p / months + p * Decimal(fee_rate)
    return p, [(k, each) for k in range(1, months + 1)]


# --- caps ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("apr", "found"), [("0.24", []), ("0.2401", ["CN-CAP-03"])], ids=["at-24%-passes", "24.01%-refused"]
)
def test_financial_institution_all_in_cost_cap_of_24_percent(apr, found):
    assert ids(check_offer(offer(apr_nominal=Decimal(apr), displayed_apr=Decimal(apr)), BANK)) == found


def test_secondary_source_cap_warns_unless_the_profile_blocks_on_unconfirmed_rules():
    high = offer(apr_nominal=Decimal("0.30"), displayed_apr=Decimal("0.30"))
    (lenient,) = check_offer(high, BANK)
    (strict,) = check_offer(high, profile(lender_type="bank", block_on_unconfirmed=True))
    assert (lenient.severity, strict.severity) == (Severity.WARN, Severity.BLOCK)
    assert lenient.message.startswith("CN-CAP-03 (secondary source): restructuring offer O1 has an annualised rate")
    require_allowed([lenient])  # a warning never refuses an action
    with pytest.raises(ComplianceBlocked, match="CN-CAP-03") as caught:
        require_allowed([strict])
    assert caught.value.rule_id == "CN-CAP-03"


@pytest.mark.parametrize(
    ("formed", "lpr", "apr", "found"),
    [
        (date(2025, 6, 1), "3.00%", "0.12", []),
        (date(2025, 6, 1), "3.00%", "0.1201", ["CN-CAP-01"]),
        (date(2024, 1, 15), "3.45%", "0.138", []),
        (date(2024, 1, 15), "3.45%", "0.1381", ["CN-CAP-01"]),
        (date(2020, 9, 1), "3.85%", "0.154", []),  # the catalogue's worked example: 4 × 3.85 % = 15.4 %
    ],
    ids=["lpr-3.00-at-cap", "lpr-3.00-above", "lpr-3.45-at-cap", "lpr-3.45-above", "lpr-3.85-at-cap"],
)
def test_private_lending_cap_is_four_times_the_lpr_at_formation(formed, lpr, apr, found):
    o = offer(apr_nominal=Decimal(apr), displayed_apr=Decimal(apr), formation_date=formed)
    findings = check_offer(o, PRIVATE)
    assert ids(findings) == found
    if found:
        assert findings[0].severity is Severity.BLOCK  # confirmed rule
        assert f"(4 × cn-lpr-1y {lpr} on {formed})" in findings[0].message


def test_the_private_lending_cap_does_not_bind_a_licensed_lender():
    o = offer(apr_nominal=Decimal("0.20"), displayed_apr=Decimal("0.20"), formation_date=date(2025, 6, 1))
    assert "CN-CAP-01" not in ids(check_offer(o, BANK))


def test_an_offer_above_the_military_lending_cap_is_refused():
    o = offer(region="US-TX", apr_nominal=Decimal("0.3650"), covered_borrower=True)
    findings = check_offer(o, US_BANK)
    assert ids(findings) == ["US-MLA-01"] and findings[0].severity is Severity.BLOCK
    with pytest.raises(ComplianceBlocked) as caught:
        require_allowed(findings)
    assert caught.value.rule_id == "US-MLA-01"
    assert check_offer(o.model_copy(update={"covered_borrower": False}), US_BANK) == []


def test_consumer_finance_band_warns_between_12_and_24_percent_from_april_2026():
    cfc = profile(lender_type="consumer-finance")
    in_band = check_offer(offer(apr_nominal=Decimal("0.18"), displayed_apr=Decimal("0.18")), cfc)
    assert [(f.rule_id, f.severity) for f in in_band] == [("CN-CAP-06", Severity.WARN)]
    assert "monitored band above 12.00%" in in_band[0].message
    march = offer(offered_on=date(2026, 3, 31), apr_nominal=Decimal("0.18"), displayed_apr=Decimal("0.18"))
    assert check_offer(march, cfc) == []


def test_profile_sets_the_stricter_20_percent_consumer_finance_ceiling():
    strict = profile(lender_type="consumer-finance", overrides={"CN-CAP-06": {"max_rate": "0.20"}})
    findings = check_offer(offer(apr_nominal=Decimal("0.21"), displayed_apr=Decimal("0.21")), strict)
    assert ["above the cap of 20.00%" in f.message for f in findings if f.rule_id == "CN-CAP-06"] == [True]


def test_microloan_glide_path_drops_to_12_percent_at_end_2027():
    micro = profile(lender_type="microloan")
    o = offer(apr_nominal=Decimal("0.15"), displayed_apr=Decimal("0.15"))
    assert check_offer(o, micro) == []
    assert ids(check_offer(o.model_copy(update={"offered_on": date(2028, 1, 3)}), micro)) == ["CN-CAP-05"]


@pytest.mark.parametrize(
    ("product_class", "apr", "found"),
    [
        ("installment-loan", "0.22", []),
        ("installment-loan", "0.24", ["EU-CCD-05"]),  # 23 % APRC for ordinary credit (effective basis)
        ("running-account", "0.33", []),  # 2.83 % a month nominal = 33.96 % a year
        ("running-account", "0.35", ["EU-CCD-05"]),
        ("high-cost", "0.47", []),
    ],
    ids=["ordinary-below", "ordinary-above", "running-below", "running-above", "high-cost-below"],
)
def test_irish_member_state_caps_by_product(product_class, apr, found):
    nominal = Decimal(apr)
    effective = nominal if product_class == "installment-loan" else None
    o = offer(region="IE", product_class=product_class, apr_nominal=nominal, apr_effective=effective)
    assert ids(check_offer(o, EU_BANK)) == found


def test_irish_caps_do_not_apply_in_another_member_state():
    o = offer(region="DE", apr_nominal=Decimal("0.30"), apr_effective=Decimal("0.34"))
    assert check_offer(o, EU_BANK) == []


# --- APR by IRR of the offer's own cash flows --------------------------------------------------------


def test_offer_apr_is_the_irr_of_its_cash_flows_fees_included():
    lent, payments = _flat_fee_payments(1200, 12, "0.006")
    rates = offer_rates(offer(apr_nominal=None, amount_lent=lent, payments=payments))
    irr = npf.irr([-1200.0] + [float(a) for _, a in payments])
    assert float(rates.nominal) == pytest.approx(irr * 12, abs=1e-10)
    assert float(rates.effective) == pytest.approx((1 + irr) ** 12 - 1, abs=1e-10)
    assert 0.13 < float(rates.nominal) < 0.131  # a 0.6 %/month flat fee is about 13 %, not 7.2 %


def test_flat_fee_offer_above_the_cap_is_found_from_its_cash_flows():
    lent, payments = _flat_fee_payments(1200, 12, "0.02")
    o = offer(apr_nominal=None, amount_lent=lent, payments=payments, displayed_apr=None)
    findings = check_offer(o, BANK)
    cap = next(f for f in findings if f.rule_id == "CN-CAP-03")
    irr = npf.irr([-1200.0] + [float(a) for _, a in payments])
    assert cap.value == pct(Decimal(repr(irr * 12)))


def test_displayed_rate_must_be_the_irr_not_the_fee_times_twelve():
    lent, payments = _flat_fee_payments(1200, 12, "0.006")
    misleading = offer(apr_nominal=None, amount_lent=lent, payments=payments, displayed_apr=Decimal("0.072"))
    (finding,) = check_offer(misleading, BANK)
    assert finding.rule_id == "CN-APR-01"
    assert "shows an annualised rate of 7.20%, its cash flows give 13.03%" in finding.message
    honest = misleading.model_copy(update={"displayed_apr": Decimal("0.1303")})
    assert check_offer(honest, BANK) == []


# --- early settlement ------------------------------------------------------------------------------


def _settlement(**kw):
    data = {
        "option": "early-settlement",
        "settlement_date": date(2026, 5, 10),
        "apr_nominal": Decimal("0.10"),
        "displayed_apr": Decimal("0.10"),
    }
    data.update(kw)
    return offer(**data)


def test_early_settlement_never_charges_interest_beyond_the_settlement_date():
    beyond = _settlement(interest_charged=Decimal("12.00"), interest_accrued_to_settlement=Decimal("4.50"))
    findings = check_offer(beyond, BANK)
    assert ids(findings) == ["CN-PRC-02"] and findings[0].severity is Severity.BLOCK
    assert "charges interest of 12.00, only 4.50 accrued to the settlement date 2026-05-10" in findings[0].message
    exact = _settlement(interest_charged=Decimal("4.50"), interest_accrued_to_settlement=Decimal("4.50"))
    assert check_offer(exact, BANK) == []


def test_china_allows_interest_beyond_settlement_when_the_contract_says_so_the_eu_does_not():
    agreed = {
        "interest_charged": Decimal("12.00"),
        "interest_accrued_to_settlement": Decimal("4.50"),
        "contract_allows_interest_beyond_settlement": True,
        "remaining_months": 6,
    }
    assert check_offer(_settlement(**agreed), BANK) == []
    assert ids(check_offer(_settlement(region="FR", **agreed), EU_BANK)) == ["EU-CCD-04"]


@pytest.mark.parametrize(
    ("remaining_months", "fee", "found"),
    [
        (13, "100.00", []),  # more than a year left: 1 % of 10,000
        (13, "100.01", ["EU-CCD-04"]),
        (12, "50.00", []),  # a year or less: 0.5 %
        (12, "50.01", ["EU-CCD-04"]),
    ],
    ids=["1%-at-cap", "1%-above", "0.5%-at-cap", "0.5%-above"],
)
def test_eu_early_repayment_compensation_cap(remaining_months, fee, found):
    o = _settlement(
        region="FR",
        amount_repaid_early=Decimal("10000"),
        remaining_months=remaining_months,
        settlement_fee=Decimal(fee),
    )
    assert ids(check_offer(o, EU_BANK)) == found


def test_eu_compensation_never_exceeds_the_interest_to_the_agreed_end_and_needs_a_fixed_rate():
    base = {"region": "FR", "amount_repaid_early": Decimal("10000"), "remaining_months": 24}
    capped = _settlement(settlement_fee=Decimal("40"), interest_to_agreed_end=Decimal("30"), **base)
    (finding,) = check_offer(capped, EU_BANK)
    assert "at most 30.00 allowed (the interest to the agreed end)" in finding.message
    variable = _settlement(settlement_fee=Decimal("1"), fixed_rate=False, **base)
    assert ids(check_offer(variable, EU_BANK)) == ["EU-CCD-04"]


def test_eu_compensation_without_remaining_term_is_flagged_for_a_person():
    (finding,) = check_offer(_settlement(region="FR", settlement_fee=Decimal("10")), EU_BANK)
    assert finding.severity is Severity.WARN and "`remaining_months` not given" in finding.message


# --- other offer rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("applied", "found"),
    [(date(2026, 6, 30), []), (date(2026, 7, 1), ["CN-PRC-03"])],
    ids=["day-before-maturity", "on-maturity"],
)
def test_extension_is_applied_for_before_maturity(applied, found):
    o = offer(option="extension", applied_on=applied, maturity_date=date(2026, 7, 1), displayed_apr=Decimal("0.10"))
    assert ids(check_offer(o, BANK)) == found


@pytest.mark.parametrize(("term", "found"), [(12, []), (13, ["CN-LMT-01"])], ids=["12-months", "13-months"])
def test_bank_bullet_restructuring_is_at_most_a_year(term, found):
    o = offer(bullet=True, term_months=term, displayed_apr=Decimal("0.10"))
    assert ids(check_offer(o, BANK)) == found


def test_credit_card_existing_balance_is_not_repriced_without_an_exception():
    o = offer(region="US-NY", product_class="credit-card", reprices_existing_balance=True)
    assert ids(check_offer(o, US_BANK)) == ["US-Z-04"]
    assert check_offer(o.model_copy(update={"repricing_exception": True}), US_BANK) == []
