"""`runoff product check FILE...`: validate product files (YAML), one clear message per bad file."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from runoff.cli.output import JsonOption, emit
from runoff.documents import yaml_data
from runoff.errors import NotFound, ProductInvalid, RunoffError
from runoff.servicing.apr import apr_of_schedule
from runoff.servicing.product import Product, parse_product
from runoff.servicing.schedule import build_schedule

# A product check builds one trial schedule per term offered, so that terms the model accepts but the
# engine cannot schedule (a capitalizing flat-fee product, ...) are caught before a loan is written on them.
TRIAL_START = date(2024, 1, 31)
TRIAL_PRINCIPAL = Decimal("10000.00")


def read_product_data(path: Path) -> dict[str, Any]:
    """The mapping in a product YAML file; a missing file or bad YAML is one clear error."""
    if not path.is_file():
        raise NotFound(f"`FILE`: {path} does not exist or is not a file; expected a product YAML file", field="FILE")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ProductInvalid(f"{path}: not UTF-8 text; expected a product YAML file") from None
    data = yaml_data(text, source=str(path), error=ProductInvalid)
    if not isinstance(data, dict):
        raise ProductInvalid(f"{path}: expected a mapping of product fields, got {type(data).__name__}")
    return data


def load_product(path: Path) -> Product:
    """Read and validate one product file."""
    return parse_product(read_product_data(path), source=str(path))


def check_product(path: Path) -> tuple[Product, dict[int, Decimal]]:
    """Validate a product file and schedule each term it offers; the nominal APR by term (at 10,000.00)."""
    product = load_product(path)
    principal = min(max(TRIAL_PRINCIPAL, product.min_principal), product.max_principal)
    aprs: dict[int, Decimal] = {}
    for term in product.terms:
        try:
            schedule = build_schedule(product, principal=principal, term=term, start_date=TRIAL_START)
        except RunoffError as exc:
            raise ProductInvalid(f"{path}: term {term}: {exc.message}", field=exc.field) from None
        aprs[term] = apr_of_schedule(schedule).nominal
    return product, aprs


def _apr_text(value: Decimal) -> str:
    return format(value.quantize(Decimal("1e-10")), "f")


def register(app: typer.Typer) -> None:
    """Add the ``product`` group to ``app``."""
    group = typer.Typer(help="Credit products as data: check product files.", no_args_is_help=True)

    @group.command("check")
    def check(
        files: list[Path] = typer.Argument(..., help="Product YAML files to validate.", show_default=False),
        as_json: bool = JsonOption,
    ) -> None:
        """Validate product files: OK, or one clear message naming the field. Exit code 2 if any is bad."""
        results: list[dict[str, Any]] = []
        for path in files:
            try:
                product, aprs = check_product(path)
            except RunoffError as exc:
                results.append({"file": str(path), "ok": False, "error": exc.to_dict()})
                continue
            results.append(
                {
                    "file": str(path),
                    "ok": True,
                    "product": product.id,
                    "method": product.method.value,
                    "terms": list(product.terms),
                    "apr_nominal_by_term": {str(t): _apr_text(a) for t, a in aprs.items()},
                }
            )
        all_ok = all(r["ok"] for r in results)

        def render(console: Console) -> None:
            for r in results:
                if r["ok"]:
                    aprs_text = ", ".join(f"{t}: {float(a):.2%}" for t, a in r["apr_nominal_by_term"].items())
                    console.print(
                        f"[green]OK[/green]  {escape(r['file'])}: {escape(r['product'])} ({r['method']}), "
                        f"nominal APR by term {aprs_text}",
                        soft_wrap=True,
                    )
                else:
                    console.print(f"[red]BAD[/red] {escape(r['error']['message'])}", soft_wrap=True)

        emit({"ok": all_ok, "files": results}, as_json=as_json, render=render)
        if not all_ok:
            raise typer.Exit(code=2)

    app.add_typer(group, name="product")
