"""`runoff assess`, `warn`, `risk ...` and `alerts ...` through the CLI: the --json contracts and one clear error
line (exit 2) per mistake. The app is built by hand with this module's register() until cli.main lists it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runoff.app.book import generate_book
from runoff.cli import risk
from runoff.cli.main import COMMAND_MODULES, build_app
from runoff.portfolio.generator import BookConfig
from runoff.store.workspace import Workspace


@pytest.fixture(scope="module")
def app():
    app = build_app()
    if "runoff.cli.risk" not in COMMAND_MODULES:
        risk.register(app)
    return app


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    ws = Workspace.init(tmp_path_factory.mktemp("risk-cli") / "book")
    generate_book(ws, BookConfig(customers=1500, months=10, seed=8))
    return ws.root


def run(app, *args: str):
    return CliRunner().invoke(app, list(args))


def run_json(app, *args: str) -> dict:
    result = run(app, *args, "--json")
    assert result.exit_code == 0, result.output + (result.stderr or "")
    return json.loads(result.stdout)


def test_assess_json_names_the_report_and_the_headline(app, workspace):
    doc = run_json(app, "assess", "--workspace", str(workspace), "--clusters", "3")
    assert Path(doc["report"]).is_file()
    assert doc["as_of"] == "2024-10-31"
    assert {"open_loans", "m1plus_balance_rate", "m4plus_balance_rate"} <= doc["headline"].keys()


def test_assess_for_people_prints_where_the_report_is(app, workspace):
    result = run(app, "assess", "--workspace", str(workspace), "--as-of", "2024-08-15")
    assert result.exit_code == 0, result.output
    assert "as of 2024-07-31" in result.stdout and "assessment.html" in result.stdout


def test_risk_delinquency_by_segment(app, workspace):
    doc = run_json(app, "risk", "delinquency", "--workspace", str(workspace), "--by", "grade,term")
    dims = {r["dimension"] for r in doc["rows"]}
    assert dims == {"grade", "term"}
    assert {r["segment"] for r in doc["rows"] if r["dimension"] == "term"} <= {"3", "6", "12", "24"}
    assert all(r["month_end"] == doc["as_of"] for r in doc["rows"])


def test_risk_vintages_and_roll_rates(app, workspace):
    vint = run_json(app, "risk", "vintages", "--workspace", str(workspace), "--metric", "ever_m3plus_rate")
    assert {"vintage", "mob", "ever_m3plus_rate"} <= vint["rows"][0].keys()
    rolls = run_json(app, "risk", "roll-rates", "--workspace", str(workspace), "--by", "grade")
    assert {"all", "grade=A", "grade=E"} <= rolls["matrices"].keys()
    m = rolls["matrices"]["all"]
    assert m["states_from"] == ["current", "M1", "M2", "M3", "M4+"]
    assert sum(m["probabilities"][0]) == pytest.approx(1.0)


def test_warn_then_acknowledge_and_resolve_an_alert(app, workspace, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - id: any-arrears\n    indicator: m1plus_balance_rate\n    threshold: 0\n", encoding="utf-8"
    )
    doc = run_json(app, "warn", "--as-of", "2024-09-30", "--rules", str(rules), "--workspace", str(workspace))
    assert doc["raised"] == ["any-arrears@2024-09"]
    assert doc["watchlist"]["top"] and doc["watchlist"]["dimension"] == "grade"
    listed = run_json(app, "alerts", "list", "--workspace", str(workspace))
    assert "any-arrears@2024-09" in [a["alert_id"] for a in listed["alerts"]]
    ack = run_json(app, "alerts", "ack", "any-arrears@2024-09", "--by", "li.wei", "--workspace", str(workspace))
    assert (ack["status"], ack["acknowledged_by"]) == ("acknowledged", "li.wei")
    done = run_json(
        app, "alerts", "resolve", "any-arrears@2024-09", "--by", "li.wei", "--note", "ok", "--workspace", str(workspace)
    )
    assert (done["status"], done["note"]) == ("resolved", "ok")
    again = run(app, "alerts", "ack", "any-arrears@2024-09", "--by", "li.wei", "--workspace", str(workspace))
    assert again.exit_code == 2 and "is resolved" in again.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["warn", "--as-of", "30/09/2024"], "`--as-of`: '30/09/2024' is not a date"),
        (["risk", "delinquency", "--by", "colour"], "`--by`: 'colour' is not a segment"),
        (["risk", "vintages", "--metric", "m9_rate"], "`--metric`: 'm9_rate' is not allowed"),
        (["risk", "roll-rates", "--weight", "fen"], "`weight`: 'fen' is not allowed"),
        (["warn", "--as-of", "2020-01-31"], "before the book's first month end"),
        (["warn", "--as-of", "2024-09-30", "--rules", "missing.yaml"], "missing.yaml does not exist"),
        (["alerts", "list", "--status", "closed"], "`--status`: 'closed' is not allowed"),
        (["alerts", "ack", "nope", "--by", "me"], "'nope' is not an alert"),
    ],
    ids=[
        "bad-date",
        "bad-segment",
        "bad-metric",
        "bad-weight",
        "as-of-too-early",
        "missing-rules",
        "bad-status",
        "no-alert",
    ],
)
def test_mistakes_are_one_line_on_stderr_and_exit_2(app, workspace, args, message):
    result = run(app, *args, "--workspace", str(workspace))
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_a_bad_rule_file_names_the_field(app, workspace, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - id: r\n    indicator: m1plus_balance_rate\n    threshold: high\n", encoding="utf-8")
    result = run(app, "warn", "--as-of", "2024-09-30", "--rules", str(rules), "--workspace", str(workspace), "--json")
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert (error["code"], error["field"]) == ("warning.rules_invalid", "rules.0.threshold")


def test_a_folder_without_a_book_says_what_to_run(app, tmp_path):
    Workspace.init(tmp_path / "empty")
    result = run(app, "assess", "--workspace", str(tmp_path / "empty"))
    assert result.exit_code == 2 and "runoff generate" in result.stderr
