from datetime import date

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runoff.portfolio.schemas import LOANS
from runoff.portfolio.tape import (
    Reason,
    TapeInvalid,
    assign_ids,
    book_loans,
    check_tape,
    convert_tape,
    identify,
    ledger_opening,
    parse_mapping,
    quarantine_rows,
    tape_positions,
    tape_rules,
)

AS_OF = date(2024, 6, 30)

CN_MAPPING = {
    "columns": {
        "loan_id": "借据号",
        "customer_id": "客户号",
        "originated_on": "放款日期",
        "principal_fen": "本金",
        "term_months": "期数",
        "annual_rate": {"source": "年利率", "scale": "percent"},
        "fee_rate": "月费率",
        "method": "还款方式",
        "maturity_on": "到期日",
        "principal_balance_fen": "剩余本金",
        "dpd": "逾期天数",
        "status": "贷款状态",
        "oldest_unpaid_due_on": "最早未还款日",
    },
    "date_formats": ["%Y/%m/%d", "%Y%m%d", "%Y-%m-%d"],
    "amount_unit": "yuan",
}

GOOD = {
    "借据号": "1001",
    "客户号": "1",
    "放款日期": "2024/01/31",
    "本金": "1,200.00",
    "期数": "12",
    "年利率": "18",
    "月费率": "",
    "还款方式": "等额本息",
    "到期日": "20250131",
    "剩余本金": "600.50",
    "逾期天数": "0",
    "贷款状态": "正常",
    "最早未还款日": "",
}


def tape(*rows: dict[str, str]) -> pl.DataFrame:
    return pl.DataFrame([{**GOOD, **r} for r in rows], schema=dict.fromkeys(GOOD, pl.String))


def check(raw: pl.DataFrame, *, mapping=None, loaded=None, customers=None):
    m = parse_mapping(mapping or CN_MAPPING)
    rules = tape_rules(m, as_of=AS_OF, loaded_loan_refs=loaded, known_customer_refs=customers)
    return check_tape(convert_tape(raw, m), rules)


def identified(result) -> pl.DataFrame:
    """Accepted rows with book ids, as a first import into an empty book gives them."""
    return identify(result.accepted, id_maps={}, floors={}).rows


# --- mapping --------------------------------------------------------------------------------------------------


def test_chinese_mapping_reads_a_chinese_tape_into_typed_fields():
    converted = convert_tape(tape({}), parse_mapping(CN_MAPPING))
    row = converted.row(0, named=True)
    assert (row["loan_id"], row["customer_id"]) == ("1001", "1")  # references, as text
    assert row["originated_on"] == date(2024, 1, 31)
    assert row["maturity_on"] == date(2025, 1, 31)
    assert row["principal_fen"] == 120_000
    assert row["principal_balance_fen"] == 60_050
    assert row["annual_rate"] == pytest.approx(0.18)
    assert row["fee_rate"] is None
    assert row["method"] == "equal-installment"
    assert row["status"] == "current"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"columns": {"loan_number": "借据号"}}, "loan_number"),
        ({"columns": {"loan_id": "借据号", "customer_id": "借据号"}}, "借据号"),
        ({"columns": {"loan_id": {"source": "借据号", "unit": "fen"}}}, "unit"),
        ({"method_aliases": {"EPI": "balloon"}}, "balloon"),
        ({"status_aliases": {"坏账": "lost"}}, "lost"),
        ({"date_formats": ["yyyy-mm-dd"]}, "yyyy-mm-dd"),
        ({"amount_unit": "jiao"}, "amount_unit"),
        ({"surprise": 1}, "surprise"),
    ],
    ids=[
        "unknown-field",
        "one-source-two-fields",
        "unit-on-an-id",
        "bad-method-alias",
        "bad-status-alias",
        "format-without-directives",
        "unknown-unit",
        "unknown-key",
    ],
)
def test_bad_mapping_gets_one_message_naming_the_problem(data, field):
    with pytest.raises(TapeInvalid, match=field):
        parse_mapping(data)


def test_mapping_method_alias_goes_through_the_one_alias_seam():
    m = parse_mapping({"method_aliases": {"EPI": "等额本息"}})
    assert m.method_aliases["EPI"].value == "equal-installment"


