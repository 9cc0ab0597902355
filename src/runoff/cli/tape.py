"""`runoff import`: load loan tapes (借据明细) into the workspace, quarantining the rows that fail a check;
`runoff lookup REF`: the book (and ledger) id of a lender's reference such as 借据号 DK20240131000123.

Exit codes: 0 when the import ran (rows may have been quarantined), 1 under ``--strict`` when any row
was rejected (nothing loaded, the quarantine report written), 2 for a user mistake (unreadable file,
bad mapping, missing column), as every command.
"""

from __future__ import annotations

import contextlib
from datetime import date
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from runoff.app import clock
from runoff.app.context import build_context
from runoff.app.tape_import import ImportOutcome, RefLookup, import_tapes, ledger_position_loader, lookup_ref
from runoff.cli.output import JsonOption, emit, err_console, fail
from runoff.config import Settings
from runoff.errors import InvalidInput, RunoffError
from runoff.portfolio.tape import TapeMapping, load_mapping
from runoff.store.workspace import Workspace, locate_workspace

STRICT_EXIT_CODE = 1


def _render(outcome: ImportOutcome, console: Console) -> None:
    if outcome.import_id is None:
        console.print("Nothing to import: every file was imported before.")
    else:
        line = f"read {outcome.read:,} = loaded {outcome.loaded:,} + quarantined {outcome.quarantined:,}"
        if outcome.held_back:
            line += f" + held back {outcome.held_back:,} (--strict: nothing loaded)"
        console.print(line, highlight=False)
    files = Table(title="Files", show_lines=False)
    for col in ("file", "read", "loaded", "quarantined", "note"):
        files.add_column(col, justify="left" if col in ("file", "note") else "right")
    for f in outcome.files:
        note = f"already imported ({f.already_imported})" if f.already_imported else ""
        if f.held_back:
            note = f"held back {f.held_back:,}"
        files.add_row(f.file, f"{f.read:,}", f"{f.loaded:,}", f"{f.quarantined:,}", note)
    console.print(files)
    reasons = outcome.reasons()
    if reasons:
        table = Table(title="Quarantined rows by reason")
        table.add_column("reason")
        table.add_column("rows", justify="right")
        for reason, count in reasons.items():
            table.add_row(reason, f"{count:,}")
        console.print(table)
    assigned = {k: n for k, n in outcome.ids_assigned.items() if n}
    if assigned:
        given = ", ".join(f"{n:,} {k}" for k, n in assigned.items())
        console.print(f"new ids for lender references: {given} (runoff lookup REF)", highlight=False)
    for path in outcome.quarantine_files:
        console.print(f"quarantine report: {path}", highlight=False)
    if outcome.ledger == "off":
        console.print("ledger: not loaded (--no-ledger)")
    elif outcome.ledger == "loaded":
        console.print("ledger: open loans loaded")


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""

    @app.command("import")
    def import_command(
        files: list[Path] = typer.Argument(..., help="Loan tapes: CSV, Parquet or Excel (.xlsx).", show_default=False),
        mapping_file: Path | None = typer.Option(
            None, "--mapping", "-m", help="Mapping YAML: source columns, date formats, units (examples/mappings)."
        ),
        strict: bool = typer.Option(
            False, "--strict", help="All or nothing: any rejected row means nothing is loaded (exit code 1)."
        ),
        as_of: str | None = typer.Option(
            None, "--as-of", help="The tape's date, YYYY-MM-DD (default: the mapping's `as_of` or a 数据日期 column)."
        ),
        customers: list[Path] = typer.Option(
            [], "--customers", help="Customer tape(s) whose customer_id column is the register loans must match."
        ),
        ledger: bool = typer.Option(
            True, "--ledger/--no-ledger", help="Load the open loans into the ledger (default) or the Parquet book only."
        ),
        workspace: Path | None = typer.Option(
            None, "--workspace", "-w", help="Workspace folder (default: RUNOFF_WORKSPACE, else the current folder)."
        ),
        as_json: bool = JsonOption,
    ) -> None:
        """Import loan tapes: every row read is loaded or quarantined with its reason (read = loaded + quarantined)."""
        try:
            tape_date = _parse_date(as_of) if as_of else None
            mapping = load_mapping(mapping_file) if mapping_file else TapeMapping()
            ws = Workspace.open(locate_workspace(workspace))
            with contextlib.ExitStack() as stack:
                if not as_json:
                    stack.enter_context(err_console.status(f"importing {len(files)} file(s)"))
                loader = None
                if ledger:
                    ctx = stack.enter_context(build_context(Settings(workspace=ws.root)))
                    loader = ledger_position_loader(ctx)
                outcome = import_tapes(
                    files,
                    workspace=ws,
                    mapping=mapping,
                    as_of=tape_date,
                    strict=strict,
                    customers=customers,
                    loader=loader,
                    imported_at=clock.now(),
                )
        except RunoffError as exc:
            fail(exc, as_json=as_json)
            return
        emit(outcome.as_dict(), as_json=as_json, render=lambda console: _render(outcome, console))
        if strict and outcome.rejected:
            err_console.print(
                f"[red]rejected[/red]: {outcome.quarantined:,} rows failed a check; --strict loaded nothing",
                highlight=False,
            )
            raise typer.Exit(code=STRICT_EXIT_CODE)

    @app.command("lookup")
    def lookup_command(
        ref: str = typer.Argument(
            ..., help="The lender's reference, e.g. a 借据号 DK20240131000123.", show_default=False
        ),
        kind: str = typer.Option(
            "loan", "--kind", "-k", help="loan (借据号), customer (客户号) or account (额度账户号)."
        ),
        workspace: Path | None = typer.Option(
            None, "--workspace", "-w", help="Workspace folder (default: RUNOFF_WORKSPACE, else the current folder)."
        ),
        as_json: bool = JsonOption,
    ) -> None:
        """The book id of a lender's reference (surrogate key); the ledger keys the loan by that id."""
        try:
            found = lookup_ref(Workspace.open(locate_workspace(workspace)), ref, kind=kind)
        except RunoffError as exc:
            fail(exc, as_json=as_json)
            return
        emit(found.as_dict(), as_json=as_json, render=lambda console: _render_lookup(found, console))


def _render_lookup(found: RefLookup, console: Console) -> None:
    if found.id is None:
        console.print(f"{found.kind} {found.ref!r}: not in the book (no import assigned it an id)", highlight=False)
        return
    where = "in the book" if found.in_book else "not in the book"
    how = f"id map, import {found.import_id}" if found.import_id else found.source
    console.print(f"{found.kind} {found.ref!r} → id {found.id} ({how}; {where}; ledger id {found.ledger_id!r})")


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"`--as-of`: {text!r} is not a date; expected YYYY-MM-DD", field="as_of") from None
