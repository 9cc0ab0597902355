"""`runoff schedule`: the --json contract, the table, and one clear error (exit 2) per bad flag or file."""

import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runoff.cli.main import build_app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "products"
INSTALLMENT_KEYS = {"number", "due_date", "principal", "interest", "fee", "total", "balance_after"}


@pytest.fixture(scope="module")
def app():
    return build_app()


def run(app, *args: str):
    return CliRunner().invoke(app, ["schedule", *args])


def run_json(app, *args: str) -> dict:
    result = run(app, *args, "--json")
    assert result.exit_code == 0, result.output + (result.stderr or "")
    return json.loads(result.stdout)


def test_json_has_the_public_keys_and_decimal_strings(app):
    doc = run_json(
        app, "--principal", "10000", "--method", "等额本息", "--annual-rate", "0.18", "--term", "12",
        "--start", "2024-01-31",
    )  # fmt: skip
    assert {"apr_nominal", "apr_effective", "installments"} <= doc.keys()
    first, last = doc["installments"][0], doc["installments"][-1]
    assert first.keys() >= INSTALLMENT_KEYS
    # hand-worked in tests/servicing/test_schedule.py: Y = 916.80, I1 = 150.00, last 903.26 + 13.55
    assert first == {
        **first,
        "number": 1,
        "due_date": "2024-02-29",
        "principal": "766.80",
        "interest": "150.00",
        "fee": "0.00",
        "total": "916.80",
        "balance_after": "9233.20",
    }
    assert (last["number"], last["due_date"], last["total"], last["balance_after"]) == (
        12,
        "2025-01-31",
        "916.81",
        "0.00",
    )
    assert [i["due_date"] for i in doc["installments"][1:4]] == ["2024-03-31", "2024-04-30", "2024-05-31"]
    # APR fractions as decimal strings with 10 places; the contract rate up to cent rounding
    assert len(doc["apr_nominal"].split(".")[1]) == 10
    assert abs(Decimal(doc["apr_nominal"]) - Decimal("0.18")) < Decimal("0.00001")
    assert abs(Decimal(doc["apr_effective"]) - Decimal("0.1956")) < Decimal("0.0001")  # 1.015^12 - 1 = 19.56 %
    assert doc["totals"]["principal"] == "10000.00"


def test_flat_fee_flags_print_the_13_percent_apr(app):
    doc = run_json(
        app, "--principal", "12000", "--method", "flat-fee", "--fee-rate", "0.006", "--term", "12",
        "--start", "2024-01-31",
    )  # fmt: skip
    assert {i["total"] for i in doc["installments"]} == {"1072.00"}
    assert round(Decimal(doc["apr_nominal"]), 4) == Decimal("0.1303")


def test_rounding_and_multiple_flags_reach_the_engine(app):
    # P = 1000 at 18 % over 3, whole yuan: 343.00, 343.00, 344.17 (hand-worked in test_schedule.py)
    doc = run_json(
        app, "--principal", "1000", "--method", "equal-installment", "--annual-rate", "18%", "--term", "3",
        "--start", "2024-01-31", "--multiple-of", "1", "--rounding", "half-even",
    )  # fmt: skip
    assert [i["total"] for i in doc["installments"]] == ["343.00", "343.00", "344.17"]


def test_daily_flags_over_leap_february(app):
    # 3660 interest-only at 10 %, actual/actual: 29.00, 31.00, 30.00 (2024 has 366 days)
    doc = run_json(
        app, "--principal", "3660", "--method", "先息后本", "--annual-rate", "0.10", "--term", "3",
        "--start", "2024-01-31", "--interest-basis", "daily", "--day-count", "actual/actual",
    )  # fmt: skip
    assert [i["interest"] for i in doc["installments"]] == ["29.00", "31.00", "30.00"]


def test_business_days_flag_moves_national_day(app):
    doc = run_json(
        app, "--principal", "3650", "--method", "interest-only", "--annual-rate", "0.10", "--term", "2",
        "--start", "2026-08-01", "--business-days", "following",
    )  # fmt: skip
    assert [i["due_date"] for i in doc["installments"]] == ["2026-09-01", "2026-10-08"]


def test_product_file_with_a_term_it_offers(app):
    doc = run_json(app, "--product", str(EXAMPLES / "pay-in-4.yaml"), "--principal", "100.01", "--start", "2024-01-31")
    assert [i["due_date"] for i in doc["installments"]] == ["2024-01-31", "2024-02-14", "2024-02-28", "2024-03-13"]
    assert [i["total"] for i in doc["installments"]] == ["25.00", "25.00", "25.00", "25.01"]
    assert doc["apr_nominal"] == "0.0000000000"


