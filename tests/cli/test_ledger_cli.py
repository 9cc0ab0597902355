"""`runoff ledger migrate|verify|balance`, `runoff loan open|show`, `runoff pay`, `runoff quote ...` on both databases."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from runoff.store.ledger.database import create_ledger_engine
from runoff.store.ledger.models import loans
from tests.cli.invoke import run_json

PRODUCT = Path(__file__).resolve().parents[2] / "examples" / "products" / "equal-installment-18.yaml"
INSTALLMENT_KEYS = {"number", "due_date", "principal", "interest", "fee", "total", "balance_after"}


def _open(cli, loan_id="L1"):
    return run_json(
        cli, "loan", "open", "--product", str(PRODUCT), "--principal", "12000", "--term", "12",
        "--start", "2024-01-31", "--id", loan_id, "--customer", "C1",
    )  # fmt: skip


def test_migrate_reports_what_changed_and_is_idempotent(cli):
    again = run_json(cli, "ledger", "migrate")
    assert again["changed"] is False and again["to"] == again["from"]


def test_open_pay_show_verify_and_balance(cli):
    opened = _open(cli)
    assert opened["loan_id"] == "L1" and len(opened["installments"]) == 12
    assert set(opened["installments"][0]) == INSTALLMENT_KEYS
    first = opened["installments"][0]
    paid = run_json(cli, "pay", "--loan", "L1", "--amount", first["total"], "--date", first["due_date"], "--key", "p1")
    assert paid["replayed"] is False
    assert {a["component"] for a in paid["allocations"]} == {"interest", "principal"}
    shown = run_json(cli, "loan", "show", "L1", "--as-of", first["due_date"])
    assert shown["days_past_due"] == 0 and shown["status"] == "open"
    assert Decimal(shown["balances"]["loans_receivable"]) == Decimal("12000.00") - Decimal(first["principal"])
    assert run_json(cli, "ledger", "verify") == []
    balance = run_json(cli, "ledger", "balance")
    assert balance["debits_equal_credits"] is True
    assert balance["balances"]["interest_income"] == first["interest"]


def test_pay_twice_with_one_key_replays_and_a_different_amount_is_refused(cli):
    _open(cli)
    args = ("pay", "--loan", "L1", "--amount", "500.00", "--date", "2024-02-29", "--key", "same")
    first = run_json(cli, *args)
    again = run_json(cli, *args)
    assert again["replayed"] is True and again["payment_id"] == first["payment_id"]
    code, out, err = cli("pay", "--loan", "L1", "--amount", "501.00", "--date", "2024-02-29", "--key", "same")
    assert code == 2
    assert "payment.idempotency_conflict" in err and "'same'" in err
    assert "Traceback" not in out + err


@pytest.mark.parametrize(
    ("args", "code_text", "field"),
    [
        (("--loan", "NOPE", "--amount", "10", "--date", "2024-02-29", "--key", "k"), "not_found", "NOPE"),
        (("--loan", "L1", "--amount", "-10", "--date", "2024-02-29", "--key", "k"), "input.invalid", "amount"),
        (("--loan", "L1", "--amount", "10", "--date", "29/02/2024", "--key", "k"), "input.invalid", "date"),
        (("--loan", "L1", "--amount", "10", "--date", "2023-12-31", "--key", "k"), "input.invalid", "value_date"),
    ],
    ids=["unknown-loan", "negative-amount", "bad-date", "before-start"],
)
def test_bad_payment_is_one_line_on_stderr_and_exit_2(cli, args, code_text, field):
    _open(cli)
    code, out, err = cli("pay", *args)
    assert code == 2
    assert code_text in err and field in err
    assert "Traceback" not in out + err
    assert run_json(cli, "ledger", "verify") == []


def test_verify_exits_1_listing_the_offending_loan(cli, ledger_url):
    _open(cli, "L1")
    _open(cli, "L2")
    engine = create_ledger_engine(ledger_url)
    with engine.begin() as conn:
        conn.execute(update(loans).where(loans.c.id == "L2").values(outstanding_principal_fen=1))
    engine.dispose()
    code, out, _ = cli("ledger", "verify", "--json")
    assert code == 1
    findings = json.loads(out)
    assert {f["object_id"] for f in findings} == {"L2"}
    assert {"schedule_principal", "receivable_matches_journal"} <= {f["check"] for f in findings}
    code, out, _ = cli("ledger", "verify")
    assert code == 1 and "L2" in out


def test_quotes_print_and_write_nothing(cli):
    _open(cli)
    settle = run_json(cli, "quote", "settle", "--loan", "L1", "--as-of", "2024-03-10")
    assert settle["kind"] == "early-settlement" and settle["due_now"]["principal"] == "12000.00"
    extend = run_json(cli, "quote", "extend", "--loan", "L1", "--as-of", "2024-01-31", "--periods", "6")
    assert len(extend["installments"]) == 18
    restructure = run_json(
        cli, "quote", "restructure", "--loan", "L1", "--as-of", "2024-05-01", "--term", "24",
        "--annual-rate", "0.12", "--haircut", "0.1", "--waive-penalties",
    )  # fmt: skip
    assert restructure["forgiven_principal"] != "0.00" and restructure["apr_nominal"].startswith("0.1")
    shown = run_json(cli, "loan", "show", "L1", "--as-of", "2024-05-01")
    assert [v["version"] for v in shown["schedule_versions"]] == [1]


def test_quote_with_a_bad_method_names_the_flag(cli):
    _open(cli)
    code, _, err = cli("quote", "restructure", "--loan", "L1", "--as-of", "2024-05-01", "--term", "12", "--method", "x")
    assert code == 2 and "method" in err


def test_default_ledger_is_the_workspace_sqlite_file(app, tmp_path, monkeypatch):
    monkeypatch.delenv("RUNOFF_DATABASE_URL", raising=False)
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["loan", "open", "--product", str(PRODUCT), "--principal", "1000", "--term", "6", "--start", "2024-01-31",
         "--id", "W1", "--workspace", str(tmp_path), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ledger.db").is_file()
    shown = runner.invoke(app, ["loan", "show", "W1", "--workspace", str(tmp_path), "--as-of", "2024-02-01", "--json"])
    assert json.loads(shown.stdout)["loan_id"] == "W1"


@pytest.mark.parametrize("command", [("ledger", "migrate"), ("ledger", "verify"), ("loan", "show", "L1")], ids=" ".join)
def test_unreachable_database_is_one_line_naming_the_setting(app, command):
    env = {"RUNOFF_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    result = CliRunner(env=env).invoke(app, list(command))
    assert result.exit_code == 2
    assert "config.invalid" in result.stderr and "RUNOFF_DATABASE_URL" in result.stderr
    assert "Traceback" not in result.output