def test_tape_without_a_required_column_is_refused_naming_the_field():
    raw = tape({}).drop("放款日期")
    with pytest.raises(TapeInvalid, match=r"originated_on \(放款日期\)"):
        convert_tape(
            raw,
            parse_mapping(
                {**CN_MAPPING, "columns": {k: v for k, v in CN_MAPPING["columns"].items() if k != "originated_on"}}
            ),
        )


def test_mapping_naming_a_column_the_file_lacks_is_refused():
    raw = tape({}).rename({"期数": "期限"})
    with pytest.raises(TapeInvalid, match="'期数'"):
        convert_tape(raw, parse_mapping(CN_MAPPING))


def test_tape_in_runoffs_own_vocabulary_needs_no_mapping():
    raw = pl.DataFrame(
        {
            "loan_id": ["7"],
            "customer_id": ["3"],
            "originated_on": ["2024-02-01"],
            "principal_fen": ["100000"],
            "term_months": ["6"],
            "fee_rate": ["0.006"],
            "method": ["flat-fee"],
        }
    )
    result = check(raw, mapping={"amount_unit": "fen"})
    assert result.loaded == 1
    assert result.accepted["principal_fen"].to_list() == [100_000]


# --- conversions ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024/01/31", date(2024, 1, 31)),
        ("20240131", date(2024, 1, 31)),
        ("2024-01-31", date(2024, 1, 31)),
        (" 2024/2/5 ", date(2024, 2, 5)),
        ("2024/02/30", None),
        ("31/01/2024", None),
    ],
    ids=["slashes", "compact", "iso", "unpadded-and-spaces", "no-such-day", "day-first-not-configured"],
)
def test_dates_are_read_in_any_configured_format(text, expected):
    converted = convert_tape(tape({"放款日期": text}), parse_mapping(CN_MAPPING))
    assert converted["originated_on"][0] == expected
    assert converted["__bad__originated_on"][0] is (expected is None)


@pytest.mark.parametrize(
    ("text", "unit", "fen"),
    [
        ("1,234.56", "yuan", 123_456),
        ("¥1234.5", "yuan", 123_450),
        ("1234元", "yuan", 123_400),
        ("-3.5", "yuan", -350),
        ("0.01", "yuan", 1),
        ("999999999.99", "yuan", 99_999_999_999),
        ("1000000000.00", "yuan", None),
        ("1234.5600001", "yuan", 123_456),
        ("1.234", "yuan", None),
        ("12a", "yuan", None),
        ("123456", "fen", 123_456),
        ("1234.5", "fen", None),
    ],
    ids=[
        "thousands",
        "yen-sign",
        "yuan-suffix",
        "negative",
        "one-fen",
        "just-under-a-billion-exact",
        "a-billion-is-too-much",
        "float-noise-is-rounded",
        "three-decimals",
        "letters",
        "fen",
        "fen-with-decimals",
    ],
)
def test_amounts_become_exact_fen_and_sub_fen_amounts_are_refused(text, unit, fen):
    mapping = {**CN_MAPPING, "amount_unit": unit}
    converted = convert_tape(tape({"本金": text}), parse_mapping(mapping))
    assert converted["principal_fen"][0] == fen


@pytest.mark.parametrize(
    ("text", "scale", "rate"),
    [
        ("0.18", "fraction", 0.18),
        ("18", "percent", 0.18),
        ("18%", "fraction", 0.18),
        ("7.2 %", "percent", 0.072),
        ("abc", "fraction", None),
    ],
    ids=["fraction", "percent-column", "percent-sign-wins", "percent-sign-with-space", "text"],
)
def test_rates_are_fractions_whatever_the_source_writes(text, scale, rate):
    mapping = {**CN_MAPPING, "columns": {**CN_MAPPING["columns"], "annual_rate": {"source": "年利率", "scale": scale}}}
    converted = convert_tape(tape({"年利率": text}), parse_mapping(mapping))
    got = converted["annual_rate"][0]
    assert got == (pytest.approx(rate) if rate is not None else None)


