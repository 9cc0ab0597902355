"""`runoff write-off`, `runoff recover` and `runoff reverse` on both databases: results, replays, one-line refusals."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from tests.cli.invoke import run_json

PRODUCT = Path(__file__).resolve().parents[2] / "examples" / "products" / "equal-installment-18.yaml"


def refused(cli, *args: str) -> str:
    """The one line on stderr of a command refused with exit code 2."""
    code, out, err = cli(*args)
    assert code == 2, out + err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def _open(cli, loan_id="L1"):
    run_json(
        cli, "loan", "open", "--product", str(PRODUCT), "--principal", "1200.00", "--term", "6",
        "--start", "2024-01-15", "--id", loan_id,
    )  # fmt: skip


def _verify_clean(cli):
    code, out, err = cli("ledger", "verify", "--json")
    assert code == 0 and json.loads(out) == [], out + err


def test_write_off_one_loan_then_replay_and_recover(cli):
    _open(cli)
    args = ("write-off", "--loan", "L1", "--as-of", "2024-08-13", "--reason", "180+ days", "--key", "w1")
    first = run_json(cli, *args)
    assert (first["loan_id"], first["days_past_due"], first["principal_written_off"]) == ("L1", 180, "1200.00")
    assert first["replayed"] is False
    assert Decimal(first["written_off"]) == Decimal(first["principal_written_off"]) + Decimal(
        first["penalty_written_off"]
    )
    again = run_json(cli, *args)
    assert again == first | {"replayed": True}
    shown = run_json(cli, "loan", "show", "L1", "--as-of", "2024-12-31")
    assert shown["status"] == "charged-off" and shown["outstanding_principal"] == "1200.00"
    assert shown["balances"]["loans_receivable"] == "0.00"

    recovery = run_json(cli, "recover", "--loan", "L1", "--amount", "500.00", "--date", "2024-09-01", "--key", "r1")
    assert recovery["kind"] == "recovery" and recovery["amount"] == "500.00" and recovery["fully_recovered"] is False
    assert run_json(cli, "recover", "--loan", "L1", "--amount", "500.00", "--date", "2024-09-01", "--key", "r1")[
        "replayed"
    ]
    code, out, _ = cli("recover", "--loan", "L1", "--amount", "1.00", "--date", "2024-09-02", "--key", "r2")
    assert code == 0 and "recovery" in out and "still owed by contract" in out
    _verify_clean(cli)


def test_bulk_write_off_dry_run_then_run_then_run_again(cli):
    _open(cli, "OLD")
    _open(cli, "NEW")
    run_json(cli, "pay", "--loan", "NEW", "--amount", "210.63", "--date", "2024-02-15", "--key", "n1")
    args = ("write-off", "--min-dpd", "180", "--as-of", "2024-08-13")
    dry = run_json(cli, *args, "--dry-run")
    assert dry["dry_run"] is True and [r["loan_id"] for r in dry["loans"]] == ["OLD"]
    real = run_json(cli, *args)
    ids = {"charge_off_id": 0, "entry_id": 0}  # a rolled-back PostgreSQL transaction does not give its ids back
    assert real["dry_run"] is False and [r | ids for r in real["loans"]] == [r | ids for r in dry["loans"]]
    assert real["loans"][0]["idempotency_key"] == "write-off:OLD:2024-08-13"
    again = run_json(cli, *args)
    assert (again["candidates"], again["loans_written_off"], again["earlier"]) == (0, 0, 1)
    code, out, _ = cli(*args)
    assert code == 0 and "0 open loans 180+ days past due" in out
    _verify_clean(cli)


def test_reverse_a_payment_and_replay(cli):
    _open(cli)
    paid = run_json(cli, "pay", "--loan", "L1", "--amount", "210.63", "--date", "2024-02-15", "--key", "p1")
    args = ("reverse", "--payment", str(paid["payment_id"]), "--reason", "cheque bounced", "--key", "x1")
    result = run_json(cli, *args)
    assert (result["kind"], result["loan_status"], result["outstanding_principal"]) == ("payment", "open", "1200.00")
    assert result["reposted_from"] == "2024-02-15" and result["replayed"] is False
    assert run_json(cli, *args) == result | {"replayed": True}
    code, out, _ = cli(*args)
    assert code == 0 and "replayed" in out and "principal outstanding 1200.00" in out
    _verify_clean(cli)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("write-off", "--as-of", "2024-08-13"), "--loan ID"),
        (("write-off", "--as-of", "2024-08-13", "--loan", "L1", "--min-dpd", "180"), "not both"),
        (("write-off", "--as-of", "2024-08-13", "--loan", "L1", "--reason", "x"), "needs --key"),
        (("write-off", "--as-of", "2024-08-13", "--loan", "L1", "--key", "k"), "needs --reason"),
        (("write-off", "--as-of", "2024-08-13", "--loan", "L1", "--reason", "x", "--key", "k", "--dry-run"), "dry run"),
        (("write-off", "--as-of", "2024-08-13", "--min-dpd", "180", "--key", "k"), "derives each loan's key"),
        (("write-off", "--as-of", "13/08/2024", "--min-dpd", "180"), "YYYY-MM-DD"),
        (("write-off", "--as-of", "2024-08-13", "--min-dpd", "0"), "min_dpd"),
        (("write-off", "--as-of", "2024-08-13", "--loan", "NOPE", "--reason", "x", "--key", "k"), "not_found"),
        (("recover", "--loan", "L1", "--amount", "10", "--date", "2024-09-01", "--key", "r"), "runoff pay"),
        (("recover", "--loan", "L1", "--amount", "-1", "--date", "2024-09-01", "--key", "r"), "amount"),
        (("reverse", "--payment", "999", "--reason", "x", "--key", "k"), "no payment 999"),
    ],
    ids=[
        "neither",
        "both",
        "no-key",
        "no-reason",
        "dry-run-one-loan",
        "bulk-key",
        "bad-date",
        "zero-dpd",
        "unknown-loan",
        "recover-open-loan",
        "negative-amount",
        "unknown-payment",
    ],
)
def test_refusals_are_one_line_and_exit_2(cli, args, message):
    _open(cli)
    assert message in refused(cli, *args)
    _verify_clean(cli)
