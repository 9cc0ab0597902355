"""Retention: for each data category the longest legal floor after closure, and the rule behind it."""

from datetime import date

from runoff.compliance.engine import retention_floors
from runoff.compliance.taxonomy import DataCategory, RetentionAnchor
from tests.compliance.factories import profile

AS_OF = date(2026, 3, 1)


def _by_category(floors):
    return {f.category: f for f in floors}


def test_china_keeps_identity_and_collection_records_five_years_after_closure():
    floors = _by_category(retention_floors(profile(lender_type="bank"), as_of=AS_OF, closed_on=date(2027, 6, 30)))
    assert floors[DataCategory.CUSTOMER_IDENTITY].months == 60
    assert floors[DataCategory.CUSTOMER_IDENTITY].keep_until == date(2032, 6, 30)
    assert floors[DataCategory.COLLECTION_RECORDS].rule_id == "CN-COL-01"
    negative = floors[DataCategory.NEGATIVE_CREDIT_INFORMATION]
    assert (negative.counted_from, negative.delete_after, negative.keep_until) == (
        RetentionAnchor.END_OF_ADVERSE_EVENT,
        True,
        None,  # counted from the adverse event, not from closure
    )
    assert DataCategory.PLATFORM_ORDERS not in floors  # binds the e-commerce platform only


def test_the_longest_floor_wins_and_the_shorter_ones_are_named():
    both = profile(jurisdictions=["cn", "us"], lender_type="bank", collector_types=["first-party", "agency"])
    floors = _by_category(retention_floors(both, as_of=AS_OF))
    collection = floors[DataCategory.COLLECTION_RECORDS]
    assert (collection.rule_id, collection.months, collection.also) == ("CN-COL-01", 60, ("US-F-08",))
    assert floors[DataCategory.CALL_RECORDINGS].rule_id == "US-F-08"
    assert floors[DataCategory.ADVERSE_ACTION_RECORDS].months == 25


def test_reg_f_records_floor_binds_agencies_not_a_first_party_us_lender():
    floors = _by_category(retention_floors(profile(jurisdictions=["us"], lender_type="bank"), as_of=AS_OF))
    assert set(floors) == {DataCategory.ADVERSE_ACTION_RECORDS}


def test_eu_aml_floor_and_platform_orders_for_an_e_commerce_platform():
    platform = profile(jurisdictions=["cn", "eu"], lender_type="microloan", roles=["e-commerce-platform"])
    floors = _by_category(retention_floors(platform, as_of=AS_OF))
    assert floors[DataCategory.PLATFORM_ORDERS].months == 36
    identity = floors[DataCategory.CUSTOMER_IDENTITY]
    assert identity.months == 60 and set(identity.also) | {identity.rule_id} == {"CN-RET-01", "EU-AML-01"}
