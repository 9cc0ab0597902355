"""The main job end to end on a small book: every step runs and leaves the reports it names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runoff.cli.main import build_app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


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
    assert len(titles) == 4
    assert all(Path(p).exists() for p in summary["outputs"])
    assert (workspace / "reports" / "assessment.html").is_file()
    plans = summary["steps"][3]["data"]["plans"]
    assert plans["breaks-rules"]["blocked"] is True
    assert plans["phased-three-wave"]["blocked"] is False
    assert summary["steps"][1]["data"]["ledger"]["loans"] > 0
