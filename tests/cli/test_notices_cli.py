"""`runoff notices ...` and `runoff plan-pilot ...` through Typer's runner on an app built from their register()."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import typer
import yaml
from sqlalchemy import update
from typer.testing import CliRunner

from runoff.app.context import build_context
from runoff.app.loans import open_loan
from runoff.cli import notices as notices_cli
from runoff.cli import pilot as pilot_cli
from runoff.cli.main import RunoffGroup
from runoff.config import Settings
from runoff.store.ledger.models import customers
from tests.plan import notice_fixtures as fx

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer(cls=RunoffGroup, pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """test root"""

    notices_cli.register(app)
    pilot_cli.register(app)
    return app


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ctx = build_context(Settings(workspace=tmp_path))
    try:
        open_loan(
            product=fx.product(),
            principal="3000",
            term=12,
            start_date=date(2025, 12, 25),
            actor="test",
            uow=ctx.uow(),
            loan_id="L1",
            customer_id="C1",
            account_id="A1",
        )
        with ctx.uow() as uow:
            uow.connection.execute(update(customers).where(customers.c.id == "C1").values(name="张三", region="CN"))
            uow.commit()
    finally:
        ctx.close()
    return tmp_path


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(fx.PLAN, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_render_prints_the_notice_with_its_figures(workspace, plan_file):
    args = ["notices", "render", "--plan", str(plan_file), "--loan", "L1", "--as-of", "2026-01-22"]
    result = runner.invoke(_app(), [*args, "--lang", "zh-CN", "--channel", "sms", "-w", str(workspace), "--json"])
    data = _json(result)
    assert data["channel"] == "sms" and data["language"] == "zh-CN" and not data["blocked"]
    settle = next(o for o in data["figures"]["options"] if o["option_id"] == "settle")
    assert f"¥{float(settle['total_cost']):,.2f}" in data["body"]
    assert "annualised-rate" in data["items"]


def test_render_writes_html_and_pdf_into_a_folder(workspace, plan_file, tmp_path):
    from runoff.app.notices import find_font
    from runoff.errors import ConfigError
    from runoff.plan.notices import Language

    try:
        find_font(Language.EN)
        pdf = ["--pdf"]
    except ConfigError:
        pdf = []
    out = tmp_path / "out"
    args = ["notices", "render", "--plan", str(plan_file), "--loan", "L1", "--as-of", "2026-01-22", "--lang", "en"]
    data = _json(runner.invoke(_app(), [*args, "--out", str(out), *pdf, "-w", str(workspace), "--json"]))
    names = sorted(Path(f).name for f in data["files"])
    assert names[0].endswith("-letter-en.html") and (out / names[0]).read_text(encoding="utf-8").startswith("<!DOCTYPE")
    if pdf:
        assert names[1].endswith(".pdf") and (out / names[1]).read_bytes().startswith(b"%PDF-")


def test_render_of_a_notice_a_rule_would_refuse_exits_1_with_the_findings(workspace, plan_file, tmp_path):
    own = tmp_path / "own" / "zh-CN"
    own.mkdir(parents=True)
    (own / "closure-letter.sms.txt.j2").write_text("【{{ lender }}】停止服务。\n", encoding="utf-8")
    args = ["notices", "render", "--plan", str(plan_file), "--loan", "L1", "--as-of", "2026-01-22", "--channel", "sms"]
    result = runner.invoke(_app(), [*args, "--templates", str(tmp_path / "own"), "-w", str(workspace), "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["blocked"] and "CN-APR-01" in {f["rule_id"] for f in data["findings"]}


def test_send_refuses_with_the_rule_id_and_exit_2(workspace, plan_file, tmp_path):
    own = tmp_path / "own" / "zh-CN"
    own.mkdir(parents=True)
    (own / "closure-letter.sms.txt.j2").write_text("【{{ lender }}】停止服务。\n", encoding="utf-8")
    args = ["notices", "send", "--plan", str(plan_file), "--loan", "L1", "--channel", "sms"]
    result = runner.invoke(_app(), [*args, "--templates", str(tmp_path / "own"), "-w", str(workspace)])
    assert result.exit_code == 2
    assert "compliance.blocked [CN-APR-01]" in result.stderr
    assert "Traceback" not in result.output


def test_send_then_delivered_then_list(workspace, plan_file):
    args = ["notices", "send", "--plan", str(plan_file), "--loan", "L1", "--channel", "in-app", "--lang", "en"]
    sent = _json(runner.invoke(_app(), [*args, "-w", str(workspace), "--json"]))
    assert sent["status"] == "sent" and not sent["replayed"]
    again = _json(runner.invoke(_app(), [*args, "-w", str(workspace), "--json"]))
    assert again["replayed"] and again["id"] == sent["id"]
    delivered = _json(runner.invoke(_app(), ["notices", "delivered", str(sent["id"]), "-w", str(workspace), "--json"]))
    assert delivered["status"] == "delivered"
    listed = _json(runner.invoke(_app(), ["notices", "list", "--loan", "L1", "-w", str(workspace), "--json"]))
    assert [n["id"] for n in listed] == [sent["id"]]


def test_an_unknown_channel_or_missing_loan_is_one_line_and_exit_2(workspace, plan_file):
    base = ["notices", "render", "--plan", str(plan_file), "--as-of", "2026-01-22", "-w", str(workspace)]
    bad = runner.invoke(_app(), [*base, "--loan", "L1", "--channel", "fax"])
    assert bad.exit_code == 2 and "notice.invalid" in bad.stderr and "letter, sms, email, in-app" in bad.stderr
    missing = runner.invoke(_app(), [*base, "--loan", "NOPE"])
    assert missing.exit_code == 2 and "NOPE" in missing.stderr


def test_announce_writes_the_public_page(plan_file, tmp_path):
    out = tmp_path / "public"
    args = ["notices", "announce", "--plan", str(plan_file), "--as-of", "2026-01-15", "--out", str(out), "--json"]
    data = _json(runner.invoke(_app(), args))
    page = Path(data["files"][0])
    assert page.name == "exit-test-announcement-zh-CN.html"
    assert "公告" in page.read_text(encoding="utf-8") and not data["blocked"]


# --- pilot --------------------------------------------------------------------------------------------------------


def test_pilot_size_gives_the_textbook_figure():
    args = ["plan-pilot", "size", "--control-rate", "0.5", "--target-rate", "0.6", "--continuity-correction", "--json"]
    data = _json(runner.invoke(_app(), args))
    assert (data["per_arm"], data["total"]) == (408, 816)


def test_pilot_design_from_a_units_file_is_reproducible(plan_file, tmp_path):
    units = tmp_path / "units.csv"
    pl.DataFrame(
        {"account_id": [f"A{k:04d}" for k in range(200)], "segment": ["current"] * 150 + ["arrears"] * 50}
    ).write_csv(units)
    common = ["plan-pilot", "design", "--plan", str(plan_file), "--units", str(units), "--variants", "settle,extend-6"]
    first = _json(
        runner.invoke(_app(), [*common, "--sample", "90", "--seed", "3", "--out", str(tmp_path / "a.csv"), "--json"])
    )
    runner.invoke(_app(), [*common, "--sample", "90", "--seed", "3", "--out", str(tmp_path / "b.csv")])
    assert first["units"] == 90 and first["arms"] == ["control", "settle", "extend-6"]
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()


def test_pilot_design_from_the_ledger(workspace, plan_file, tmp_path):
    args = ["plan-pilot", "design", "--plan", str(plan_file), "--from-ledger", "--as-of", "2026-01-22"]
    data = _json(
        runner.invoke(
            _app(),
            [
                *args,
                "--variants",
                "settle",
                "--seed",
                "1",
                "--out",
                str(tmp_path / "p.parquet"),
                "-w",
                str(workspace),
                "--json",
            ],
        )
    )
    assert data["units"] == 1 and data["counts"][0]["segment"] == "current"


def test_pilot_design_rejects_a_segment_the_plan_does_not_have(plan_file, tmp_path):
    units = tmp_path / "units.csv"
    pl.DataFrame({"account_id": ["A1", "A2"], "segment": ["current", "vip"]}).write_csv(units)
    args = ["plan-pilot", "design", "--plan", str(plan_file), "--units", str(units), "--variants", "x", "--seed", "1"]
    result = runner.invoke(_app(), [*args, "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 2 and "'vip' is not a segment" in result.stderr


def test_pilot_analyze_recommends_with_its_rule(tmp_path):
    rng = np.random.default_rng(4)
    n = 3000
    frame = pl.DataFrame(
        {
            "arm": ["control"] * n + ["settle"] * n,
            "took_up": np.concatenate([rng.random(n) < 0.10, rng.random(n) < 0.25]).tolist(),
            "paid": ["yes" if x else "no" for x in (rng.random(2 * n) < 0.9)],
            "complained": (rng.random(2 * n) < 0.01).astype(int).tolist(),
        }
    )
    path = tmp_path / "outcomes.csv"
    frame.write_csv(path)
    data = _json(runner.invoke(_app(), ["plan-pilot", "analyze", "--outcomes", str(path), "--json"]))
    assert data["recommendation"] == "roll-out" and data["chosen_variant"] == "settle"
    assert "roll-out: take-up CI lower" in data["rule"]
    take = next(d for d in data["differences"] if d["metric"] == "took_up")
    assert take["low"] < 0.15 < take["high"]