@pytest.mark.parametrize(
    ("text", "method"),
    [
        ("等额本息", "equal-installment"),
        ("等额本金", "equal-principal"),
        ("等本等费", "flat-fee"),
        ("先息后本", "interest-only"),
        (" Annuity ", "equal-installment"),
        ("EPI", "equal-installment"),
        ("balloon", None),
    ],
    ids=["等额本息", "等额本金", "等本等费", "先息后本", "english-alias-any-case", "mapping-alias", "unknown"],
)
def test_method_aliases_map_to_one_method(text, method):
    mapping = {**CN_MAPPING, "method_aliases": {"EPI": "等额本息"}}
    converted = convert_tape(tape({"还款方式": text}), parse_mapping(mapping))
    assert converted["method"][0] == method


def test_excel_style_typed_cells_are_read_like_text():
    raw = tape({}).with_columns(
        pl.lit(20240131.0).alias("放款日期"),
        pl.lit(1234.56).alias("本金"),
        pl.lit(12.0).alias("期数"),
        pl.lit(1001.0).alias("借据号"),
        pl.lit(date(2025, 1, 31)).alias("到期日"),
    )
    row = convert_tape(raw, parse_mapping(CN_MAPPING)).row(0, named=True)
    assert row["originated_on"] == date(2024, 1, 31)
    assert row["principal_fen"] == 123_456
    assert row["term_months"] == 12
    assert row["loan_id"] == "1001"  # not "1001.0"
    assert row["maturity_on"] == date(2025, 1, 31)


# --- checks ---------------------------------------------------------------------------------------------------

BAD_ROWS = [
    ({"本金": "12,3x"}, "principal_fen", Reason.UNPARSEABLE),
    ({"放款日期": "2024/13/01"}, "originated_on", Reason.UNPARSEABLE),
    ({"借据号": "DK" + "0" * 63}, "loan_id", Reason.UNPARSEABLE),
    ({"还款方式": "气球贷"}, "method", Reason.UNPARSEABLE),
    ({"贷款状态": "可疑"}, "status", Reason.UNPARSEABLE),
    ({"借据号": ""}, "loan_id", Reason.MISSING),
    ({"客户号": " "}, "customer_id", Reason.MISSING),
    ({"期数": ""}, "term_months", Reason.MISSING),
    ({"年利率": ""}, "annual_rate", Reason.MISSING),
    ({"还款方式": "等本等费", "年利率": "", "月费率": ""}, "fee_rate", Reason.MISSING),
    ({"本金": "-100"}, "principal_fen", Reason.NOT_POSITIVE),
    ({"本金": "0"}, "principal_fen", Reason.NOT_POSITIVE),
    ({"剩余本金": "-1"}, "principal_balance_fen", Reason.NEGATIVE),
    ({"年利率": "150"}, "annual_rate", Reason.RATE_RANGE),
    ({"年利率": "-1"}, "annual_rate", Reason.RATE_RANGE),
    ({"期数": "0"}, "term_months", Reason.TERM_RANGE),
    ({"期数": "361"}, "term_months", Reason.TERM_RANGE),
    ({"逾期天数": "-3"}, "dpd", Reason.NEGATIVE),
    ({"放款日期": "2024/07/01", "到期日": "2025/07/01"}, "originated_on", Reason.START_AFTER_AS_OF),
    ({"到期日": "2023/12/31"}, "maturity_on", Reason.DUE_BEFORE_START),
    (
        {"最早未还款日": "2024/01/01", "逾期天数": "181", "贷款状态": "逾期"},
        "oldest_unpaid_due_on",
        Reason.DUE_BEFORE_START,
    ),
    ({"剩余本金": "1200.01"}, "principal_balance_fen", Reason.BALANCE_ABOVE_PRINCIPAL),
    ({"逾期天数": "5", "贷款状态": "正常"}, "dpd", Reason.DPD_STATUS),
    ({"逾期天数": "5", "贷款状态": "结清"}, "dpd", Reason.DPD_STATUS),
    ({"逾期天数": "200", "贷款状态": "逾期"}, "dpd", Reason.DPD_AGE),
    ({"逾期天数": "10", "贷款状态": "逾期", "最早未还款日": "2024/05/31"}, "dpd", Reason.DPD_DUE_DATE),
    ({"逾期天数": "3", "贷款状态": "逾期", "最早未还款日": "2024/07/31"}, "dpd", Reason.DPD_DUE_DATE),
]


