"""How every command prints: Rich tables for people, one JSON document with ``--json`` for scripts."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from runoff.errors import RunoffError

JSON_META_KEY = "runoff.json"


def _remember_json(ctx: typer.Context, value: bool) -> bool:
    # ctx.meta is shared by the whole context chain, so the root group's error renderer sees it
    if value:
        ctx.meta[JSON_META_KEY] = True
    return value


JsonOption = typer.Option(False, "--json", help="Print one JSON document instead of tables.", callback=_remember_json)

console = Console()
err_console = Console(stderr=True)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json(data: Any) -> str:
    return json.dumps(data, default=_default, ensure_ascii=False, indent=2)


def emit(data: Any, *, as_json: bool, render: Callable[[Console], None] | None = None) -> None:
    """Print ``data`` as JSON, or call ``render`` with the console for the human view."""
    if as_json or render is None:
        typer.echo(to_json(data))
    else:
        render(console)


def fail(error: RunoffError, *, as_json: bool) -> None:
    """The CLI's one error renderer: one line on stderr (and the JSON shape on stdout with --json)."""
    if as_json:
        typer.echo(to_json({"error": error.to_dict()}))
    rule = f" [{error.rule_id}]" if error.rule_id else ""
    err_console.print(
        f"[red]error[/red] {error.code}{rule}: {error.message}", markup=True, highlight=False, soft_wrap=True
    )
    raise typer.Exit(code=error.exit_code)


def allocation_table(lines: Any, *, credited: Decimal | None = None) -> Table:
    """Where a payment or recovery went: one row per installment and component, plus credit held."""
    table = Table()
    for name in ("installment", "component", "amount"):
        table.add_column(name, justify="right")
    for line in lines:
        table.add_row(str(line.number), line.component.value, str(line.amount))
    if credited:
        table.add_row("-", "credit", str(credited))
    return table
