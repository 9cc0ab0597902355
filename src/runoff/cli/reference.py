"""The CLI reference (命令参考), generated from the Typer app so ``docs/cli.md`` never drifts from the code.

:func:`cli_reference_markdown` walks the click command tree that Typer builds from
:func:`runoff.cli.main.build_app` — groups and their commands, recursively — and writes, for each command,
its usage line, its help text and a table of its arguments and options with their help and defaults.
``tests/cli/test_reference.py`` fails when ``docs/cli.md`` differs; regenerate it with::

    .venv/bin/python -c "from runoff.cli.reference import write_reference; write_reference()"
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import typer

REGENERATE = '.venv/bin/python -c "from runoff.cli.reference import write_reference; write_reference()"'
"""The command that rewrites ``docs/cli.md`` from the code."""

DEFAULT_PATH = "docs/cli.md"


@dataclass(frozen=True, slots=True)
class CommandEntry:
    """One command of the tree: its words after ``runoff``, the click command and its context."""

    path: tuple[str, ...]
    command: Any  # a (vendored) click Command or Group
    context: Any  # its click Context, chained to its parents' (the usage line needs them)

    @property
    def name(self) -> str:
        return " ".join(("runoff", *self.path))

    @property
    def is_group(self) -> bool:
        return hasattr(self.command, "commands")


def command_tree(app: typer.Typer | None = None) -> list[CommandEntry]:
    """Every visible group and command under the root, depth first, siblings in alphabetical order."""
    if app is None:
        from runoff.cli.main import build_app  # the app is built on demand, never at import

        app = build_app()
    root = typer.main.get_command(app)
    out: list[CommandEntry] = []

    def walk(command: Any, path: tuple[str, ...], parent: Any) -> None:
        ctx = command.context_class(command, info_name=path[-1] if path else "runoff", parent=parent)
        out.append(CommandEntry(path, command, ctx))
        for name in sorted(getattr(command, "commands", {})):
            sub = command.commands[name]
            if not getattr(sub, "hidden", False):
                walk(sub, (*path, name), ctx)

    walk(root, (), None)
    return out


def leaf_commands(app: typer.Typer | None = None) -> list[CommandEntry]:
    """The commands a user runs (groups left out)."""
    return [e for e in command_tree(app) if e.path and not e.is_group]


def option_names(entry: CommandEntry) -> set[str]:
    """Every flag a command accepts (``--json``, ``-w``, ...), besides click's own ``--help``."""
    return {opt for p in entry.command.params for opt in (*p.opts, *p.secondary_opts) if opt.startswith("-")}


# --- text --------------------------------------------------------------------------------------------------------


def help_text(command: Any) -> str:
    """A command's help as Markdown paragraphs (its docstring's lines joined, paragraphs kept)."""
    raw = inspect.cleandoc(command.help or "")
    paragraphs = [" ".join(line.strip() for line in block.splitlines()) for block in re.split(r"\n\s*\n", raw)]
    return "\n\n".join(_escape(p) for p in paragraphs if p)


def _escape(text: str) -> str:
    """Markdown-safe prose: ``<`` (HTML), ``*`` (emphasis) and ``|`` (tables) escaped outside code spans."""
    parts = text.split("`")
    for k in range(0, len(parts), 2):  # even parts are outside backticks
        part = parts[k].replace("\\", "\\\\")
        for char in ("<", "*", "|"):
            part = part.replace(char, "\\" + char)
        parts[k] = part
    return "`".join(parts)


def _cell(text: str) -> str:
    return _escape(" ".join(text.split())) if text else ""


def _default(param: Any) -> str:
    """The default a user gets when the parameter is left out, as a table cell."""
    if getattr(param, "required", False):
        return "required"
    value = param.default
    if callable(value):
        return "(computed)"
    if value is None or value == () or value == []:
        return ""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, list | tuple):
        value = ", ".join(str(v.value if isinstance(v, Enum) else v) for v in value)
    return f"`{value}`"


def _declaration(param: Any, ctx: Any) -> str:
    record = param.get_help_record(ctx)
    name = record[0] if record else ", ".join(param.opts)
    return f"`{name}`"


