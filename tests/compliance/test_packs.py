"""The shipped packs: they validate, cover the catalogue faithfully, and a bad pack gets one clear message."""

from datetime import date, time
from decimal import Decimal

import pytest
import yaml

from runoff.compliance.checks import ContactFrequency, ContactWindow, RateCap, SettlementCompensationCap
from runoff.compliance.rules import RulePackInvalid, load_pack, parse_pack, parse_pack_text, shipped_packs
from runoff.compliance.taxonomy import Jurisdiction, RuleStatus

# Every id of the research catalogue (../shared/research/compliance.md) except the five cross-jurisdiction
# engine behaviours X-RET-01, X-CNT-01, X-FREQ-01, X-PRICE-01, X-SCOPE-01 (see docs/compliance.md).
CATALOGUE = {
    "cn": "APR-01 APR-02 CAP-01 CAP-02 CAP-03 CAP-04 CAP-05 CAP-06 CAP-07 PRC-01 PRC-02 PRC-03 PRC-04 PRC-05 "
    "LMT-01 NTC-01 NTC-02 CLOSE-01 CLOSE-02 COL-01 COL-02 COL-03 COL-04 COL-05 COL-06 CR-01 CR-02 PI-01 PI-02 "
    "PI-03 PI-04 PI-05 PI-06 PI-07 RET-01 RET-02",
    "us": "Z-01 Z-02 Z-03 Z-04 Z-05 Z-06 Z-07 Z-08 B-01 B-02 F-01 F-02 F-03 F-04 F-05 F-06 F-07 F-08 F-09 TCPA-01 "
    "ST-01 ST-02 UDAAP-01 FCRA-01 FCRA-02 FCRA-03 FCRA-04 MLA-01 BNPL-01",
    "eu": "CCD-00 CCD-01 CCD-02 CCD-03 CCD-04 CCD-05 CCD-06 CCD-07 CCD-08 CCD-09 CCD-10 IE-01 GDPR-01 AML-01",
    "uk": "CONC-01 CONC-02 CONC-03 CD-01 CCA-01",
}


def _rule(rule_id):
    return next(r for p in shipped_packs() for r in p.rules if r.id == rule_id)


@pytest.mark.parametrize("code", [j.value for j in Jurisdiction])
def test_each_pack_holds_exactly_the_catalogue_rules_of_its_jurisdiction(code):
    expected = {f"{code.upper()}-{suffix}" for suffix in CATALOGUE[code].split()}
    assert {r.id for r in load_pack(code).rules} == expected


def test_there_are_84_rules_each_with_a_citation_and_a_status():
    rules = [r for p in shipped_packs() for r in p.rules]
    assert len(rules) == 84 == len({r.id for r in rules})
    for rule in rules:
        assert rule.citation.strip(), rule.id
        assert isinstance(rule.status, RuleStatus), rule.id
        assert rule.title.strip(), rule.id


@pytest.mark.parametrize(
    ("rule_id", "status"),
    [
        ("CN-APR-01", "confirmed"),
        ("CN-CAP-03", "secondary"),
        ("CN-CLOSE-01", "unconfirmed"),
        ("CN-COL-02", "secondary"),
        ("CN-COL-03", "secondary"),
        ("CN-COL-06", "unconfirmed"),
        ("US-F-02", "confirmed"),
        ("EU-CCD-08", "secondary"),
        ("EU-CCD-10", "unconfirmed"),
        ("UK-CCA-01", "confirmed"),
    ],
)
def test_status_is_the_catalogues(rule_id, status):
    assert _rule(rule_id).status.value == status


def test_a_parameter_block_may_be_less_sure_than_its_rule():
    ntc = _rule("CN-NTC-02")
    assert [p.status for p in ntc.parameters] == [None, RuleStatus.UNCONFIRMED]
    cap04 = _rule("CN-CAP-04")
    assert (cap04.status, cap04.parameters[0].status) == (RuleStatus.CONFIRMED, RuleStatus.SECONDARY)


