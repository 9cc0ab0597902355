"""The workspace: its folders, where it is found, and partitioned Parquet written atomically and reproducibly."""

from __future__ import annotations

import tomllib
from pathlib import Path

import polars as pl
import pytest

from runoff.errors import ConfigError, InvalidInput, NotFound
from runoff.portfolio.generator import BookConfig, generate_partition
from runoff.store.workspace import Workspace, locate_workspace


def test_init_creates_the_folders_and_runoff_toml(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "book")
    for folder in ("data", "models", "runs", "reports"):
        assert (ws.root / folder).is_dir()
    settings = tomllib.loads((ws.root / "runoff.toml").read_text(encoding="utf-8"))
    assert settings["workspace"] == {"name": "book", "format": 1}


def test_init_twice_keeps_the_existing_settings(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path)
    (ws.root / "runoff.toml").write_text('[workspace]\nname = "mine"\nformat = 1\n', encoding="utf-8")
    assert Workspace.init(tmp_path).settings["workspace"]["name"] == "mine"


def test_init_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        Workspace.init(target)


def test_open_tells_how_to_create_a_workspace(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="runoff init"):
        Workspace.open(tmp_path)


@pytest.mark.parametrize(
    ("explicit", "env", "expected"),
    [
        ("given", {"RUNOFF_WORKSPACE": "from-env"}, "given"),
        (None, {"RUNOFF_WORKSPACE": "from-env"}, "from-env"),
        (None, {}, "cwd"),
        (None, {"RUNOFF_WORKSPACE": ""}, "cwd"),
    ],
    ids=["flag-wins", "environment", "current-folder", "empty-environment"],
)
def test_locate_workspace_flag_then_environment_then_current_folder(explicit, env, expected) -> None:
    assert locate_workspace(explicit, env=env, cwd=Path("cwd")) == Path(expected)


def test_partitions_round_trip_and_scan_as_one_table(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path)
    frames = [generate_partition(BookConfig(customers=50, months=3, seed=1), 0)["loans"]] * 2
    for k, frame in enumerate(frames):
        ws.write_partition("loans", k, frame)
    assert ws.partitions("loans") == [0, 1]
    assert ws.partition_path("loans", 1).name == "part-00001.parquet"
    assert ws.read_partition("loans", 0).equals(frames[0])
    assert ws.scan("loans").select(pl.len()).collect().item() == 2 * frames[0].height
    assert not list(ws.table_dir("loans").glob(".*tmp"))  # no temporary file left behind


def test_writing_a_book_table_checks_its_schema(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path)
    with pytest.raises(InvalidInput, match="missing"):
        ws.write_partition("loans", 0, pl.DataFrame({"loan_id": [1]}))
    assert ws.partitions("loans") == []


def test_missing_tables_are_reported_with_what_to_do(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path)
    with pytest.raises(NotFound, match="runoff generate"):
        ws.scan("performance")


def test_same_seed_writes_byte_identical_parquet(tmp_path: Path) -> None:
    config = BookConfig(customers=300, months=6, seed=3)
    paths = []
    for name in ("a", "b"):
        ws = Workspace.init(tmp_path / name)
        for table, frame in generate_partition(config, 0).items():
            ws.write_partition(table, 0, frame)
        paths.append(ws)
    for table in ("customers", "accounts", "loans", "installments", "payments", "performance"):
        first, second = (ws.partition_path(table, 0).read_bytes() for ws in paths)
        assert first == second, table