def _usage(entry: CommandEntry) -> str:
    usage: str = entry.command.get_usage(entry.context)
    return usage.removeprefix("Usage: ").strip()


def _anchor(name: str) -> str:
    """The heading anchor GitHub and most renderers derive from ``name``."""
    return re.sub(r"[^a-z0-9 _-]", "", name.lower()).replace(" ", "-")


def _command_section(entry: CommandEntry) -> list[str]:
    level = "#" * min(2 + max(len(entry.path) - 1, 0), 4)
    lines = [f"{level} {entry.name}", "", "```", _usage(entry), "```", ""]
    text = help_text(entry.command)
    if text:
        lines += [text, ""]
    if entry.is_group:
        subs = [
            (name, sub) for name, sub in sorted(entry.command.commands.items()) if not getattr(sub, "hidden", False)
        ]
        lines += ["| command | what it does |", "|---|---|"]
        for name, sub in subs:
            full = f"{entry.name} {name}"
            lines.append(f"| [`{full}`](#{_anchor(full)}) | {_cell(_first_sentence(sub))} |")
        lines.append("")
    params = [p for p in entry.command.params if not getattr(p, "hidden", False)]
    if params and not entry.is_group:
        lines += ["| argument / option | help | default |", "|---|---|---|"]
        for p in params:
            kind = "argument " if getattr(p, "param_type_name", "") == "argument" else ""
            lines.append(f"| {kind}{_declaration(p, entry.context)} | {_cell(p.help or '')} | {_default(p)} |")
        lines.append("")
    return lines


def _first_sentence(command: Any) -> str:
    text = " ".join(inspect.cleandoc(command.help or "").split())
    cut = re.search(r"(?<=[.!?])\s", text)
    return text[: cut.start()] if cut else text


def cli_reference_markdown(app: typer.Typer | None = None) -> str:
    """The CLI reference as Markdown: the command index, then every group and command in turn."""
    tree = command_tree(app)
    root = tree[0]
    lines = [
        "# Command reference (`runoff`)",
        "",
        "<!-- Generated from the Typer app by runoff.cli.reference.cli_reference_markdown(); do not edit by hand.",
        f"     Regenerate with: {REGENERATE} -->",
        "",
        "Every command takes `--help`. Every command takes `--json` and then prints one JSON document on stdout "
        "instead of tables. A user's mistake is one line on stderr (`error <code>: <message>`) and exit code 2; "
        'with `--json` the same error is also printed on stdout as `{"error": {"code", "message", ...}}`. '
        "Commands that check something (for example `ledger verify`, `plan check`) exit 1 when they find a problem, "
        "as their help says. The workspace is `--workspace`, else `RUNOFF_WORKSPACE`, else the current folder "
        "(`docs/settings.md`).",
        "",
        "```",
        _usage(root),
        "```",
        "",
        help_text(root.command),
        "",
    ]
    root_params = [p for p in root.command.params if not getattr(p, "hidden", False)]
    if root_params:
        lines += ["| option | help |", "|---|---|"]
        lines += [f"| {_declaration(p, root.context)} | {_cell(p.help or '')} |" for p in root_params]
        lines.append("")
    lines += ["## Commands", "", "| command | what it does |", "|---|---|"]
    for entry in tree[1:]:
        if not entry.is_group:
            lines.append(f"| [`{entry.name}`](#{_anchor(entry.name)}) | {_cell(_first_sentence(entry.command))} |")
    lines.append("")
    for entry in tree[1:]:
        lines += _command_section(entry)
    return "\n".join(lines).rstrip("\n") + "\n"


def write_reference(path: str | Path = DEFAULT_PATH) -> Path:
    """Write :func:`cli_reference_markdown` to ``path`` (relative to the current folder: run from the repository)."""
    target = Path(path)
    target.write_text(cli_reference_markdown(), encoding="utf-8")
    return target


__all__ = [
    "REGENERATE",
    "CommandEntry",
    "cli_reference_markdown",
    "command_tree",
    "help_text",
    "leaf_commands",
    "option_names",
    "write_reference",
]
