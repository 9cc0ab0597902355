"""`runoff compliance ...`: list the shipped rules, check a contact log, show retention floors."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from runoff.app import clock
from runoff.cli.output import JsonOption, emit, fail
from runoff.compliance.contacts import check_contacts, parse_contact_rows, parse_opt_out_rows
from runoff.compliance.findings import Finding
from runoff.compliance.profile import LenderProfile, ProfileInvalid, parse_profile
from runoff.compliance.retention import retention_floors
from runoff.compliance.rules import Rule, parse_jurisdiction, shipped_packs
from runoff.compliance.selection import binds_profile
from runoff.compliance.taxonomy import Severity
from runoff.documents import yaml_data
from runoff.errors import InvalidInput, RunoffError

_SEVERITY_STYLE = {"block": "red", "warn": "yellow", "info": "cyan"}


def load_profile(path: Path) -> LenderProfile:
    """Read a lender profile YAML file (the edge: the compliance core reads no files)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"`--profile`: cannot read {path}: {exc.strerror}", field="profile") from None
    return parse_profile(yaml_data(text, source=str(path), error=ProfileInvalid, field="profile"), source=str(path))


def _read_csv(path: Path, option: str) -> list[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return list(csv.DictReader(handle))
    except OSError as exc:
        raise InvalidInput(f"`{option}`: cannot read {path}: {exc.strerror}", field=option.strip("-")) from None


def rule_row(rule: Rule) -> dict[str, Any]:
    """One rule as the listing shows it (and ``--json`` prints it)."""
    binds = rule.binds
    return {
        "id": rule.id,
        "jurisdiction": rule.jurisdiction.value,
        "kind": rule.kind.value,
        "status": rule.status.value,
        "status_note": rule.status_note,
        "title": rule.title,
        "lender_types": sorted(t.value for t in binds.lender_types),
        "collector_types": sorted(t.value for t in binds.collector_types),
        "roles": sorted(r.value for r in binds.roles),
        "regions": sorted(binds.regions),
        "effective_from": rule.effective_from,
        "effective_to": rule.effective_to,
        "checks": [p.check for p in rule.parameters],
        "parameters": [p.describe() for p in rule.parameters],
        "citation": rule.citation,
        "note": rule.note,
    }


def _findings_payload(findings: list[Finding]) -> dict[str, Any]:
    counts = Counter(f.severity.value for f in findings)
    return {
        "blocked": counts["block"] > 0,
        "counts": {s.value: counts[s.value] for s in Severity},
        "findings": [f.model_dump(mode="json") for f in findings],
    }


def render_findings(findings: list[Finding], console: Console, *, title: str) -> None:
    """Findings grouped by severity, blocking first, each with its rule and message."""
    counts = Counter(f.severity.value for f in findings)
    summary = ", ".join(f"{counts[s.value]} {s.value}" for s in Severity)
    if not findings:
        console.print(f"[green]OK[/green] {escape(title)}: no findings")
        return
    console.print(f"{escape(title)}: {summary}", soft_wrap=True, highlight=False)
    table = Table(show_lines=False)
    table.add_column("severity", no_wrap=True)
    table.add_column("rule", no_wrap=True)
    table.add_column("object", overflow="fold")
    table.add_column("message", overflow="fold")
    for f in findings:
        style = _SEVERITY_STYLE[f.severity.value]
        table.add_row(f"[{style}]{f.severity.value}[/{style}]", f.rule_id, escape(f.object_id), escape(f.message))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``compliance`` group to ``app``."""
    group = typer.Typer(help="Compliance rule packs (CN, US, EU, UK) and checks.", no_args_is_help=True)

    @group.command("rules")
    def rules(
        jurisdiction: str | None = typer.Option(None, "--jurisdiction", "-j", help="Only this one: cn, us, eu, uk."),
        profile: Path | None = typer.Option(None, "--profile", help="Only rules binding this lender profile (YAML)."),
        on: str | None = typer.Option(None, "--on", help="Only rules in force on this date (YYYY-MM-DD)."),
        as_json: bool = JsonOption,
    ) -> None:
        """List the shipped rules with whom they bind, their checks, citation and status."""
        try:
            wanted = parse_jurisdiction(jurisdiction) if jurisdiction else None
            lender = load_profile(profile) if profile else None
            day = _parse_date(on, "--on") if on else None
            selected = [
                r
                for pack in shipped_packs()
                for r in pack.rules
                if (wanted is None or r.jurisdiction is wanted)
                and (lender is None or binds_profile(r, lender))
                and (day is None or r.in_force(day))
            ]
        except RunoffError as exc:
            fail(exc, as_json=as_json)
            return
        rows = [rule_row(r) for r in selected]

        def render(console: Console) -> None:
            table = Table(title=f"{len(rows)} rules")
            for col in ("id", "kind", "status"):
                table.add_column(col, no_wrap=True)
            for col in ("binds", "in force", "checks", "title"):
                table.add_column(col, overflow="fold")
            for r in rows:
                binds = []
                if len(r["lender_types"]) < 4:
                    binds.append("/".join(r["lender_types"]))
                if len(r["collector_types"]) < 2:
                    binds.append("/".join(r["collector_types"]))
                binds.extend(r["roles"] + r["regions"])
                since = f"{r['effective_from'] or ''}..{r['effective_to'] or ''}".strip(".")
                table.add_row(
                    r["id"],
                    r["kind"],
                    r["status"],
                    escape(", ".join(binds) or "all"),
                    since,
                    ", ".join(dict.fromkeys(r["checks"])) or "reference",
                    escape(r["title"]),
                )
            console.print(table)

        emit({"rules": rows}, as_json=as_json, render=render)

    @group.command("check-contacts")
    def check_contacts_command(
        file: Path = typer.Argument(..., help="Contact log CSV: one row per contact, columns named as ContactFacts."),
        profile: Path = typer.Option(..., "--profile", help="Lender profile YAML."),
        opt_outs: Path | None = typer.Option(None, "--opt-outs", help="Opt-out CSV (customer_id, channel, ...)."),
        as_json: bool = JsonOption,
    ) -> None:
        """Check a batch of collection contacts; exit code 1 when any finding blocks."""
        try:
            lender = load_profile(profile)
            contacts = parse_contact_rows(_read_csv(file, "FILE"), source=str(file))
            outs = parse_opt_out_rows(_read_csv(opt_outs, "--opt-outs"), source=str(opt_outs)) if opt_outs else []
            findings = check_contacts(contacts, lender, opt_outs=outs)
        except RunoffError as exc:
            fail(exc, as_json=as_json)
            return
        payload = {"file": str(file), "contacts": len(contacts), **_findings_payload(findings)}
        emit(
            payload,
            as_json=as_json,
            render=lambda console: render_findings(findings, console, title=f"{len(contacts)} contacts in {file}"),
        )
        if payload["blocked"]:
            raise typer.Exit(code=1)

    @group.command("retention")
    def retention(
        profile: Path = typer.Option(..., "--profile", help="Lender profile YAML."),
        closed_on: str | None = typer.Option(None, "--closed-on", help="When the relationship ends (YYYY-MM-DD)."),
        as_of: str | None = typer.Option(None, "--as-of", help="Rules in force on this date (default: today)."),
        as_json: bool = JsonOption,
    ) -> None:
        """For each data category, the longest legal retention floor and the rule behind it."""
        try:
            lender = load_profile(profile)
            day = _parse_date(as_of, "--as-of") if as_of else clock.today()
            closed = _parse_date(closed_on, "--closed-on") if closed_on else None
            floors = retention_floors(lender, as_of=day, closed_on=closed)
        except RunoffError as exc:
            fail(exc, as_json=as_json)
            return
        rows: list[dict[str, Any]] = [
            {
                "category": f.category.value,
                "months": f.months,
                "counted_from": f.counted_from.value,
                "rule_id": f.rule_id,
                "status": f.status.value,
                "delete_after": f.delete_after,
                "keep_until": f.keep_until,
                "also": list(f.also),
                "citation": f.citation,
            }
            for f in floors
        ]

        def render(console: Console) -> None:
            table = Table(title=f"Retention floors on {day}")
            for col in ("category", "keep at least", "counted from", "keep until", "rule", "status", "also"):
                table.add_column(col, overflow="fold")
            for f in floors:
                table.add_row(
                    f.category.value,
                    f"{f.months} months" + (" (then delete)" if f.delete_after else ""),
                    f.counted_from.value,
                    str(f.keep_until or ""),
                    f.rule_id,
                    f.status.value,
                    ", ".join(f.also),
                )
            console.print(table)

        emit({"as_of": day, "closed_on": closed, "floors": rows}, as_json=as_json, render=render)

    app.add_typer(group, name="compliance")


def _parse_date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(
            f"`{option}`: {text!r} is not a date; expected YYYY-MM-DD", field=option.lstrip("-")
        ) from None
