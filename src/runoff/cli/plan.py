"""`runoff plan check|offers|accept|timeline`: exit plans from the command line.

``check`` runs the plan over the workspace's book (segments, offers priced in memory) and prints the
compliance findings grouped by severity with the accounts and balance per segment; it exits 1 when a
finding blocks. ``offers`` writes the offers table; ``accept`` applies one offer to a ledger loan;
``timeline`` prints each wave's dates and the communication schedule.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from runoff.app.plans import (
    PlanRun,
    accept_offer,
    build_offers,
    read_offers,
    read_plan,
    run_plan,
    write_ledger_offers,
)
from runoff.cli.compliance import render_findings
from runoff.cli.ledger import ActorOption, WorkspaceOption, actor_name, ledger_context, parse_date, settings_for
from runoff.cli.output import JsonOption, emit
from runoff.compliance.taxonomy import Severity
from runoff.errors import InvalidInput
from runoff.money import from_minor
from runoff.plan.model import Plan
from runoff.store.executors import scheduler_address
from runoff.store.workspace import Workspace

PlanArgument = typer.Argument(..., help="Plan YAML file.", show_default=False)
AsOfOption = typer.Option(None, "--as-of", help="Offer date (default: the book's last month end).", show_default=False)
SchedulerOption = typer.Option(None, "--scheduler", help="Dask scheduler address (default: in-process).")


def _workspace(path: Path | None) -> Workspace:
    return Workspace.open(settings_for(path).workspace)


def _yuan(fen: int | float | None) -> str:
    if fen is None:
        return ""
    return f"{from_minor(round(fen)):,}"


def segment_rows(run: PlanRun) -> list[dict[str, Any]]:
    """Accounts, loans and balance per segment (yuan as decimal strings), with each segment's wave."""
    waves = {sid: w.wave for w in run.plan.wave_timelines() for sid in w.segments}
    rows = []
    for r in run.check.figures.summary.to_dicts():
        balance = int(r["balance_fen"])
        rows.append(
            {
                "segment": r["segment"],
                "wave": waves.get(r["segment"]),
                "accounts": int(r["accounts"]),
                "loans": int(r["loans"]),
                "balance": str(from_minor(balance)),
                "overdue": str(from_minor(int(r["overdue_fen"]))),
                "balance_fen": balance,
                "overdue_fen": int(r["overdue_fen"]),
                "defaulted_accounts": int(r["defaulted_accounts"]),
                "pd": round(float(r["pd_balance_fen"]) / balance, 6) if balance else None,
            }
        )
    return rows


def check_payload(run: PlanRun) -> dict[str, Any]:
    """The ``--json`` document of ``plan check``: verdict, counts, segments and every finding."""
    check = run.check
    figures = check.figures
    return {
        "plan_id": run.plan.id,
        "as_of": run.as_of,
        "snapshot": run.snapshot,
        "blocked": check.blocked,
        "counts": check.counts(),
        "accounts": figures.accounts,
        "balance": str(from_minor(figures.balance_fen)),
        "unassigned_accounts": figures.unassigned,
        "accounts_in_several_segments": figures.in_several,
        "offers": run.offers,
        "skipped": run.skipped,
        "segments": segment_rows(run),
        "findings": [f.model_dump(mode="json") for f in check.findings],
    }


def render_segments(run: PlanRun, console: Console) -> None:
    rows = segment_rows(run)
    figures = run.check.figures
    table = Table(title=f"Plan {run.plan.id}: {figures.accounts:,} accounts as of {run.as_of}")
    for col in ("segment", "wave", "accounts", "loans", "balance", "overdue", "in default", "PD"):
        table.add_column(col, justify="left" if col in ("segment", "wave") else "right")
    for r in rows:
        table.add_row(
            escape(r["segment"]),
            escape(r["wave"] or ""),
            f"{r['accounts']:,}",
            f"{r['loans']:,}",
            _yuan(r["balance_fen"]),
            _yuan(r["overdue_fen"]),
            f"{r['defaulted_accounts']:,}",
            "" if r["pd"] is None else f"{r['pd']:.2%}",
        )
    if figures.unassigned:
        table.add_row(
            "[red](no segment)[/red]",
            "",
            f"{figures.unassigned:,}",
            "",
            _yuan(figures.unassigned_balance_fen),
            "",
            "",
            "",
        )
    console.print(table)