def test_flags_override_the_product_file(app):
    doc = run_json(
        app, "--product", str(EXAMPLES / "baitiao-flat-fee.yaml"), "--principal", "1000", "--term", "3",
        "--start", "2024-01-31", "--fee-rate", "0.01",
    )  # fmt: skip
    assert {i["fee"] for i in doc["installments"]} == {"10.00"}


def test_table_shows_totals_and_apr(app):
    result = run(
        app, "--principal", "12000", "--method", "flat-fee", "--fee-rate", "0.006", "--term", "12",
        "--start", "2024-01-31",
    )  # fmt: skip
    assert result.exit_code == 0
    assert "12864.00" in result.stdout  # 12000 + 12 × 72
    assert "13.03" in result.stdout and "APR" in result.stdout


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--principal", "1000", "--method", "annuity", "--annual-rate", "0.18", "--term", "0"], "`--term`: 0"),
        (["--principal", "-5", "--method", "annuity", "--annual-rate", "0.18", "--term", "3"], "`--principal`"),
        (["--principal", "abc", "--method", "annuity", "--annual-rate", "0.18", "--term", "3"], "`--principal`"),
        (["--method", "annuity", "--annual-rate", "0.18", "--term", "3"], "`--principal`: missing"),
        (["--principal", "100", "--method", "balloon", "--annual-rate", "0.18", "--term", "3"], "`--method`"),
        (["--principal", "100", "--annual-rate", "0.18", "--term", "3"], "`--method`: missing"),
        (["--principal", "100", "--method", "annuity", "--term", "3"], "`--annual-rate`: missing"),
        (
            ["--principal", "100", "--method", "annuity", "--annual-rate", "0.18", "--fee-rate", "0.01", "--term", "3"],
            "`--annual-rate` and `--fee-rate`",
        ),
        (["--principal", "100", "--method", "annuity", "--annual-rate", "18", "--term", "3"], "`--annual-rate`: '18'"),
        (
            [
                "--principal",
                "100",
                "--method",
                "annuity",
                "--annual-rate",
                "0.1",
                "--term",
                "3",
                "--start",
                "31/01/2024",
            ],
            "`--start`",
        ),
        (
            [
                "--principal",
                "100",
                "--method",
                "annuity",
                "--annual-rate",
                "0.1",
                "--term",
                "3",
                "--day-count",
                "30/365",
            ],
            "`--day-count`",
        ),
        (
            ["--principal", "100", "--method", "annuity", "--annual-rate", "0.1", "--term", "3", "--rounding", "up"],
            "`--rounding`",
        ),
        (
            [
                "--principal",
                "100",
                "--method",
                "annuity",
                "--annual-rate",
                "0.1",
                "--term",
                "3",
                "--business-days",
                "next",
            ],
            "`--business-days`",
        ),
        (
            [
                "--principal",
                "100",
                "--method",
                "annuity",
                "--annual-rate",
                "0.1",
                "--term",
                "3",
                "--grace-periods",
                "3",
            ],
            "`grace_periods`",
        ),
        (["--principal", "100", "--method", "flat-fee", "--annual-rate", "0.1", "--term", "3"], "fee_rate"),
        (["--product", "no/such/product.yaml", "--principal", "100", "--term", "3"], "does not exist"),
        (
            ["--product", str(EXAMPLES / "bad" / "not-yaml.yaml"), "--principal", "100", "--term", "3"],
            "not valid YAML at line 3",
        ),
        (["--product", str(EXAMPLES / "bad" / "unknown-method.yaml"), "--principal", "100", "--term", "3"], "`method`"),
        (["--product", str(EXAMPLES / "baitiao-flat-fee.yaml"), "--principal", "100"], "`--term`: missing"),
    ],
    ids=[
        "zero-term",
        "negative-principal",
        "non-numeric-principal",
        "missing-principal",
        "unknown-method",
        "missing-method",
        "missing-rate",
        "both-rates",
        "rate-as-percent-number",
        "bad-start-date",
        "unknown-day-count",
        "unknown-rounding",
        "unknown-business-day-rule",
        "grace-not-below-term",
        "annual-rate-on-flat-fee",
        "missing-file",
        "bad-yaml",
        "bad-product-field",
        "product-with-several-terms-needs-term",
    ],
)
def test_bad_input_exits_2_with_one_line_naming_the_field(app, args, named):
    result = run(app, *args)
    assert result.exit_code == 2, result.output
    assert named in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_input_with_json_prints_the_error_shape(app):
    result = run(app, "--principal", "100", "--method", "annuity", "--annual-rate", "0.1", "--term", "400", "--json")
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "input.invalid"
    assert error["field"] == "--term"