def test_catalogue_parameters_are_encoded_as_numbers():
    col02 = _rule("CN-COL-02")
    window = next(p for p in col02.parameters if isinstance(p, ContactWindow))
    freq = next(p for p in col02.parameters if isinstance(p, ContactFrequency))
    assert (window.start, window.end, window.end_inclusive) == (time(8), time(22), False)
    assert (freq.max_count, freq.per, freq.key, freq.connected) == (3, "local-day", ("customer_id",), True)
    f02 = next(p for p in _rule("US-F-02").parameters if isinstance(p, ContactFrequency))
    assert (f02.max_count, f02.days, f02.key) == (7, 7, ("customer_id", "debt_id"))
    comp = next(p for p in _rule("EU-CCD-04").parameters if isinstance(p, SettlementCompensationCap))
    assert (comp.rate_long, comp.rate_short, comp.threshold_months) == (Decimal("0.01"), Decimal("0.005"), 12)
    cap01 = next(p for p in _rule("CN-CAP-01").parameters if isinstance(p, RateCap))
    assert (cap01.reference, cap01.multiple, cap01.date_basis) == ("cn-lpr-1y", 4, "formation-date")


def test_the_lpr_is_a_dated_table_with_a_source_per_row():
    lpr = load_pack("cn").references["cn-lpr-1y"]
    assert lpr.value_on(date(2020, 8, 20)) == Decimal("0.0385")
    assert lpr.value_on(date(2025, 5, 19)) == Decimal("0.0310")
    assert lpr.value_on(date(2025, 5, 20)) == Decimal("0.0300")
    assert lpr.value_on(date(2020, 1, 1)) is None
    assert all(row.source for row in lpr.rows)


def test_myth_window_is_not_encoded_in_the_nifa_convention():
    # the catalogue warns that 08:00–21:00 is NOT in the 2018 convention; the 22:00 ban is CN-COL-02/03's
    assert not any(isinstance(p, ContactWindow) for p in _rule("CN-COL-01").parameters)


def _pack(**rule_changes):
    rule = {
        "id": "CN-TEST-01",
        "title": "a test rule",
        "kind": "prohibition",
        "citation": "nowhere",
        "status": "confirmed",
        "parameters": [{"check": "prohibition", "object": "contact", "when": {"abusive_language": True}, "act": "x"}],
    }
    rule.update(rule_changes)
    return {"jurisdiction": "cn", "title": "test", "rules": [rule]}


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (_pack(citation=""), "`rules.0.citation`"),
        (_pack(status="probably"), "`rules.0.status`"),
        (
            _pack(parameters=[{"check": "prohibition", "object": "contact", "when": {"shouted": True}, "act": "x"}]),
            "`when.shouted` is not a fact of a contact",
        ),
        (
            _pack(parameters=[{"check": "prohibition", "object": "contact", "when": {"party": "neighbour"}, "act": "x"}]),
            "`when.party` value 'neighbour' is not allowed",
        ),
        (_pack(parameters=[{"check": "rate-cap", "reference": "lpr", "multiple": 4}]), "reference 'lpr'"),
        (_pack(parameters=[{"check": "contact-window", "start": "22:00", "end": "08:00"}]), "must come before"),
        (_pack(parameters=[{"check": "notice-timing", "notice_types": ["closure"], "days": 3, "months": 1}]), "exactly one"),
        (_pack(id="US-TEST-01"), "id prefix does not match"),
        (_pack(effective_from="2026-02-01", effective_to="2026-01-01"), "effective_to"),
        (_pack(parameters=[{"check": "teleport"}]), "`rules.0.parameters.0`"),
    ],
    ids=[
        "no-citation", "bad-status", "unknown-fact", "bad-enum-value", "undefined-reference", "window-backwards",
        "two-periods", "wrong-prefix", "dates-backwards", "unknown-check",
    ],
)  # fmt: skip
def test_a_bad_pack_gets_one_clear_message(data, named):
    with pytest.raises(RulePackInvalid, match=named):
        parse_pack(data, source="test.yaml")


def test_duplicate_ids_and_yaml_errors_are_reported():
    pack = _pack()
    pack["rules"] = pack["rules"] * 2
    with pytest.raises(RulePackInvalid, match="CN-TEST-01 appears twice"):
        parse_pack(pack)
    with pytest.raises(RulePackInvalid, match="not valid YAML at line 2"):
        parse_pack_text("jurisdiction: cn\ntitle: a: b\n", source="bad.yaml")


def test_pack_round_trips_through_yaml():
    text = yaml.safe_dump(_pack())
    assert parse_pack_text(text).rules[0].id == "CN-TEST-01"
