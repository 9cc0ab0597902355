"""docs/cli.md is the CLI reference generated from the Typer app; every command has help and takes --json."""

from pathlib import Path

import pytest
import typer

from runoff.cli.main import build_app
from runoff.cli.reference import REGENERATE, cli_reference_markdown, command_tree, leaf_commands, option_names

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"

JSON_EXCEPTIONS: dict[str, str] = {}
"""Commands that legitimately take no --json, with why. None may: `--version` and `--help` are options of the
root, not commands. A command missing --json is reported to the lead and listed here with a comment until fixed."""


def test_docs_cli_md_is_the_generated_reference():
    written = DOC.read_text(encoding="utf-8") if DOC.is_file() else ""
    assert written == cli_reference_markdown(), (
        f"docs/cli.md is out of date with the commands in src/runoff/cli; regenerate it from the repository root with\n"
        f"    {REGENERATE}\nand commit docs/cli.md"
    )


def test_the_reference_changes_when_a_command_is_added():
    app = build_app()
    before = cli_reference_markdown(app)

    @app.command("write-off")
    def write_off(as_json: bool = typer.Option(False, "--json", help="Print one JSON document.")) -> None:
        """Write a loan off (核销)."""

    after = cli_reference_markdown(app)
    assert after != before
    assert "### runoff write-off" not in after  # a top-level command is a level-2 heading
    assert "## runoff write-off" in after
    assert "Write a loan off (核销)." in after


def test_every_group_and_command_has_a_help_text():
    missing = [e.name for e in command_tree() if e.path and not (e.command.help or "").strip()]
    assert missing == []


@pytest.mark.parametrize("entry", leaf_commands(), ids=lambda e: e.name)
def test_every_command_takes_json(entry):
    if entry.name in JSON_EXCEPTIONS:
        pytest.skip(JSON_EXCEPTIONS[entry.name])
    assert "--json" in option_names(entry), f"{entry.name} does not take --json"


def test_a_command_without_json_is_caught():
    app = typer.Typer()

    @app.command("plain")
    def plain() -> None:
        """A command without --json."""

    @app.command("other")
    def other(as_json: bool = typer.Option(False, "--json")) -> None:
        """A command with --json."""

    entries = {e.name: e for e in leaf_commands(app)}
    assert "--json" not in option_names(entries["runoff plain"])
    assert "--json" in option_names(entries["runoff other"])


def test_each_command_section_has_its_usage_and_option_table():
    text = cli_reference_markdown()
    section = text[text.index("### runoff ledger verify") :]
    section = section[: section.index("\n## ")]
    assert "runoff ledger verify [OPTIONS]" in section
    assert "| `--limit <int range>` | List at most this many findings per check. | `1000` |" in section
    assert "| `--json` | Print one JSON document instead of tables. | off |" in section