def _render_check(run: PlanRun, console: Console) -> None:
    render_segments(run, console)
    if run.offers:
        console.print(f"{run.offers:,} offers priced ({run.skipped:,} loan-option pairs not offered)")
    render_findings(run.check.findings, console, title=f"Plan {run.plan.id}")
    verdict = "[red]BLOCKED[/red]" if run.check.blocked else "[green]no blocking finding[/green]"
    console.print(f"Plan {escape(run.plan.id)}: {verdict}")


def option_rows(offers: pl.LazyFrame) -> list[dict[str, Any]]:
    """Per option: offers, mean APR, total saving to customers, expected value to the lender, unaffordable ones."""
    grouped = (
        offers.group_by("option_id", "option", maintain_order=True)
        .agg(
            pl.len().alias("offers"),
            pl.col("apr_nominal").mean().alias("mean_apr"),
            pl.col("saving_fen").sum().alias("saving_fen"),
            pl.col("expected_value").sum().alias("expected_value_fen"),
            (pl.col("affordable") == False).sum().alias("unaffordable"),  # noqa: E712
        )
        .collect()
    )
    return [
        {
            "option_id": r["option_id"],
            "option": r["option"],
            "offers": int(r["offers"]),
            "mean_apr": None if r["mean_apr"] is None else round(float(r["mean_apr"]), 6),
            "saving": str(from_minor(int(r["saving_fen"] or 0))),
            "expected_value": str(from_minor(round(r["expected_value_fen"] or 0.0))),
            "saving_fen": int(r["saving_fen"] or 0),
            "expected_value_fen": round(r["expected_value_fen"] or 0.0),
            "unaffordable": int(r["unaffordable"] or 0),
        }
        for r in grouped.to_dicts()
    ]