@pytest.mark.parametrize(
    ("patch", "column", "reason"),
    BAD_ROWS,
    ids=[
        "amount-text",
        "month-13",
        "id-too-long",
        "unknown-method",
        "unknown-status",
        "no-loan-id",
        "blank-customer",
        "no-term",
        "no-annual-rate",
        "flat-fee-without-fee-rate",
        "negative-principal",
        "zero-principal",
        "negative-balance",
        "rate-150pct",
        "negative-rate",
        "term-0",
        "term-361",
        "negative-dpd",
        "drawn-after-tape-date",
        "maturity-before-drawing",
        "unpaid-due-before-drawing",
        "balance-above-principal",
        "dpd-while-current",
        "dpd-while-paid-off",
        "dpd-older-than-loan",
        "dpd-vs-due-date",
        "dpd-with-future-due-date",
    ],
)
def test_each_kind_of_bad_row_is_rejected_with_its_reason_and_column(patch, column, reason):
    result = check(tape({"借据号": "1"}, {"借据号": "2", **patch}, {"借据号": "3"}))
    assert result.accepted["row"].to_list() == [1, 3]
    rejected = result.rejected.row(0, named=True)
    assert (rejected["row"], rejected["column"], rejected["reason"]) == (2, column, reason.value)
    assert f"{column}:{reason.value}" in rejected["reasons"]
    assert result.read == 3 == result.loaded + result.quarantined


def test_a_row_reports_its_first_broken_rule_and_lists_all_of_them():
    result = check(tape({"本金": "abc", "期数": "0", "逾期天数": "9"}))
    row = result.rejected.row(0, named=True)
    assert (row["column"], row["reason"]) == ("principal_fen", "type.unparseable")
    assert row["reasons"] == [
        "principal_fen:type.unparseable",
        "term_months:range.term",
        "dpd:dpd.contradicts_status",
    ]
    assert "'abc'" in row["message"] and "本金" in row["message"]


def test_dpd_matching_the_oldest_unpaid_due_date_passes():
    result = check(tape({"逾期天数": "30", "贷款状态": "逾期", "最早未还款日": "2024/05/31"}))
    assert result.loaded == 1


def test_dpd_tolerance_allows_a_tape_cut_a_day_late():
    raw = tape({"逾期天数": "31", "贷款状态": "逾期", "最早未还款日": "2024/05/31"})
    assert check(raw).quarantined == 1
    assert check(raw, mapping={**CN_MAPPING, "dpd_tolerance_days": 1}).loaded == 1


def test_duplicate_in_file_keeps_the_first_row():
    result = check(tape({"借据号": "5"}, {"借据号": "6"}, {"借据号": "5", "本金": "999"}))
    assert result.accepted["row"].to_list() == [1, 2]
    assert result.rejected.select("row", "reason").rows() == [(3, "duplicate.in_file")]


def test_loan_already_in_the_book_is_a_duplicate():
    result = check(tape({"借据号": "5"}, {"借据号": "6"}), loaded=pl.Series([6, 9]))
    assert result.rejected.select("row", "reason").rows() == [(2, "duplicate.already_loaded")]


def test_unknown_customer_is_rejected_only_when_a_register_is_given():
    raw = tape({"借据号": "5", "客户号": "1"}, {"借据号": "6", "客户号": "2"})
    assert check(raw).loaded == 2
    result = check(raw, customers=pl.Series([1]))
    assert result.rejected.select("row", "column", "reason").rows() == [
        (2, "customer_id", "reference.unknown_customer")
    ]


def test_row_date_wins_over_the_tape_date():
    mapping = {**CN_MAPPING, "columns": {**CN_MAPPING["columns"], "as_of": "数据日期"}}
    raw = tape({"逾期天数": "30", "贷款状态": "逾期", "最早未还款日": "2024/05/31"}).with_columns(
        pl.lit("2024/06/15").alias("数据日期")
    )
    result = check(raw, mapping=mapping)
    assert result.rejected["reason"].to_list() == ["dpd.contradicts_due_date"]
    assert "15 days past due on 2024-06-15" in result.rejected["message"][0]


