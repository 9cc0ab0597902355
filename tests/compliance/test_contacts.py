"""Collection contacts: local-time windows, frequencies per counting key, cool-offs, third parties, opt-outs."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from runoff.compliance.contacts import check_contacts, parse_contact_rows
from runoff.compliance.facts import OptOut
from runoff.compliance.taxonomy import Severity
from runoff.errors import InvalidInput
from tests.compliance.factories import contact, ids, profile

# --- windows ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "refused"),
    [
        ("2026-03-02 07:59", True),
        ("2026-03-02 08:00", False),
        ("2026-03-02 21:59", False),
        ("2026-03-02 21:59:59", False),
        ("2026-03-02 22:00", True),
        ("2026-03-02 23:30", True),
    ],
    ids=["07:59", "08:00", "21:59", "21:59:59", "22:00", "23:30"],
)
def test_china_window_allows_08_00_to_21_59_local(cfc, local, refused):
    found = check_contacts([contact("k", local)], cfc)
    window = [f for f in found if f.rule_id in ("CN-COL-02", "CN-COL-03")]
    assert bool(window) is refused
    if refused:
        assert {f.rule_id for f in window} == {"CN-COL-02", "CN-COL-03"}
        assert "outside the allowed window" in window[0].message


def test_the_same_instant_is_fine_in_shanghai_and_refused_in_tokyo(cfc):
    instant = datetime(2026, 3, 2, 13, 30, tzinfo=ZoneInfo("UTC"))  # 21:30 in Shanghai, 22:30 in Tokyo
    shanghai = contact("sh", "2026-03-02 21:30").model_copy(update={"at": instant})
    tokyo = contact("tk", "2026-03-02 22:30", zone="Asia/Tokyo", customer="T").model_copy(update={"at": instant})
    found = check_contacts([shanghai, tokyo], cfc)
    assert {f.object_id for f in found} == {"tk"}
    assert "22:30 Asia/Tokyo" in found[0].message


def test_us_reg_f_window_counts_9_pm_itself_as_allowed():
    agency = profile(jurisdictions=["us"], lender_type="bank", collector_types=["agency"])
    ny = {"zone": "America/New_York", "region": "US-NY", "collector_type": "agency", "debt_id": "D"}
    found = check_contacts(
        [
            contact("a", "2026-03-02 21:00", **ny),
            contact("b", "2026-03-02 21:01", customer="B", **ny),
            contact("c", "2026-03-02 07:59", customer="E", **ny),
        ],
        agency,
    )
    assert {(f.rule_id, f.object_id) for f in found} == {("US-F-03", "b"), ("US-F-03", "c")}
    assert all(f.severity is Severity.BLOCK for f in found)


def test_window_is_waived_when_the_debtor_agreed_to_the_time():
    cfc_without_cba = profile(lender_type="microloan")  # CN-COL-02 binds microloans, CN-COL-03 does not
    found = check_contacts([contact("k", "2026-03-02 22:30", agreed_time=True)], cfc_without_cba)
    assert found == []


def test_ireland_refuses_sundays_and_public_holidays_but_not_saturdays():
    irish = profile(jurisdictions=["eu"], lender_type="bank")
    ie = {"zone": "Europe/Dublin", "region": "IE"}
    found = check_contacts(
        [
            contact("sat", "2026-03-14 10:00", customer="A", **ie),
            contact("sun", "2026-03-15 10:00", customer="B", **ie),
            contact("patrick", "2026-03-17 10:00", customer="C", **ie),  # St Patrick's Day, a Tuesday
            contact("tue", "2026-03-24 10:00", customer="D", **ie),
            contact("late", "2026-03-24 21:00", customer="E", **ie),
        ],
        irish,
    )
    assert {f.object_id for f in found if f.rule_id == "EU-IE-01"} == {"sun", "patrick", "late"}


def test_irish_rules_do_not_reach_a_customer_in_germany():
    irish = profile(jurisdictions=["eu"], lender_type="bank")
    found = check_contacts([contact("sun", "2026-03-15 10:00", zone="Europe/Berlin", region="DE")], irish)
    assert found == []


def test_massachusetts_window_is_eastern_time_whatever_the_customer_zone():
    first_party = profile(jurisdictions=["us"], lender_type="bank")
    # a Massachusetts debtor travelling in California: 18:30 Pacific is 21:30 Eastern
    found = check_contacts(
        [contact("k", "2026-03-02 18:30", zone="America/Los_Angeles", region="US-MA", debt_id="D")], first_party
    )
    assert ids(found) == ["US-ST-01"]
    assert "America/New_York" in found[0].message


# --- frequency -------------------------------------------------------------------------------------


def _calls(n: int, *, day: str = "2026-03-02", **kw) -> list:
    return [contact(f"k{i + 1}", f"{day} {9 + i:02d}:00", **kw) for i in range(n)]


def test_third_connected_call_passes_and_the_fourth_is_refused(cfc):
    assert [f for f in check_contacts(_calls(3, connected=True), cfc) if f.rule_id == "CN-COL-02"] == []
    found = [f for f in check_contacts(_calls(4, connected=True), cfc) if f.rule_id == "CN-COL-02"]
    assert [f.object_id for f in found] == ["k4"]
    assert (
        found[0].message == "CN-COL-02 (secondary source): 4 connected calls to customer C on 2026-03-02, limit 3 a day"
    )
    assert found[0].severity is Severity.WARN  # secondary source: warns unless the profile blocks on it


def test_unconfirmed_frequency_blocks_when_the_profile_says_so():
    strict = profile(collector_types=["first-party", "agency"], block_on_unconfirmed=True)
    found = [f for f in check_contacts(_calls(4, connected=True), strict) if f.rule_id == "CN-COL-02"]
    assert [f.severity for f in found] == [Severity.BLOCK]


def test_connected_calls_are_counted_across_agencies_and_the_lender(cfc):
    calls = [
        contact("own", "2026-03-02 09:00", connected=True, collector_type="first-party"),
        contact("a1", "2026-03-02 10:00", connected=True, collector_type="agency", agency_id="A1"),
        contact("a2", "2026-03-02 11:00", connected=True, collector_type="agency", agency_id="A2"),
        contact("a3", "2026-03-02 12:00", connected=True, collector_type="agency", agency_id="A3"),
    ]
    assert [f.object_id for f in check_contacts(calls, cfc) if f.rule_id == "CN-COL-02"] == ["a3"]


def test_unanswered_attempts_do_not_count_as_connected_calls(cfc):
    found = check_contacts(_calls(5, connected=False, address="138"), cfc)
    assert [f for f in found if f.rule_id == "CN-COL-02"] == []


def test_calls_are_counted_per_local_day_of_the_customer_not_per_utc_day(cfc):
    # a customer of a Chinese lender living in New York: 20:00 local is already the next day in UTC
    calls = [
        contact(f"k{h}", f"2026-03-02 {h:02d}:00", zone="America/New_York", connected=True) for h in (9, 12, 18, 20)
    ]
    found = [f for f in check_contacts(calls, cfc) if "connected calls" in f.message]
    assert [f.object_id for f in found] == ["k20"]


@pytest.mark.parametrize(("attempts", "refused"), [(6, []), (7, ["k7"])], ids=["6th-passes", "7th-refused"])
def test_cba_counts_unanswered_attempts_per_number_per_day(cfc, attempts, refused):
    calls = [contact(f"k{i + 1}", f"2026-03-02 {9 + i:02d}:00", address="138") for i in range(attempts)]
    found = [f for f in check_contacts(calls, cfc) if f.rule_id == "CN-COL-03"]
    assert [f.object_id for f in found] == refused


def test_cba_attempts_to_two_numbers_are_counted_apart(cfc):
    calls = [contact(f"k{i}", f"2026-03-02 {9 + i:02d}:00", address="138" if i % 2 else "139") for i in range(12)]
    assert [f for f in check_contacts(calls, cfc) if f.rule_id == "CN-COL-03"] == []


def test_cba_rule_starts_on_30_january_2026(cfc):
    before = [contact(f"k{i}", f"2026-01-29 {9 + i:02d}:00", address="138") for i in range(8)]
    after = [contact(f"j{i}", f"2026-01-30 {9 + i:02d}:00", address="139") for i in range(8)]
    found = [f for f in check_contacts(before + after, cfc) if f.rule_id == "CN-COL-03"]
    assert {f.object_id for f in found} == {"j6", "j7"}


US_AGENCY = {"zone": "America/Chicago", "region": "US-IL", "collector_type": "agency", "debt_id": "D1"}


def _agency():
    return profile(jurisdictions=["us"], lender_type="bank", collector_types=["agency"])


def test_reg_f_eighth_call_in_seven_days_is_refused_and_the_window_rolls():
    calls = [contact(f"d{i}", f"2026-03-0{i} 10:00", **US_AGENCY) for i in range(2, 9)]  # one a day, 2..8 March
    calls.append(contact("d8-again", "2026-03-08 15:00", **US_AGENCY))  # the 8th call in 2..8 March
    calls.append(contact("d10", "2026-03-10 10:00", **US_AGENCY))  # 4..10 March holds 7 calls again
    found = [f for f in check_contacts(calls, _agency()) if f.rule_id == "US-F-02"]
    assert [f.object_id for f in found] == ["d8-again"]
    assert "8 calls to customer C about debt D1 in the 7 days to 2026-03-08, limit 7 in 7 days" in found[0].message


def test_reg_f_counts_per_debt():
    calls = [
        contact(f"d{i}", f"2026-03-0{i} 10:00", **{**US_AGENCY, "debt_id": "D1" if i % 2 else "D2"})
        for i in range(1, 9)
    ]
    assert [f for f in check_contacts(calls, _agency()) if f.rule_id == "US-F-02"] == []


@pytest.mark.parametrize(("day", "refused"), [("08", True), ("09", False)], ids=["day-7", "day-8"])
def test_reg_f_cool_off_after_a_conversation(day, refused):
    talk = contact("talk", "2026-03-02 10:00", connected=True, **US_AGENCY)
    later = contact("later", f"2026-03-{day} 10:00", **US_AGENCY)
    found = [f for f in check_contacts([talk, later], _agency()) if f.rule_id == "US-F-02"]
    assert [f.object_id for f in found] == (["later"] if refused else [])


def test_reg_f_calls_with_fresh_consent_are_excluded():
    talk = contact("talk", "2026-03-02 10:00", connected=True, **US_AGENCY)
    consent = datetime(2026, 3, 3, 9, tzinfo=ZoneInfo("America/Chicago"))
    later = contact("later", "2026-03-03 10:00", consent_given_at=consent, **US_AGENCY)
    assert [f for f in check_contacts([talk, later], _agency()) if f.rule_id == "US-F-02"] == []


def test_reg_f_does_not_bind_a_creditor_collecting_its_own_debts():
    first_party = profile(jurisdictions=["us"], lender_type="bank")
    calls = [
        contact(f"d{i}", f"2026-03-0{i} 22:30", **{**US_AGENCY, "collector_type": "first-party"}) for i in range(1, 10)
    ]
    assert check_contacts(calls, first_party) == []


def test_a_lender_with_both_kinds_checks_reg_f_only_on_agency_contacts():
    both = profile(jurisdictions=["us"], lender_type="bank", collector_types=["first-party", "agency"])
    own = contact("own", "2026-03-02 22:30", **{**US_AGENCY, "collector_type": "first-party"})
    agency = contact("agency", "2026-03-02 22:30", customer="B", **US_AGENCY)
    assert [f.object_id for f in check_contacts([own, agency], both)] == ["agency"]


@pytest.mark.parametrize(("calls", "refused"), [(2, []), (3, ["k3"])], ids=["2nd-passes", "3rd-refused"])
def test_massachusetts_limits_creditors_to_two_calls_in_seven_days(calls, refused):
    first_party = profile(jurisdictions=["us"], lender_type="bank")
    ma = {"zone": "America/New_York", "region": "US-MA", "debt_id": "D"}
    log = [contact(f"k{i + 1}", f"2026-03-0{2 + 2 * i} 10:00", **ma) for i in range(calls)]
    assert [f.object_id for f in check_contacts(log, first_party)] == refused


# --- third parties ---------------------------------------------------------------------------------


def test_contact_person_may_be_asked_to_restore_contact_only_when_the_debtor_is_unreachable(cfc):
    reachable = contact("r", "2026-03-02 10:00", party="emergency-contact", purpose="restore-contact")
    unreachable = contact(
        "u", "2026-03-02 10:00", customer="B", party="emergency-contact", purpose="restore-contact",
        debtor_unreachable=True,
    )  # fmt: skip
    demand = contact(
        "d", "2026-03-02 10:00", customer="E", party="emergency-contact", purpose="collection", debtor_unreachable=True
    )
    found = check_contacts([reachable, unreachable, demand], cfc)
    by_object = {}
    for f in found:
        by_object.setdefault(f.object_id, set()).add(f.rule_id)
    assert "u" not in by_object
    assert by_object["r"] == {"CN-COL-01"}
    assert {"CN-COL-01", "CN-COL-02", "CN-COL-03"} <= by_object["d"]


def test_debt_related_third_party_is_not_an_unrelated_one_for_the_cba(cfc):
    spouse = contact(
        "s", "2026-03-02 10:00", party="family", purpose="collection", debtor_unreachable=True, debt_related_party=True
    )
    assert "CN-COL-03" not in ids(check_contacts([spouse], cfc))


def test_fdcpa_third_party_is_contacted_once_and_never_told_of_the_debt():
    log = [
        contact("t1", "2026-03-02 10:00", party="third-party", third_party_id="N", purpose="location", **US_AGENCY),
        contact("t2", "2026-03-05 10:00", party="third-party", third_party_id="N", purpose="location", **US_AGENCY),
        contact(
            "t3", "2026-03-05 11:00", party="third-party", third_party_id="M", purpose="location",
            debt_disclosed=True, **US_AGENCY,
        ),
    ]  # fmt: skip
    found = check_contacts(log, _agency())
    assert {(f.rule_id, f.object_id) for f in found} == {("US-F-06", "t2"), ("US-F-06", "t3")}


def test_visits_need_two_collectors_under_the_cba_guideline(cfc):
    found = check_contacts(
        [
            contact("one", "2026-03-02 10:00", channel="visit", visitors=1, place="home"),
            contact("two", "2026-03-02 10:00", customer="B", channel="visit", visitors=2, place="home"),
        ],
        cfc,
    )
    assert [(f.rule_id, f.object_id) for f in found] == [("CN-COL-03", "one")]


# --- opt-outs --------------------------------------------------------------------------------------


def test_reg_f_email_after_an_opt_out_is_refused_and_before_it_is_not():
    received = datetime(2026, 3, 2, 12, tzinfo=ZoneInfo("America/Chicago"))
    opt_out = OptOut(customer_id="C", channel="email", address="c@example.com", received_at=received)
    mail = {"channel": "email", "address": "c@example.com", **US_AGENCY}
    log = [contact("before", "2026-03-02 11:59", **mail), contact("after", "2026-03-02 12:01", **mail)]
    found = check_contacts(log, _agency(), opt_outs=[opt_out])
    assert [(f.rule_id, f.object_id) for f in found] == [("US-F-05", "after")]


@pytest.mark.parametrize(
    ("local", "refused"),
    [("2026-03-16 10:00", False), ("2026-03-17 10:00", True)],
    ids=["10th-business-day", "11th-business-day"],
)
def test_tcpa_revocation_takes_effect_within_ten_business_days(local, refused):
    first_party = profile(jurisdictions=["us"], lender_type="bank")
    received = datetime(2026, 3, 2, 9, tzinfo=ZoneInfo("America/Chicago"))  # Monday
    opt_out = OptOut(customer_id="C", channel="call", received_at=received)
    call = contact("robo", local, zone="America/Chicago", region="US-IL", debt_id="D", autodialed=True, address="312")
    found = check_contacts([call], first_party, opt_outs=[opt_out])
    assert [f.rule_id for f in found] == (["US-TCPA-01"] if refused else [])


# --- parsing ---------------------------------------------------------------------------------------


def test_contact_rows_parse_with_defaults_for_empty_cells():
    rows = [
        {
            "contact_id": "k1",
            "customer_id": "C",
            "at": "2026-03-02T21:59:00+08:00",
            "time_zone": "Asia/Shanghai",
            "connected": "true",
            "debt_id": "",
        }
    ]
    (parsed,) = parse_contact_rows(rows)
    assert parsed.connected is True and parsed.debt_id is None and parsed.channel.value == "call"


@pytest.mark.parametrize(
    ("row", "named"),
    [
        ({"at": "2026-03-02T21:59:00"}, "no time zone"),
        ({"time_zone": "Mars/Olympus"}, "IANA time zone"),
        ({"channel": "pigeon"}, "`channel`"),
        ({"party": "neighbour"}, "`party`"),
    ],
    ids=["naive-timestamp", "unknown-zone", "unknown-channel", "unknown-party"],
)
def test_a_bad_contact_row_names_its_line_and_field(row, named):
    base = {"contact_id": "k1", "customer_id": "C", "at": "2026-03-02T21:59:00+08:00", "time_zone": "Asia/Shanghai"}
    with pytest.raises(InvalidInput, match=named) as caught:
        parse_contact_rows([base, {**base, **row}], source="log.csv")
    assert "log.csv line 3" in caught.value.message


def test_attempts_without_a_number_are_counted_per_customer_never_pooled_across_customers(cfc):
    many_customers = [contact(f"k{i}", f"2026-03-02 {9 + i:02d}:00", customer=f"C{i}") for i in range(8)]
    assert [f for f in check_contacts(many_customers, cfc) if f.rule_id == "CN-COL-03"] == []
    one_customer = [contact(f"k{i}", f"2026-03-02 {9 + i:02d}:00") for i in range(7)]
    assert [f.object_id for f in check_contacts(one_customer, cfc) if f.rule_id == "CN-COL-03"] == ["k6"]
