"""Rule selection: by jurisdiction, lender and collector type, role, region and effective dates; overrides."""

from datetime import date

import pytest

from runoff.compliance.engine import select_rules
from runoff.compliance.profile import ProfileInvalid, parse_profile
from runoff.compliance.rules import RulePackInvalid
from runoff.compliance.selection import RuleBook
from runoff.compliance.taxonomy import RuleStatus
from tests.compliance.factories import profile

ON = date(2026, 3, 2)


def _ids(p, on=ON):
    return {r.id for r in select_rules(p, on=on)}


@pytest.mark.parametrize(
    ("lender_type", "present", "absent"),
    [
        ("private-lender", {"CN-CAP-01"}, {"CN-CAP-02", "CN-CAP-03", "CN-COL-02", "CN-APR-02"}),
        ("bank", {"CN-CAP-03", "CN-CAP-04", "CN-NTC-01", "CN-COL-05"}, {"CN-CAP-01", "CN-CAP-05", "CN-CAP-06"}),
        ("consumer-finance", {"CN-CAP-03", "CN-COL-03", "CN-COL-06"}, {"CN-CAP-01", "CN-CAP-04", "CN-NTC-01"}),
        ("microloan", {"CN-CAP-05", "CN-COL-02"}, {"CN-CAP-01", "CN-CAP-03", "CN-COL-03"}),
    ],
    ids=["private", "bank", "consumer-finance", "microloan"],
)
def test_price_ceilings_follow_the_lender_licence(lender_type, present, absent):
    chosen = _ids(profile(lender_type=lender_type))
    assert present <= chosen
    assert not absent & chosen


def test_reg_f_binds_agencies_only_state_law_binds_creditors_too():
    first = _ids(profile(jurisdictions=["us"], lender_type="bank"))
    agency = _ids(profile(jurisdictions=["us"], lender_type="bank", collector_types=["agency"]))
    assert not {r for r in first if r.startswith("US-F-")}
    assert {"US-F-01", "US-F-02", "US-F-03", "US-F-06"} <= agency
    assert {"US-ST-01", "US-UDAAP-01"} <= first & agency
    assert "US-ST-02" in first and "US-ST-02" not in agency  # the Rosenthal Act extension is for first parties


def test_the_e_commerce_closure_notice_binds_the_platform_only():
    assert "CN-CLOSE-02" not in _ids(profile(lender_type="bank"))
    assert "CN-CLOSE-02" in _ids(profile(lender_type="bank", roles=["e-commerce-platform"]))


@pytest.mark.parametrize(
    ("rule_id", "day_before", "first_day"),
    [
        ("CN-COL-03", date(2026, 1, 29), date(2026, 1, 30)),
        ("CN-CAP-06", date(2026, 3, 31), date(2026, 4, 1)),
        ("US-TCPA-01", date(2025, 4, 10), date(2025, 4, 11)),
        ("EU-CCD-07", date(2026, 11, 19), date(2026, 11, 20)),
    ],
    ids=["cba-guideline", "cfc-bands", "tcpa-10-days", "ccd2"],
)
def test_rules_come_into_force_on_their_effective_date(rule_id, day_before, first_day):
    everyone = profile(
        jurisdictions=["cn", "us", "eu"], lender_type="consumer-finance", collector_types=["first-party", "agency"]
    )
    assert rule_id not in _ids(everyone, day_before)
    assert rule_id in _ids(everyone, first_day)


def test_a_withdrawn_rule_stops_on_its_withdrawal_date():
    us = profile(jurisdictions=["us"], lender_type="bank")
    assert "US-BNPL-01" in _ids(us, date(2025, 5, 11))
    assert "US-BNPL-01" not in _ids(us, date(2025, 5, 12))
    assert "US-BNPL-01" not in _ids(us, date(2024, 7, 29))


def test_regional_overlays_reach_only_customers_there():
    book = RuleBook(profile(jurisdictions=["us", "eu"], lender_type="bank"))
    rules_for = lambda region: {r.id for r, _ in book.checks_for(ON, target="contact", region=region)}  # noqa: E731
    assert "US-ST-01" in rules_for("US-MA") and "US-ST-01" not in rules_for("US-NY")
    assert "EU-IE-01" in rules_for("IE") and "EU-IE-01" not in rules_for("DE")
    assert not {r for r in rules_for("US-MA") if r.startswith("EU-")}
    assert "US-ST-01" not in rules_for(None)  # an unknown region gets no regional overlay


def test_counsel_can_confirm_a_rule_through_the_profile():
    confirmed = profile(overrides={"CN-COL-02": {"status": "confirmed"}})
    (rule,) = [r for r in select_rules(confirmed, on=ON) if r.id == "CN-COL-02"]
    assert rule.status is RuleStatus.CONFIRMED


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"CN-NOPE-01": {"max_rate": 0.2}}, "overrides.CN-NOPE-01"),
        ({"CN-CAP-06": {"maximum": 0.2}}, "`overrides.CN-CAP-06.maximum` is not a parameter of CN-CAP-06"),
        ({"CN-CAP-06": {"max_rate": -1}}, "greater than 0"),
    ],
    ids=["unknown-rule", "unknown-parameter", "bad-value"],
)
def test_a_bad_override_gives_one_clear_message(overrides, named):
    with pytest.raises(RulePackInvalid, match=named):
        select_rules(profile(overrides=overrides), on=ON)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"jurisdictions": ["cn"], "lender_type": "pawnshop"}, "`lender_type`"),
        ({"jurisdictions": ["mars"], "lender_type": "bank"}, "`jurisdictions.0`"),
        ({"jurisdictions": [], "lender_type": "bank"}, "`jurisdictions`"),
        ({"jurisdictions": ["cn"], "lender_type": "bank", "collector": "agency"}, "`collector`"),
        (["cn"], "expected a mapping"),
    ],
    ids=["lender-type", "jurisdiction", "no-jurisdiction", "unknown-field", "not-a-mapping"],
)
def test_a_bad_profile_names_the_field(data, named):
    with pytest.raises(ProfileInvalid, match=named):
        parse_profile(data)


def test_profile_accepts_one_collector_type_and_upper_case_jurisdictions():
    p = parse_profile({"jurisdictions": ["CN", "US"], "lender_type": "bank", "collector_type": "agency"})
    assert {j.value for j in p.jurisdictions} == {"cn", "us"}
    assert {c.value for c in p.collector_types} == {"agency"}