def register(app: typer.Typer) -> None:
    """Add the ``plan`` group to ``app``."""
    group = typer.Typer(help="Exit plans: check, price offers, accept them.", no_args_is_help=True)

    @group.command("check")
    def check(
        plan_file: Path = PlanArgument,
        as_of: str | None = AsOfOption,
        without_offers: bool = typer.Option(False, "--without-offers", help="Check segments only, price no offers."),
        workspace: Path | None = WorkspaceOption,
        scheduler: str | None = SchedulerOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Check a plan against the rules binding its lender; exit code 1 when any finding blocks."""
        plan = read_plan(plan_file)
        ws = _workspace(workspace)
        day = parse_date(as_of, field="as-of") if as_of else None
        run = run_plan(plan, ws, as_of=day, with_offers=not without_offers, scheduler=scheduler_address(scheduler))
        emit(check_payload(run), as_json=as_json, render=lambda console: _render_check(run, console))
        if run.check.blocked:
            raise typer.Exit(code=1)

    @group.command("offers")
    def offers(
        plan_file: Path = PlanArgument,
        as_of: str | None = AsOfOption,
        source: str = typer.Option("book", "--source", help="book (the Parquet tables) or ledger (its open loans)."),
        workspace: Path | None = WorkspaceOption,
        scheduler: str | None = SchedulerOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Price every option of every open loan's segment and write data/offers/<plan>/."""
        plan = read_plan(plan_file)
        ws = _workspace(workspace)
        day = parse_date(as_of, field="as-of") if as_of else None
        if source == "book":
            built = build_offers(plan, ws, as_of=day, scheduler=scheduler_address(scheduler))
        elif source == "ledger":
            with ledger_context(workspace) as ctx:
                built = write_ledger_offers(plan, ws, ctx, as_of=day or ctx.today())
        else:
            raise InvalidInput(f"`--source`: {source!r} is not allowed; expected book or ledger", field="source")
        rows = option_rows(read_offers(ws, plan.id)) if built.run.offers else []
        payload = {
            **built.as_dict(),
            "options": rows,
            "findings": [f.model_dump(mode="json") for f in built.run.check.findings],
        }

        def render(console: Console) -> None:
            table = Table(
                title=f"{built.run.offers:,} offers of plan {plan.id} as of {built.run.as_of} -> {built.folder}"
            )
            for col in (
                "option",
                "kind",
                "offers",
                "mean APR",
                "saving to customers",
                "value to lender",
                "unaffordable",
            ):
                table.add_column(col, justify="left" if col in ("option", "kind") else "right")
            for r in rows:
                table.add_row(
                    escape(r["option_id"]),
                    r["option"],
                    f"{r['offers']:,}",
                    "" if r["mean_apr"] is None else f"{r['mean_apr']:.2%}",
                    _yuan(r["saving_fen"]),
                    _yuan(r["expected_value_fen"]),
                    f"{r['unaffordable']:,}",
                )
            console.print(table)
            counts = Counter(f.severity.value for f in built.run.check.findings)
            console.print(
                ", ".join(f"{counts[s.value]} {s.value}" for s in Severity)
                + " finding(s); `runoff plan check` lists them"
            )

        emit(payload, as_json=as_json, render=render)

    @group.command("accept")
    def accept(
        loan: str = typer.Option(..., "--loan", help="Loan id (as in the ledger).", show_default=False),
        option: str = typer.Option(..., "--option", help="Option id from the plan.", show_default=False),
        plan_id: str | None = typer.Option(None, "--plan", help="Plan id (needed when several plans have offers)."),
        actor: str | None = ActorOption,
        key: str | None = typer.Option(None, "--key", help="Idempotency key (default: offer:PLAN:LOAN:OPTION)."),
        as_of: str | None = typer.Option(None, "--as-of", help="Acceptance date (default: today)."),
        workspace: Path | None = WorkspaceOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Accept an offer: re-price it from the ledger, check it, re-schedule the loan (idempotent by key)."""
        ws = _workspace(workspace)
        day = parse_date(as_of, field="as-of") if as_of else None
        with ledger_context(workspace) as ctx:
            done = accept_offer(
                loan_id=loan,
                option_id=option,
                ctx=ctx,
                workspace=ws,
                actor=actor_name(actor),
                idempotency_key=key,
                plan_id=plan_id,
                as_of=day,
            )
        payload = done.as_dict()

        def render(console: Console) -> None:
            again = " (already accepted: nothing changed)" if done.replayed else ""
            console.print(
                f"Loan {escape(loan)} accepted {escape(option)} of plan {escape(done.plan_id)}: schedule version "
                f"{done.change.version} is live (was {done.change.previous_version}){again}"
            )
            if not done.replayed:
                console.print(
                    f"pay now {payload['pay_now']}, total cost {payload['total_cost']}, saving {payload['saving']}, "
                    f"{payload['term']} installment(s) to {payload['maturity']}"
                )
            for f in done.findings:
                console.print(f"[yellow]{f.severity.value}[/yellow] {escape(f.message)}")

        emit(payload, as_json=as_json, render=render)

    @group.command("timeline")
    def timeline(plan_file: Path = PlanArgument, as_json: bool = JsonOption) -> None:
        """Each wave's dates and the communication schedule (what is sent, when, to whom)."""
        plan = read_plan(plan_file)
        payload = timeline_payload(plan)

        def render(console: Console) -> None:
            table = Table(title=f"Plan {plan.id}: timeline")
            waves = payload["waves"]
            table.add_column("phase")
            for w in waves:
                table.add_column(w["wave"])
            phases = [name for name in waves[0]["dates"]]
            for name in phases:
                table.add_row(name, *(str(w["dates"].get(name, "")) for w in waves))
            table.add_row("reminders", *(", ".join(str(d) for d in w["reminders"]) for w in waves))
            console.print(table)
            sends = Table(title="Communication schedule")
            for col in ("date", "wave", "template", "type", "channel", "languages", "segments"):
                sends.add_column(col)
            for s in payload["sends"]:
                sends.add_row(str(s["on"]), s["wave"], s["template"], s["notice_type"], s["channel"],
                              ", ".join(s["languages"]), ", ".join(s["segments"]))  # fmt: skip
            console.print(sends)

        emit(payload, as_json=as_json, render=render)

    app.add_typer(group, name="plan")


def timeline_payload(plan: Plan) -> dict[str, Any]:
    return {
        "plan_id": plan.id,
        "waves": [
            {"wave": w.wave, "segments": list(w.segments), "dates": dict(w.dates), "reminders": list(w.reminders)}
            for w in plan.wave_timelines()
        ],
        "sends": [
            {
                "on": s.on,
                "wave": s.wave,
                "template": s.template,
                "notice_type": s.notice_type.value,
                "channel": s.channel.value,
                "languages": list(s.languages),
                "segments": list(s.segments),
                "phase": s.phase,
            }
            for s in plan.communication_schedule()
        ],
    }
