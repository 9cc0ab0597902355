"""`runoff import`: the equation in people's view and in --json, --strict's exit code, user mistakes as one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from runoff.cli.main import build_app
from runoff.portfolio.generator import BookConfig, generate_partition
from runoff.portfolio.tape import load_mapping, tape_from_book, tape_in_source_columns

EXAMPLE = Path(__file__).parents[2] / "examples" / "mappings" / "cn_loan_tape.yaml"


@pytest.fixture(scope="module")
def app():
    return build_app()


@pytest.fixture(scope="module")
def cn_tape() -> pl.DataFrame:
    book = generate_partition(BookConfig(customers=200, months=6, seed=5), 0)
    as_of = book["performance"].get_column("month_end").max()
    tape = tape_from_book(book["loans"], book["performance"], as_of=as_of)
    return tape_in_source_columns(tape, load_mapping(EXAMPLE))


@pytest.fixture
def workspace(app, tmp_path) -> Path:
    root = tmp_path / "ws"
    assert CliRunner().invoke(app, ["init", str(root)]).exit_code == 0
    return root


def tape_with_bad_rows(cn_tape: pl.DataFrame, path: Path, bad: int) -> Path:
    """The tape with the term of its first ``bad`` rows set to 0 (out of range)."""
    cn_tape.with_columns(
        pl.when(pl.int_range(pl.len()) < bad).then(pl.lit("0")).otherwise(pl.col("期数")).alias("期数")
    ).write_csv(path)
    return path


def invoke(app, *args: str):
    return CliRunner().invoke(app, ["import", *args])


def test_import_prints_read_equals_loaded_plus_quarantined(app, workspace, cn_tape, tmp_path):
    path = tape_with_bad_rows(cn_tape, tmp_path / "借据.csv", 3)
    result = invoke(app, str(path), "--mapping", str(EXAMPLE), "--workspace", str(workspace))
    assert result.exit_code == 0, result.output
    read, loaded, quarantined = map(
        int, re.search(r"read ([\d,]+) = loaded ([\d,]+) \+ quarantined ([\d,]+)", result.stdout).groups()
    )
    assert (read, loaded, quarantined) == (cn_tape.height, cn_tape.height - 3, 3)
    assert "range.term" in result.stdout
    assert "quarantine report: data/quarantine/part-" in result.stdout


def test_json_output_carries_the_counts_per_file_and_in_total(app, workspace, cn_tape, tmp_path):
    path = tape_with_bad_rows(cn_tape, tmp_path / "t.csv", 2)
    result = invoke(app, str(path), "-m", str(EXAMPLE), "-w", str(workspace), "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["read"] == data["loaded"] + data["quarantined"] == cn_tape.height
    assert data["reasons"] == {"range.term": 2}
    assert data["files"][0]["sha256"] and data["ledger"] == "loaded"


def test_second_import_of_the_same_file_says_it_was_imported_before(app, workspace, cn_tape, tmp_path):
    path = tmp_path / "t.csv"
    cn_tape.write_csv(path)
    first = json.loads(invoke(app, str(path), "-m", str(EXAMPLE), "-w", str(workspace), "--json").stdout)
    again = invoke(app, str(path), "-m", str(EXAMPLE), "-w", str(workspace))
    assert again.exit_code == 0
    assert "Nothing to import" in again.stdout
    assert "already imported" in again.stdout
    assert first["import_id"] in again.stdout


@pytest.mark.parametrize(("bad", "code"), [(0, 0), (1, 1)], ids=["clean-tape", "one-bad-row"])
def test_strict_exits_1_on_any_rejection_and_loads_nothing(app, workspace, cn_tape, tmp_path, bad, code):
    path = tape_with_bad_rows(cn_tape, tmp_path / "t.csv", bad)
    result = invoke(app, str(path), "-m", str(EXAMPLE), "-w", str(workspace), "--strict", "--json")
    assert result.exit_code == code
    data = json.loads(result.stdout)
    assert data["read"] == data["loaded"] + data["quarantined"] + data["held_back"]
    assert data["loaded"] == (0 if bad else cn_tape.height)
    assert (workspace / "data" / "loans").is_dir() is (not bad)
    if bad:
        assert "--strict loaded nothing" in result.stderr
        assert data["quarantine_files"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mapping", "MISSING.yaml"], "cannot be read"),
        (["--as-of", "31/12/2024"], "`--as-of`: '31/12/2024' is not a date"),
        (["--mapping", "BAD.yaml"], "loan_number"),
        ([], "no column for"),
    ],
    ids=["mapping-not-found", "bad-as-of", "bad-mapping-field", "tape-without-mapping"],
)
def test_user_mistakes_are_one_line_and_exit_2(app, workspace, cn_tape, tmp_path, args, message):
    path = tmp_path / "t.csv"
    cn_tape.head(5).write_csv(path)
    (tmp_path / "BAD.yaml").write_text("columns:\n  loan_number: 借据号\n", encoding="utf-8")
    args = [str(tmp_path / a) if a.endswith(".yaml") else a for a in args]
    result = invoke(app, str(path), "-w", str(workspace), *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_folder_that_is_not_a_workspace_is_refused(app, tmp_path, cn_tape):
    path = tmp_path / "t.csv"
    cn_tape.head(5).write_csv(path)
    result = invoke(app, str(path), "-m", str(EXAMPLE), "-w", str(tmp_path / "nowhere"), "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["code"] == "config.invalid"


def test_an_alphanumeric_tape_imports_and_lookup_finds_each_reference(app, workspace, cn_tape, tmp_path):
    tape = cn_tape.head(20).with_columns(
        (pl.lit("DK2024") + pl.col("借据号").str.zfill(10)).alias("借据号"),
        (pl.lit("C-") + pl.col("客户号")).alias("客户号"),
    )
    path = tmp_path / "借据明细.csv"
    tape.write_csv(path)

    shown = invoke(app, str(path), "-m", str(EXAMPLE), "-w", str(workspace))
    ref = tape.get_column("借据号")[4]
    found = CliRunner().invoke(app, ["lookup", ref, "-w", str(workspace), "--json"])
    said = CliRunner().invoke(app, ["lookup", ref, "-w", str(workspace)])

    assert shown.exit_code == 0, shown.output
    assert re.search(r"read 20 = loaded 20 \+ quarantined 0", shown.stdout)
    assert "new ids for lender references: 20 loan" in shown.stdout
    assert found.exit_code == 0, found.output
    data = json.loads(found.stdout)
    assert (data["ref"], data["id"], data["ledger_id"], data["source"], data["in_book"]) == (
        ref,
        5,
        "5",
        "id map",
        True,
    )
    assert f"'{ref}' → id 5" in said.stdout


def test_lookup_of_an_unknown_kind_is_one_line_and_exit_2(app, workspace):
    result = CliRunner().invoke(app, ["lookup", "DK1", "--kind", "merchant", "-w", str(workspace)])
    assert result.exit_code == 2
    assert "`kind`: 'merchant' is not a kind of reference" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
