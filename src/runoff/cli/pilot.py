"""`runoff plan-pilot size|design|analyze`: the pilot (小范围试点) before an offer goes to the whole book.

``size`` says how many accounts each arm needs; ``design`` assigns a stratified, seeded sample to offer variants
and a control arm (units from a file or the ledger's open loans) and writes the assignment; ``analyze`` reads the
outcomes and recommends roll out, change or stop, stating the rule it used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from runoff.app.notices import read_plan
from runoff.app.pilot import analyze_outcomes, design_pilot, ledger_units, read_table, write_table
from runoff.cli.ledger import WorkspaceOption, ledger_context, parse_date
from runoff.cli.output import JsonOption, emit
from runoff.errors import InvalidInput
from runoff.plan.pilot import CONTROL, DecisionRule, PilotAnalysis, SampleSize, two_proportion_sample_size


def _variants(text: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    if not names:
        raise InvalidInput("`variants`: none given; expected names separated by commas", field="variants")
    return names


def size_dict(size: SampleSize, arms: int) -> dict[str, Any]:
    return {
        "p_control": size.p_control,
        "p_treatment": size.p_treatment,
        "alpha": size.alpha,
        "power": size.power,
        "alternative": size.alternative,
        "continuity_correction": size.continuity_correction,
        "per_arm": size.per_arm,
        "arms": arms,
        "total": size.per_arm * arms,
        "method": "two-proportion z-test, pooled variance under the null (Fleiss, Levin & Paik §4.2)",
    }


def analysis_dict(result: PilotAnalysis) -> dict[str, Any]:
    return {
        "recommendation": result.recommendation.value,
        "chosen_variant": result.chosen_variant,
        "control": result.control,
        "confidence": result.confidence,
        "rule": result.rule,
        "sizes": result.sizes,
        "rates": [
            {
                "arm": r.arm,
                "metric": r.metric,
                "n": r.n,
                "successes": r.successes,
                "rate": r.rate,
                "low": r.low,
                "high": r.high,
            }
            for r in result.rates
        ],
        "differences": [
            {
                "variant": d.variant,
                "metric": d.metric,
                "difference": d.difference,
                "low": d.low,
                "high": d.high,
                "p_value": d.p_value,
                "interval": "Newcombe hybrid score (method 10)",
            }
            for d in result.differences
        ],
        "verdicts": [
            {"variant": v.variant, "recommendation": v.recommendation.value, "reasons": list(v.reasons)}
            for v in result.verdicts
        ],
    }


def register(app: typer.Typer) -> None:
    """Add the `plan-pilot` group to ``app``."""
    group = typer.Typer(help="Pilot an offer on a random sample (小范围试点): size, design, analyze.")
    app.add_typer(group, name="plan-pilot")

    @group.command("size")
    def size_cmd(
        control_rate: float = typer.Option(..., "--control-rate", help="Expected take-up in control (0-1)."),
        target_rate: float = typer.Option(..., "--target-rate", help="Take-up the variant must show (0-1)."),
        alpha: float = typer.Option(0.05, "--alpha", help="Significance level."),
        power: float = typer.Option(0.8, "--power", help="Power to detect the difference."),
        variants: int = typer.Option(1, "--variants", min=1, help="Number of variant arms besides control."),
        one_sided: bool = typer.Option(False, "--one-sided", help="A one-sided test."),
        continuity: bool = typer.Option(False, "--continuity-correction", help="Fleiss's continuity correction."),
        json_out: bool = JsonOption,
    ) -> None:
        """Accounts per arm to detect the target take-up against control (two-proportion test)."""
        size = two_proportion_sample_size(
            control_rate,
            target_rate,
            alpha=alpha,
            power=power,
            alternative="one-sided" if one_sided else "two-sided",
            continuity_correction=continuity,
        )
        data = size_dict(size, variants + 1)

        def render(console: Console) -> None:
            console.print(
                f"{data['per_arm']} accounts per arm, {data['total']} in all ({variants} variant(s) + control) "
                f"to detect {target_rate:g} against {control_rate:g} at alpha {alpha:g}, power {power:g}"
            )

        emit(data, as_json=json_out, render=render)

    @group.command("design")
    def design_cmd(
        plan_path: Path | None = typer.Option(None, "--plan", help="The exit plan (checks segment names)."),
        units: Path | None = typer.Option(None, "--units", help="CSV/Parquet with account_id and segment."),
        from_ledger: bool = typer.Option(False, "--from-ledger", help="Units: the ledger's open loans (needs --plan)."),
        as_of: str | None = typer.Option(None, "--as-of", help="Segment date for --from-ledger (default today)."),
        variants: str = typer.Option(..., "--variants", help="Offer variants, comma separated (e.g. option ids)."),
        control: str = typer.Option(CONTROL, "--control", help="Name of the control arm."),
        sample: int | None = typer.Option(None, "--sample", min=1, help="Sample size (default: every unit)."),
        seed: int = typer.Option(..., "--seed", help="Random seed (the same seed gives the same assignment)."),
        out: Path = typer.Option(..., "--out", help="Where to write the assignment (.csv or .parquet)."),
        workspace: Path | None = WorkspaceOption,
        json_out: bool = JsonOption,
    ) -> None:
        """Assign a stratified random sample to the variants and a control arm, and write the assignment."""
        plan = read_plan(plan_path) if plan_path is not None else None
        if (units is None) == (not from_ledger):
            raise InvalidInput("`units`: give either --units FILE or --from-ledger", field="units")
        if from_ledger:
            if plan is None:
                raise InvalidInput("`plan`: --from-ledger needs --plan to place loans in segments", field="plan")
            with ledger_context(workspace) as ctx:
                day = parse_date(as_of, field="as_of") if as_of is not None else ctx.today()
                frame = ledger_units(plan, uow=ctx.uow(write=False), as_of=day)
        else:
            assert units is not None
            frame = read_table(units, what="units")
        design = design_pilot(
            frame, plan=plan, variants=_variants(variants), seed=seed, sample_size=sample, control=control
        )
        path = write_table(design.assignment, out)
        data = {
            "file": str(path),
            "seed": seed,
            "arms": list(design.arms),
            "units": design.assignment.height,
            "counts": design.counts.to_dicts(),
        }

        def render(console: Console) -> None:
            table = Table(title=f"pilot assignment (seed {seed}) → {path}")
            for col in ("segment", "arm", "accounts"):
                table.add_column(col)
            for row in design.counts.iter_rows():
                table.add_row(str(row[0]), str(row[1]), str(row[2]))
            console.print(table)

        emit(data, as_json=json_out, render=render)

    @group.command("analyze")
    def analyze_cmd(
        outcomes: Path = typer.Option(..., "--outcomes", help="CSV/Parquet: arm, took_up, paid, complained."),
        control: str = typer.Option(CONTROL, "--control", help="Name of the control arm."),
        confidence: float = typer.Option(0.95, "--confidence", help="Confidence level of the intervals."),
        min_lift: float = typer.Option(0.0, "--min-take-up-lift", help="Take-up lift to show for a roll-out."),
        max_payment_drop: float = typer.Option(0.02, "--max-payment-drop", help="Payment-rate margin."),
        max_complaint_rise: float = typer.Option(0.01, "--max-complaint-rise", help="Complaint-rate margin."),
        json_out: bool = JsonOption,
    ) -> None:
        """Take-up, payment and complaint rates per arm with intervals, and the recommendation with its rule."""
        frame = read_table(outcomes, what="outcomes")
        rule = DecisionRule(
            min_take_up_lift=min_lift, max_payment_drop=max_payment_drop, max_complaint_rise=max_complaint_rise
        )
        result = analyze_outcomes(frame, control=control, confidence=confidence, rule=rule)
        data = analysis_dict(result)

        def render(console: Console) -> None:
            table = Table(title="pilot: variant − control")
            for col in ("variant", "metric", "difference", "interval", "p-value"):
                table.add_column(col)
            for d in result.differences:
                table.add_row(
                    d.variant, d.metric, f"{d.difference:+.4f}", f"{d.low:+.4f} to {d.high:+.4f}", f"{d.p_value:.3g}"
                )
            console.print(table)
            for v in result.verdicts:
                console.print(f"{v.variant}: {v.recommendation.value} — " + "; ".join(v.reasons), highlight=False)
            chosen = f" ({result.chosen_variant})" if result.chosen_variant else ""
            console.print(f"recommendation: {result.recommendation.value}{chosen}", highlight=False)
            console.print(f"rule: {result.rule}", highlight=False, soft_wrap=True)

        emit(data, as_json=json_out, render=render)
