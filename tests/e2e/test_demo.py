"""The main job end to end on a small book: every step runs and leaves the reports it names."""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runoff.app.demo import MISTAKES
from runoff.cli.main import build_app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# the file's column each deliberate mistake is refused on
REFUSED_ON = {"unknown-loan": "loan_id", "negative-amount": "amount", "repeated-key": "idempotency_key"}


@pytest.mark.slow
def test_demo_runs_every_step_on_a_small_book_and_lists_its_reports(tmp_path):
    workspace = tmp_path / "demo"
    result = CliRunner().invoke(
        build_app(),
        ["demo", "--workspace", str(workspace), "--examples", str(EXAMPLES), "--customers", "3000", "--json"],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    titles = [s["title"] for s in summary["steps"]]
    assert len(titles) == 5
    assert titles[2].startswith("Servicing: a day of collections")
    assert all(Path(p).exists() for p in summary["outputs"])
    assert (workspace / "reports" / "assessment.html").is_file()
    plans = summary["steps"][4]["data"]["plans"]
    assert plans["breaks-rules"]["blocked"] is True
    assert plans["phased-three-wave"]["blocked"] is False
    book = summary["steps"][1]["data"]
    assert book["ledger"]["loans"] > 0

    day = summary["steps"][2]["data"]
    check_the_day_of_collections(day, book=book, outputs=summary["outputs"])


def check_the_day_of_collections(day: dict, *, book: dict, outputs: list[str]) -> None:
    """The servicing step's figures agree with each other and with the files it wrote."""
    assert date.fromisoformat(day["day"]) == date.fromisoformat(book["close"]["as_of"]) + timedelta(days=1)

    # the payment file: a row per loan with something due, plus the deliberate mistakes, every row accounted for
    posted = day["payment_file"]
    rows = day["rows"]
    assert day["due"]["loans"] > 0
    assert posted["read"] == posted["posted"] + posted["replayed"] + posted["refused"]
    assert posted["read"] == rows["full"] + rows["part"] + len(rows["deliberate"])
    assert rows["full"] > rows["part"] > 0
    assert sorted(d["kind"] for d in rows["deliberate"]) == sorted(MISTAKES)
    refused = {r["row"]: r for r in posted["refusals"]}
    assert set(refused) == {d["row"] for d in rows["deliberate"]}  # the mistakes, and nothing else
    for mistake in rows["deliberate"]:
        assert refused[mistake["row"]]["field"] == REFUSED_ON[mistake["kind"]], refused[mistake["row"]]
    assert posted["posted"] == day["due"]["loans"]
    assert 0 < Decimal(posted["amount_posted"]) < Decimal(day["due"]["amount"])
    assert posted["file"] in outputs and posted["refusals_file"] in outputs
    with open(posted["refusals_file"], encoding="utf-8", newline="") as fh:
        assert sorted(int(r["row"]) for r in csv.DictReader(fh)) == sorted(refused)

    # the close of that day
    assert day["close"]["as_of"] == day["day"]
    assert day["close"]["delinquent_loans"] >= 0

    # charge-off: every candidate written off or refused with a reason; the amounts add up
    charge_off = day["charge_off"]
    assert charge_off["loans"] + charge_off["refused"] == charge_off["candidates"]
    assert Decimal(charge_off["principal"]) + Decimal(charge_off["penalty"]) == Decimal(charge_off["written_off"])
    assert (charge_off["min_dpd"], charge_off["fallback_from"]) in ((180, None), (90, 180))
    assert charge_off["loans"] > 0

    # a recovery on one charged-off loan, a payment of the file reversed as bounced
    recovery = day["recovery"]
    assert recovery["loan_id"] in charge_off["loan_ids"]
    assert Decimal(recovery["amount"]) > 0 and not recovery["replayed"]
    reversal = day["reversal"]
    assert reversal["kind"] == "payment" and not reversal["replayed"]
    assert reversal["reposted_from"] == day["day"] and reversal["loan_status"] == "open"
    assert reversal["allocations_reversed"] > 0 and reversal["entries_reversed"] > 0

    # the books balance and verify is clean
    assert day["trial_balance"]["debits_equal_credits"] is True
    assert Decimal(day["trial_balance"]["balances"]["recoveries"]) == Decimal(recovery["amount"])
    verify = day["verify"]
    assert verify["ok"], {check: n for check, n in verify["counts"].items() if n}
