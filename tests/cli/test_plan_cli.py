"""`runoff plan check|offers|accept|timeline` end to end through the CLI: exit codes, --json, one-line errors."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from runoff.cli.main import build_app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plans"
PHASED = str(EXAMPLES / "phased-three-wave.yaml")
ABRUPT = str(EXAMPLES / "abrupt-closure.yaml")
BAD = str(EXAMPLES / "breaks-rules.yaml")


@pytest.fixture(scope="module")
def app():
    return build_app()


def run(app, *args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def workspace(app, tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("plan-cli") / "book"
    assert run(app, "init", str(root)).exit_code == 0
    made = run(app, "generate", "--customers", "800", "--months", "24", "--seed", "9", "-w", str(root),
               "--load-ledger", "--json")  # fmt: skip
    assert made.exit_code == 0, made.output + (made.stderr or "")
    return str(root)


@pytest.mark.parametrize("plan", [PHASED, ABRUPT], ids=["phased", "abrupt"])
def test_check_passes_a_good_plan_and_shows_its_segments(app, workspace, plan):
    result = run(app, "plan", "check", plan, "-w", workspace, "--json")
    assert result.exit_code == 0, result.output + (result.stderr or "")
    out = json.loads(result.stdout)
    assert out["blocked"] is False and out["counts"]["block"] == 0
    assert out["offers"] > 0 and out["unassigned_accounts"] == 0
    assert sum(s["accounts"] for s in out["segments"]) == out["accounts"] > 0
    human = run(app, "plan", "check", plan, "-w", workspace)
    assert human.exit_code == 0 and "no blocking finding" in human.stdout and "accounts as of" in human.stdout


def test_check_exits_1_when_a_finding_blocks_and_lists_the_rules(app, workspace):
    result = run(app, "plan", "check", BAD, "-w", workspace, "--json")
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    blocking = {f["rule_id"] for f in out["findings"] if f["severity"] == "block"}
    assert {"CN-CLOSE-01", "CN-CAP-03", "CN-PRC-05"} <= blocking
    assert all(f["citation"] for f in out["findings"])
    human = run(app, "plan", "check", BAD, "-w", workspace, "--without-offers")
    assert human.exit_code == 1 and "BLOCKED" in human.stdout and "CN-PRC-05" in human.stdout


def test_a_malformed_plan_is_one_line_on_stderr_and_exit_2(app, workspace, tmp_path):
    text = Path(PHASED).read_text(encoding="utf-8").replace("bucket == M3", "bucket == M3 and dpdd > 1")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, encoding="utf-8")
    result = run(app, "plan", "check", str(bad), "-w", workspace)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "plan.invalid" in lines[0] and "unknown feature `dpdd`" in lines[0]
    as_json = run(app, "plan", "check", str(bad), "-w", workspace, "--json")
    assert as_json.exit_code == 2 and json.loads(as_json.stdout)["error"]["field"] == "segments.3.when"


def test_offers_writes_the_table_and_summarises_each_option(app, workspace):
    result = run(app, "plan", "offers", PHASED, "-w", workspace, "--json")
    assert result.exit_code == 0, result.output + (result.stderr or "")
    out = json.loads(result.stdout)
    table = pl.read_parquet(Path(out["folder"]) / "part-*.parquet")
    assert table.height == out["offers"] == sum(o["offers"] for o in out["options"])
    assert {o["option_id"] for o in out["options"]} <= {"settle-waive-fees", "extend-6", "holiday-3",
                                                         "restructure-24", "restructure-36", "settle-waive-penalties",
                                                         "settle-discount-10", "settle-discount-20"}  # fmt: skip
    assert (Path(out["folder"]) / "plan.json").is_file()


def test_accept_reschedules_a_ledger_loan_once(app, workspace):
    assert run(app, "plan", "offers", PHASED, "-w", workspace).exit_code == 0
    offers = pl.read_parquet(Path(workspace) / "data" / "offers" / "phased-three-wave" / "part-*.parquet")
    # an extension is applied for before maturity (CN-PRC-03): take a loan still running on the acceptance date
    running = (pl.col("segment") == "prime") & (pl.col("option_id") == "extend-6")
    loan = offers.filter(running & (pl.col("original_maturity") > date(2026, 3, 1)))["loan_id"][0]
    args = ["plan", "accept", "--loan", loan, "--option", "extend-6", "--plan", "phased-three-wave",
            "--as-of", "2026-02-02", "--actor", "ops:bob", "-w", workspace]  # fmt: skip
    first = run(app, *args, "--json")
    assert first.exit_code == 0, first.output + (first.stderr or "")
    out = json.loads(first.stdout)
    assert (out["version"], out["previous_version"], out["replayed"]) == (2, 1, False)
    assert out["idempotency_key"] == f"offer:phased-three-wave:{loan}:extend-6"
    again = run(app, *args)
    assert again.exit_code == 0 and "already accepted: nothing changed" in again.stdout
    shown = run(app, "loan", "show", loan, "--as-of", "2026-02-02", "-w", workspace, "--json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["schedule_version"] == 2


def test_accept_refused_by_a_rule_prints_the_rule_id_and_exits_2(app, workspace):
    assert run(app, "plan", "offers", BAD, "-w", workspace).exit_code == 0
    offers = pl.read_parquet(Path(workspace) / "data" / "offers" / "breaks-rules" / "part-*.parquet")
    loan = offers.filter(pl.col("option_id") == "extend-at-3pct")["loan_id"][0]
    result = run(app, "plan", "accept", "--loan", loan, "--option", "extend-at-3pct", "--plan", "breaks-rules",
                 "--as-of", "2026-01-10", "-w", workspace)  # fmt: skip
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "compliance.blocked [CN-CAP-03]" in line and len(line.splitlines()) == 1


def test_accept_an_option_not_offered_says_which_are(app, workspace):
    assert run(app, "plan", "offers", PHASED, "-w", workspace).exit_code == 0
    offers = pl.read_parquet(Path(workspace) / "data" / "offers" / "phased-three-wave" / "part-*.parquet")
    loan = offers.filter(pl.col("segment") == "defaulted")["loan_id"][0]
    result = run(app, "plan", "accept", "--loan", loan, "--option", "extend-6", "--plan", "phased-three-wave",
                 "--as-of", "2026-04-01", "-w", workspace, "--json")  # fmt: skip
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["field"] == "option" and "is not offered to loan" in error["message"]


def test_timeline_lists_each_waves_dates_and_the_sends(app):
    result = run(app, "plan", "timeline", PHASED, "--json")
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert [w["wave"] for w in out["waves"]] == ["wave-1", "wave-2", "wave-3"]
    assert out["waves"][1]["dates"]["individual_notices"] == "2026-02-22"
    assert out["sends"][0]["template"] == "closure-announcement" and out["sends"][0]["wave"] == "all"
    human = run(app, "plan", "timeline", PHASED)
    assert human.exit_code == 0 and "Communication schedule" in human.stdout
