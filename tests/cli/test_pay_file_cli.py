"""`runoff pay --file`: a payment file posted from the command line, on both databases; exit 0, 1 or 2, no traceback."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ROOT / "examples" / "products" / "equal-installment-18.yaml"
EXAMPLE = ROOT / "examples" / "payments" / "2024-02-01.csv"
HEADER = "loan_id,amount,value_date,idempotency_key\n"
SUMMARY_KEYS = {
    "file",
    "read",
    "posted",
    "replayed",
    "refused",
    "amount_posted",
    "loans_closed",
    "closed_loan_ids",
    "refusals_file",
    "stale_refusals_file",
    "ignored_columns",
    "refusals",
}


@pytest.fixture
def loans(cli):
    """The docs' example: L1 lends 1,200.00 and L2 3,000.00 over 6 months from 1 Jan 2024 (due on the 1st)."""
    for loan_id, principal in (("L1", "1200.00"), ("L2", "3000.00")):
        code, out, err = cli(
            "loan", "open", "--product", str(PRODUCT), "--principal", principal, "--term", "6",
            "--start", "2024-01-01", "--id", loan_id, "--customer", f"C-{loan_id}", "--json",
        )  # fmt: skip
        assert code == 0, out + err
    return cli


def _file(tmp_path: Path, body: str, name: str = "2024-02-01.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body, encoding="utf-8")
    return path


MIXED = (
    "L1,210.63,2024-02-01,PP1\n"  # posted
    "L1,210.63,2024-02-01,PP1\n"  # replayed: repeated
    "L2,abc,2024-02-01,PP3\n"  # refused: amount
    "NOPE,10.00,2024-02-01,PP4\n"  # refused: unknown loan
    "L2,526.58,2024-02-01,PP5\n"  # posted
)


def _verify_clean(cli) -> None:
    code, out, err = cli("ledger", "verify", "--json")
    assert code == 0 and json.loads(out) == [], out + err


def test_json_reports_every_row_and_exits_1_when_a_row_is_refused(loans, tmp_path):
    path = _file(tmp_path, MIXED)
    code, out, err = loans("pay", "--file", str(path), "--json")
    assert code == 1, out + err
    data = json.loads(out)
    assert set(data) == SUMMARY_KEYS
    assert (data["read"], data["posted"], data["replayed"], data["refused"]) == (5, 2, 1, 2)
    assert data["amount_posted"] == "737.21" and Decimal(data["amount_posted"]) == Decimal("210.63") + Decimal("526.58")
    assert (data["loans_closed"], data["closed_loan_ids"]) == (0, [])
    assert data["refusals_file"] == str(tmp_path / "2024-02-01.refused.csv")
    assert [(r["row"], r["code"], r["field"]) for r in data["refusals"]] == [
        (3, "input.invalid", "amount"),
        (4, "not_found", "loan_id"),
    ]
    assert data["refusals"][0] | {"message": ""} == {
        "row": 3,
        "loan_id": "L2",
        "amount": "abc",
        "value_date": "2024-02-01",
        "idempotency_key": "PP3",
        "code": "input.invalid",
        "field": "amount",
        "message": "",
    }
    with (tmp_path / "2024-02-01.refused.csv").open(encoding="utf-8", newline="") as fh:
        written = list(csv.DictReader(fh))
    assert [(w["row"], w["loan_id"], w["idempotency_key"], w["code"]) for w in written] == [
        ("3", "L2", "PP3", "input.invalid"),
        ("4", "NOPE", "PP4", "not_found"),
    ]
    assert err == ""  # no progress bar with --json
    _verify_clean(loans)


def test_without_json_prints_the_summary_and_the_refused_rows(loans, tmp_path):
    path = _file(tmp_path, MIXED)
    refused = tmp_path / "report.csv"
    code, out, err = loans("pay", "--file", str(path), "--refusals", str(refused))
    assert code == 1, out + err
    assert "read 5 = posted 2 + replayed 1 + refused 2" in out
    assert "refused rows by reason" in out and "not_found" in out and "NOPE" in out
    assert f"every refused row with its reason: {refused}" in out
    assert refused.is_file() and not (tmp_path / "2024-02-01.refused.csv").exists()


def test_the_example_file_posts_cleanly_then_replays_with_exit_0(loans, tmp_path):
    code, out, err = loans("pay", "--file", str(EXAMPLE), "--refusals", str(tmp_path / "r.csv"), "--json")
    assert code == 0, out + err
    first = json.loads(out)
    assert (first["read"], first["posted"], first["refused"], first["amount_posted"]) == (3, 3, 0, "837.21")
    assert first["refusals_file"] is None and not (tmp_path / "r.csv").exists()

    code, out, err = loans("pay", "--file", str(EXAMPLE), "--refusals", str(tmp_path / "r.csv"))
    assert code == 0, out + err
    assert "read 3 = posted 0 + replayed 3 + refused 0" in out and "none: no row refused" in out
    _verify_clean(loans)


def test_chunks_of_one_post_like_one_chunk(loans, tmp_path):
    path = _file(tmp_path, MIXED)
    code, out, err = loans("pay", "--file", str(path), "--chunk", "1", "--json")
    assert code == 1, out + err
    data = json.loads(out)
    assert (data["posted"], data["replayed"], data["refused"]) == (2, 1, 2)
    _verify_clean(loans)


@pytest.mark.parametrize(
    ("args", "names"),
    [
        ((), ["--loan, --amount, --date, --key are missing", "--file PATH"]),
        (("--loan", "L1", "--amount", "10"), ["--date, --key are missing"]),
        (("--file", "x.csv", "--loan", "L1"), ["--file cannot be combined with --loan"]),
        (("--loan", "L1", "--amount", "1", "--date", "2024-02-01", "--key", "k", "--chunk", "5"), ["--chunk applies"]),
        (("--refusals", "r.csv", "--chunk", "5"), ["--chunk and --refusals apply to --file only"]),
    ],
    ids=["nothing", "half-a-payment", "file-and-loan", "chunk-without-file", "refusals-without-file"],
)
def test_options_other_than_a_file_or_one_whole_payment_are_one_error_naming_them(loans, args, names):
    code, _, err = loans("pay", *args)
    assert code == 2
    assert err.startswith("error input.invalid: `pay`:")
    for name in names:
        assert name in err
    assert "expected either --file PATH or all of --loan, --amount, --date and --key" in err


def test_a_file_without_a_column_is_one_error_naming_the_columns_and_nothing_is_posted(loans, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("借据号,amount,value_date,idempotency_key\nL1,210.63,2024-02-01,PP1\n", encoding="utf-8")
    code, out, err = loans("pay", "--file", str(path), "--json")
    assert code == 2
    error = json.loads(out)["error"]
    assert error["code"] == "payment_file.invalid"
    assert error["details"]["missing"] == ["loan_id"]
    assert "expected the columns loan_id, amount, value_date, idempotency_key" in err
    code, _, err = loans("pay", "--file", str(tmp_path / "missing.csv"))
    assert code == 2 and "no such file" in err
    code, out, _ = loans("ledger", "balance", "--json")
    assert json.loads(out)["balances"]["interest_income"] == "0.00"


def _docs_csv_blocks() -> list[str]:
    """The CSV blocks of docs/ledger.md's section on payment files: the file with mistakes, then its report."""
    text = (ROOT / "docs" / "ledger.md").read_text(encoding="utf-8")
    section = text[text.index("## Payment files") :]
    section = section[: section.index("\n## ")]
    return [block.split("```", 1)[0] for block in section.split("```csv\n")[1:]]


def test_the_docs_example_of_a_file_with_mistakes_is_what_runoff_does(loans, tmp_path):
    code, out, err = loans("pay", "--file", str(EXAMPLE), "--json")
    assert code == 0, out + err
    bad, report = _docs_csv_blocks()
    path = tmp_path / "2024-03-01.csv"
    path.write_text(bad, encoding="utf-8")
    code, out, err = loans("pay", "--file", str(path), "--json")
    assert code == 1, out + err
    data = json.loads(out)
    assert (data["read"], data["posted"], data["refused"]) == (5, 1, 4)
    assert (tmp_path / "2024-03-01.refused.csv").read_text(encoding="utf-8") == report
