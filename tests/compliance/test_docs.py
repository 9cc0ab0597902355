"""docs/compliance.md is checked against the code: the shipped-rules table, the check types and the rule kinds."""

import typing
from pathlib import Path

from runoff.compliance.catalogue import TABLE_END, TABLE_START, rules_table_block
from runoff.compliance.checks import Check
from runoff.compliance.taxonomy import RuleKind

DOC = Path(__file__).resolve().parents[2] / "docs" / "compliance.md"


def _text() -> str:
    return DOC.read_text(encoding="utf-8")


def test_the_shipped_rules_table_is_generated_from_the_packs():
    text = _text()
    block = text[text.index(TABLE_START) : text.index(TABLE_END) + len(TABLE_END)]
    assert block == rules_table_block(), (
        "docs/compliance.md is out of date: regenerate the table with `.venv/bin/python -m runoff.compliance.catalogue`"
    )


def test_every_parameter_block_and_rule_kind_is_documented():
    union = typing.get_args(Check)[0]
    names = [typing.get_args(m.model_fields["check"].annotation)[0] for m in typing.get_args(union)]
    text = _text()
    assert len(names) == 15
    for name in names:
        assert f"`{name}`" in text, name
    for kind in RuleKind:
        assert f"\n| {kind.value} |" in text, kind


def test_the_documented_commands_exist():
    import typer

    from runoff.cli.compliance import register

    app = typer.Typer()
    register(app)
    (group,) = app.registered_groups
    commands = {c.name for c in group.typer_instance.registered_commands}
    assert commands == {"rules", "check-contacts", "retention"}
    for name in commands:
        assert f"runoff compliance {name}" in _text()
