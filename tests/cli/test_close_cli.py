"""`runoff close-day` and `runoff repost` from the command line: JSON shape, refusals, progress off with --json."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
import typer
from typer.testing import CliRunner

from runoff.app.context import build_context
from runoff.app.loans import open_loan
from runoff.app.payments import post_payment
from runoff.cli import close
from runoff.cli.main import COMMAND_MODULES, build_app
from runoff.config import Settings


@pytest.fixture
def app() -> typer.Typer:
    built = build_app()
    if "runoff.cli.close" not in COMMAND_MODULES:
        close.register(built)
    return built


@pytest.fixture
def workspace(tmp_path, equal_installment_product, fixed_clock):
    """A workspace whose SQLite ledger holds two loans, one of them behind."""
    ctx = build_context(Settings(workspace=tmp_path), clock=fixed_clock)
    with ctx:
        for loan_id in ("A", "B"):
            open_loan(
                product=equal_installment_product,
                principal="1200.00",
                term=12,
                start_date=date(2024, 1, 15),
                actor="test",
                uow=ctx.uow(),
                loan_id=loan_id,
            )
        post_payment(
            "B", Decimal("110.02"), value_date=date(2024, 2, 15), idempotency_key="b", actor="t", uow=ctx.uow()
        )
    return tmp_path


def _run(app, *args):
    return CliRunner().invoke(app, list(args))


def test_close_day_json_reports_the_close(app, workspace):
    result = _run(app, "close-day", "--as-of", "2024-02-20", "-w", str(workspace), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["as_of"] == "2024-02-20"
    assert (data["delinquent_loans"], data["loans_charged_penalty"], data["already_closed"]) == (1, 1, False)
    assert data["by_bucket"]["M1"] == {"loans": 1, "principal": "1200.00"}
    assert data["by_bucket"]["current"]["loans"] == 1
    assert data["penalty_accrued"] == "0.23"  # 5 days × 0.05 % × 92.02 of overdue principal
    again = json.loads(_run(app, "close-day", "--as-of", "2024-02-20", "-w", str(workspace), "--json").stdout)
    assert again["already_closed"] and again["close_id"] == data["close_id"]


def test_close_day_human_output_is_a_table(app, workspace):
    result = _run(app, "close-day", "--as-of", "2024-02-20", "-w", str(workspace))
    assert result.exit_code == 0, result.output
    assert "close-day 2024-02-20" in result.stdout
    assert "Open loans by bucket" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["close-day", "--as-of", "2024-13-01"], "`as-of`: '2024-13-01' is not a date"),
        (["close-day", "--as-of", "2024-02-01"], "is before the last close 2024-02-20"),
        (["repost", "--loan", "NOPE"], "no loan 'NOPE'"),
        (["repost", "--loan", "A", "--from", "yesterday"], "`from`: 'yesterday' is not a date"),
    ],
    ids=["bad-date", "backwards", "unknown-loan", "bad-from"],
)
def test_user_mistakes_are_one_line_and_exit_2(app, workspace, args, message):
    assert _run(app, "close-day", "--as-of", "2024-02-20", "-w", str(workspace)).exit_code == 0
    result = _run(app, *args, "-w", str(workspace))
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_repost_json_after_a_backdated_payment(app, workspace, fixed_clock):
    assert _run(app, "close-day", "--as-of", "2024-03-01", "-w", str(workspace)).exit_code == 0
    with build_context(Settings(workspace=workspace), clock=fixed_clock) as ctx:
        post_payment(
            "A", Decimal("110.02"), value_date=date(2024, 2, 16), idempotency_key="late", actor="t", uow=ctx.uow()
        )
    result = _run(app, "repost", "--loan", "A", "-w", str(workspace), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["loan_id"], data["requested_from"], data["as_of"]) == ("A", "2024-02-16", "2024-03-01")
    assert Decimal(data["penalty_after"]) < Decimal(data["penalty_before"])
