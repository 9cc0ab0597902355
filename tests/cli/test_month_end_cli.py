"""`runoff snapshot` and the month-end hook of `runoff close-day`, on both databases: JSON shapes, exit codes, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from runoff.store.workspace import Workspace
from tests.app.test_month_end import FEB, FEBRUARY, run_february, write_book
from tests.cli.invoke import run_json


@pytest.fixture
def cli(app, ledger, ledger_url, tmp_path):
    """A workspace holding the hand-built book, its ledger brought to the eve of the close of 2024-02-29."""
    write_book(tmp_path)
    run_february(ledger, close_february=False)
    env = {"RUNOFF_DATABASE_URL": ledger_url, "RUNOFF_WORKSPACE": str(tmp_path)}

    def run(*args: str) -> tuple[int, str, str]:
        result = CliRunner(env=env).invoke(app, list(args))
        return result.exit_code, result.stdout, result.stderr

    return run


def feb_rows(root: Path) -> int:
    return Workspace(root).scan("performance").filter(pl.col("month_end") == FEB).collect().height


def test_close_day_on_a_month_end_appends_the_month(cli, tmp_path):
    data = run_json(cli, "close-day", "--as-of", "2024-02-29")
    snap = data["snapshot"]
    assert (snap["status"], snap["as_of"], snap["rows"], snap["replaced_rows"]) == ("written", "2024-02-29", 6, 0)
    assert (snap["not_in_book"], snap["not_in_book_sample"]) == (1, ["X-107"])
    assert snap["by_bucket"]["M1"] == {"loans": 2, "principal": "2400.00"}
    assert snap["close_id"] == data["close_id"]
    assert feb_rows(tmp_path) == len(FEBRUARY)


def test_close_day_says_what_the_snapshot_did_in_one_line(cli):
    code, out, err = cli("close-day", "--as-of", "2024-02-29")
    assert code == 0, out + err
    assert "month-end snapshot: 6 rows for 2024-02-29 appended to the performance table" in " ".join(out.split())


def test_no_snapshot_leaves_the_month_to_runoff_snapshot_and_a_rerun_replaces_it(cli, tmp_path):
    data = run_json(cli, "close-day", "--as-of", "2024-02-29", "--no-snapshot")
    assert data["snapshot"]["status"] == "skipped" and "--no-snapshot" in data["snapshot"]["reason"]
    assert feb_rows(tmp_path) == 0
    first = run_json(cli, "snapshot", "--as-of", "2024-02-29")
    assert (first["rows"], first["replaced_rows"], first["month"]) == (6, 0, "2024-02")
    again = run_json(cli, "snapshot", "--as-of", "2024-02-29")
    assert (again["rows"], again["replaced_rows"]) == (6, 6)
    assert feb_rows(tmp_path) == 6


def test_a_day_that_is_not_a_month_end_writes_no_snapshot(cli, tmp_path):
    data = run_json(cli, "close-day", "--as-of", "2024-02-21")
    assert data["snapshot"] is None
    assert feb_rows(tmp_path) == 0


@pytest.mark.parametrize(
    ("as_of", "code", "message"),
    [
        ("2024-02-28", "month_end.not_month_end", "2024-02-28 is not a month end"),
        (
            "2024-02-29",
            "month_end.close_missing",
            "daily close of 2024-02-29 has not been run (last close: 2024-01-31)",
        ),
        ("2024-01-31", "month_end.book_month", "already holds the book's own rows for 2024-01"),
        ("2024-02-30", "input.invalid", "`as-of`: '2024-02-30' is not a date"),
    ],
    ids=["not-a-month-end", "close-missing", "book-month", "not-a-date"],
)
def test_snapshot_refusals_are_one_line_and_exit_2(cli, tmp_path, as_of, code, message):
    status, out, err = cli("snapshot", "--as-of", as_of)
    assert status == 2, out + err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and message in err, err
    status, out, err = cli("snapshot", "--as-of", as_of, "--json")
    assert status == 2 and json.loads(out)["error"]["code"] == code
    assert feb_rows(tmp_path) == 0


def test_a_snapshot_that_fails_after_the_close_exits_1_and_says_what_to_run(cli, tmp_path):
    (tmp_path / "data" / "performance" / "ledger-months.json").mkdir()  # the list of ledger months cannot be written
    code, out, err = cli("close-day", "--as-of", "2024-02-29", "--json")
    assert code == 1, out + err
    data = json.loads(out)
    assert data["as_of"] == "2024-02-29" and data["already_closed"] is False  # the close itself is done
    assert data["snapshot"]["status"] == "failed" and data["snapshot"]["error"]["code"] == "month_end.io"
    assert len(err.strip().splitlines()) == 1 and "runoff snapshot --as-of 2024-02-29" in err, err
    (tmp_path / "data" / "performance" / "ledger-months.json").rmdir()
    rerun = run_json(cli, "close-day", "--as-of", "2024-02-29")  # already closed: only the snapshot is written
    assert rerun["already_closed"] is True and rerun["snapshot"]["rows"] == 6


def test_a_ledger_without_a_workspace_closes_month_ends_without_a_snapshot(app, ledger, ledger_url, tmp_path):
    env = {"RUNOFF_DATABASE_URL": ledger_url, "RUNOFF_WORKSPACE": str(tmp_path / "nowhere")}
    result = CliRunner(env=env).invoke(app, ["close-day", "--as-of", "2024-02-29", "--json"])
    assert result.exit_code == 0, result.output
    snap = json.loads(result.stdout)["snapshot"]
    assert snap["status"] == "skipped" and "is not a workspace" in snap["reason"]