def test_quarantine_keeps_the_raw_row_as_given():
    raw = tape({"借据号": "1"}, {"借据号": "2", "本金": "1.234"})
    result = check(raw)
    q = quarantine_rows(raw, result.rejected)
    assert q["row"].to_list() == [2]
    assert '"本金":"1.234"' in q["raw"][0]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {k: st.one_of(st.none(), st.text(max_size=12), st.sampled_from([v, ""])) for k, v in GOOD.items()}
        ),
        min_size=1,
        max_size=25,
    )
)
def test_read_always_equals_loaded_plus_quarantined_whatever_the_cells(rows):
    raw = pl.DataFrame(rows, schema=dict.fromkeys(GOOD, pl.String))
    result = check(raw)
    assert result.read == raw.height == result.loaded + result.quarantined
    assert sorted(result.accepted["row"].to_list() + result.rejected["row"].to_list()) == list(range(1, raw.height + 1))


# --- from tape to book ----------------------------------------------------------------------------------------


def test_accepted_rows_become_loans_rows_in_the_books_schema():
    result = check(tape({"借据号": "5", "放款日期": "2024/01/31"}, {"借据号": "6", "剩余本金": "0", "贷款状态": ""}))
    loans = book_loans(identified(result))
    assert LOANS.violations(loans) == []
    first, second = loans.rows(named=True)
    assert first["account_id"] == first["customer_id"] == 1
    assert first["product_id"] == "tape-equal-installment"
    assert first["first_due_on"] == date(2024, 2, 29)  # one month after Jan 31, clamped to month end
    assert first["maturity_on"] == date(2025, 1, 31)
    assert first["vintage"] == "2024-01"
    assert (first["status"], second["status"]) == ("active", "paid-off")


def test_positions_take_dpd_from_the_oldest_unpaid_due_date_when_the_tape_gives_none():
    mapping = {**CN_MAPPING, "columns": {k: v for k, v in CN_MAPPING["columns"].items() if k != "dpd"}}
    result = check(tape({"贷款状态": "逾期", "最早未还款日": "2024/05/31"}).drop("逾期天数"), mapping=mapping)
    positions = tape_positions(identified(result), as_of=AS_OF)
    assert positions.select("dpd", "status", "principal_balance_fen").rows() == [(30, "active", 60_050)]


# --- from tape to ledger --------------------------------------------------------------------------------------


def _opening(patches):
    result = check(tape(*patches))
    rows = identified(result)
    return ledger_opening(book_loans(rows), tape_positions(rows, as_of=AS_OF))


@pytest.mark.parametrize(
    ("patch", "paid_installments"),
    [
        ({"剩余本金": "900.00", "还款方式": "等额本金"}, 3),  # 1,200 over 12: 100 a month, 300 repaid
        ({"剩余本金": "950.00", "还款方式": "等额本金"}, 2),  # 250 repaid: 2 whole installments and half of one
        ({"剩余本金": "", "还款方式": "等额本金"}, 4),  # no balance: what fell due before 30 Jun (Feb–May)
        (
            {
                "剩余本金": "",
                "还款方式": "等额本金",
                "贷款状态": "逾期",
                "逾期天数": "30",
                "最早未还款日": "2024/05/31",
            },
            3,
        ),  # Feb, Mar, Apr paid; May unpaid for 30 days
    ],
    ids=["balance-900", "balance-950-partial", "no-balance", "no-balance-30-dpd"],
)
def test_ledger_opening_repays_principal_oldest_installment_first(patch, paid_installments):
    opening = _opening([{"借据号": "7", **patch}])
    inst = opening.installments.sort("number")
    settled = inst.filter(pl.col("principal_paid_fen") == pl.col("principal_due_fen"))
    assert settled.get_column("number").to_list() == list(range(1, paid_installments + 1))
    assert (settled["interest_paid_fen"] == settled["interest_due_fen"]).all()
    assert inst.filter(pl.col("number") > paid_installments)["interest_paid_fen"].sum() == 0
    assert inst.get_column("due_date").head(3).to_list() == [date(2024, 2, 29), date(2024, 3, 31), date(2024, 4, 30)]
    if patch["剩余本金"]:
        assert int(inst["principal_due_fen"].sum() - inst["principal_paid_fen"].sum()) == int(
            float(patch["剩余本金"]) * 100
        )


