"""`runoff init`, `runoff generate`, `runoff info`: end to end through the CLI, people's view and --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runoff.cli.main import build_app


@pytest.fixture(scope="module")
def app():
    return build_app()


def run(app, *args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env=env)


@pytest.fixture(scope="module")
def workspace(app, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "book"
    assert run(app, "init", str(root)).exit_code == 0
    result = run(
        app, "generate", "--customers", "800", "--months", "8", "--seed", "4", "--workspace", str(root), "--json"
    )
    assert result.exit_code == 0, result.output + (result.stderr or "")
    return root


def test_init_creates_a_workspace_and_says_where(app, tmp_path: Path) -> None:
    result = run(app, "init", str(tmp_path / "ws"), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["workspace"] == str((tmp_path / "ws").resolve())
    assert (tmp_path / "ws" / "runoff.toml").is_file()


def test_generate_reports_counts_calibration_and_saves_the_truth(app, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    run(app, "init", str(root))
    result = run(
        app,
        "generate",
        "--customers",
        "300",
        "--months",
        "6",
        "--seed",
        "1",
        "--json",
        env={"RUNOFF_WORKSPACE": str(root)},
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["totals"]["customers_rows"] == 300
    assert out["totals"]["loans_rows"] > 0
    assert set(out["calibration"]) >= {"d1_rate", "cured_30d_rate", "to_30dpd_rate", "m4plus_ratio"}
    for name in ("transitions.parquet", "macro.parquet", "parameters.json", "products.json"):
        assert (root / "data" / "truth" / name).is_file()


def test_info_json_counts_match_what_generate_wrote(app, workspace: Path) -> None:
    result = run(app, "info", "--workspace", str(workspace), "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["row_counts"]["customers"] == 800
    assert info["book"]["totals"]["loans_rows"] == info["row_counts"]["loans"] == info["originated"]["loans"]
    assert info["first_month_end"] == "2024-01-31" and info["as_of"] == "2024-08-31"
    assert {r["bucket"] for r in info["by_bucket"]} >= {"current", "M1", "M2", "M3", "M4+"}
    assert sum(r["originated"] for r in info["by_vintage"]) == info["row_counts"]["loans"]
    open_balance = sum(r["balance_fen"] for r in info["by_bucket"] if r["bucket"] not in ("charged-off", "closed"))
    assert sum(r["balance_fen"] for r in info["by_product"]) == open_balance


def test_info_prints_tables_for_people(app, workspace: Path) -> None:
    result = run(app, "info", "--workspace", str(workspace))
    assert result.exit_code == 0
    for heading in ("Balance by bucket", "By product", "By vintage"):
        assert heading in result.stdout


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["generate", "--customers", "10", "--start", "2024-13"], "--start"),
        (["generate", "--customers", "0"], "customers"),
        (["generate", "--customers", "10", "--months", "0"], "months"),
        (["info"], "runoff init"),
    ],
    ids=["bad-start-month", "no-customers", "no-months", "not-a-workspace"],
)
def test_bad_input_exits_2_with_one_line_naming_the_problem(app, tmp_path: Path, args: list[str], named: str) -> None:
    result = run(app, *args, "--workspace", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert named in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_info_on_an_empty_workspace_says_how_to_fill_it(app, tmp_path: Path) -> None:
    run(app, "init", str(tmp_path))
    result = run(app, "info", "--workspace", str(tmp_path))
    assert result.exit_code == 0
    assert "runoff generate" in result.stdout
    assert json.loads(run(app, "info", "--workspace", str(tmp_path), "--json").stdout)["row_counts"] == {}


def test_generate_load_ledger_puts_the_open_book_into_a_clean_ledger(app, tmp_path: Path) -> None:
    root = str(tmp_path / "ws")
    run(app, "init", root)
    result = run(
        app, "generate", "--customers", "600", "--months", "9", "--seed", "3", "-w", root, "--load-ledger", "--json"
    )
    assert result.exit_code == 0, result.output + (result.stderr or "")
    ledger = json.loads(result.stdout)["ledger"]
    info = json.loads(run(app, "info", "-w", root, "--json").stdout)
    open_rows = [r for r in info["by_bucket"] if r["bucket"] in ("current", "M1", "M2", "M3", "M4+")]
    assert ledger["loans"] == sum(r["loans"] for r in open_rows) > 0
    assert ledger["customers"] == ledger["accounts"] == 600
    assert ledger["as_of"] == info["as_of"]
    balance = json.loads(run(app, "ledger", "balance", "-w", root, "--json").stdout)
    receivable_fen = round(float(balance["balances"]["loans_receivable"]) * 100)
    assert receivable_fen == sum(r["balance_fen"] for r in open_rows)
    assert run(app, "ledger", "verify", "-w", root).exit_code == 0


def test_a_book_is_never_loaded_twice_into_one_ledger(app, tmp_path: Path) -> None:
    root = str(tmp_path / "ws")
    run(app, "init", root)
    assert run(app, "generate", "--customers", "200", "--months", "4", "-w", root, "--load-ledger").exit_code == 0
    again = run(app, "generate", "--customers", "300", "--months", "4", "-w", root, "--load-ledger")
    assert again.exit_code == 2
    assert "already holds" in again.stderr
    assert json.loads(run(app, "info", "-w", root, "--json").stdout)["book"]["config"]["customers"] == 200