def test_ledger_opening_takes_open_loans_only_with_their_own_rate_and_dpd():
    opening = _opening(
        [
            {"借据号": "1", "逾期天数": "30", "贷款状态": "逾期", "最早未还款日": "2024/05/31"},
            {"借据号": "2", "剩余本金": "0", "贷款状态": "结清"},
            {"借据号": "3", "剩余本金": "0", "贷款状态": "核销"},
        ]
    )
    assert opening.loans.select("id", "dpd", "annual_rate").rows() == [("1", 30, "0.18")]
    assert [p.id for p in opening.products] == ["tape-equal-installment"]
    assert opening.as_of == AS_OF


# --- surrogate keys -------------------------------------------------------------------------------------------

ID_MAP = pl.DataFrame({"ref": ["DK-1", "9"]}, schema={"ref": pl.String}).with_columns(
    pl.Series("id", [50, 51], dtype=pl.Int64)
)


@pytest.mark.parametrize(
    ("refs", "floor", "ids", "new"),
    [
        (["7", "12"], 0, [7, 12], []),
        (["DK-1", "DK-1"], 0, [50, 50], []),
        (["DK-2", "DK-3", "DK-2"], 10, [52, 53, 52], [("DK-2", 52), ("DK-3", 53)]),
        (["DK-2", "100"], 10, [101, 100], [("DK-2", 101)]),
        (["DK-2"], 80, [81], [("DK-2", 81)]),
        (["50"], 0, [52], [("50", 52)]),
        (["9"], 0, [51], []),
        ([None, "DK-2"], 0, [None, 52], [("DK-2", 52)]),
    ],
    ids=[
        "whole-numbers-are-their-own-ids",
        "mapped-ref-keeps-its-id",
        "new-refs-in-order-of-first-appearance",
        "above-the-whole-numbers-of-the-batch",
        "above-the-books-largest-id",
        "whole-number-taken-by-the-map-gets-a-surrogate",
        "whole-number-in-the-map-keeps-its-surrogate",
        "no-ref-no-id",
    ],
)
def test_assign_ids_gives_each_reference_one_id(refs, floor, ids, new):
    got, entries = assign_ids(pl.Series("loan_id", refs, dtype=pl.String), id_map=ID_MAP, floor=floor)
    assert got.to_list() == ids
    assert entries.rows() == new


def test_identify_keeps_the_references_beside_the_ids_and_defaults_the_account_to_the_customer():
    accepted = pl.DataFrame(
        {"loan_id": ["DK-9", "DK-8"], "customer_id": ["C-1", "C-2"], "account_id": [None, "A-7"]},
        schema=dict.fromkeys(["loan_id", "customer_id", "account_id"], pl.String),
    )
    out = identify(accepted, id_maps={}, floors={"loan": 1000, "customer": 10, "account": 10})
    # Account A-7 takes the next account id above the defaulted line 11 (customer ids are another space).
    assert out.rows.rows() == [(1001, 11, 11, "DK-9", "C-1", "C-1"), (1002, 12, 12, "DK-8", "C-2", "A-7")]
    assert {k: v.height for k, v in out.new_entries.items()} == {"loan": 2, "customer": 2, "account": 1}


@pytest.mark.parametrize(
    ("cell", "ref"),
    [("DK20240131000123", "DK20240131000123"), (" C-88812 ", "C-88812"), ("000123", "123"), ("0", "0")],
    ids=["alphanumeric", "trimmed", "leading-zeros-dropped", "zero"],
)
def test_references_are_read_as_text_with_whole_numbers_canonical(cell, ref):
    converted = convert_tape(tape({"借据号": cell}), parse_mapping(CN_MAPPING))
    assert converted.get_column("loan_id").to_list() == [ref]
    assert check(tape({"借据号": cell})).loaded == 1
