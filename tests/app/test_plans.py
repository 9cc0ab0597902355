"""Plan use cases: offers from the book and the ledger, acceptance atomic, idempotent, archiving the old schedule,
refused through the compliance engine with the rule id (SQLite, and PostgreSQL through the conftest fixture)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import func, select

from runoff.app.book import generate_book
from runoff.app.ledger_check import trial_balance, verify_ledger
from runoff.app.loans import open_loan, read_position, show_loan
from runoff.app.payments import post_payment
from runoff.app.plans import (
    MANIFEST,
    accept_offer,
    build_offers,
    load_offers_plan,
    read_offers,
    read_plan,
    run_plan,
    write_ledger_offers,
)
from runoff.errors import ComplianceBlocked, Conflict, InvalidInput, NotFound
from runoff.money import to_minor
from runoff.plan.model import PlanInvalid, parse_plan
from runoff.plan.offers import OFFER_SCHEMA
from runoff.portfolio.generator import BookConfig
from runoff.store.ledger.models import TABLES_IN_LOAD_ORDER, LedgerAccount, audit_log, schedule_versions
from runoff.store.workspace import Workspace

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plans"
START = date(2024, 1, 15)
TODAY = date(2024, 6, 30)  # the fixed clock of tests/conftest.py
PD = {"current": 0.03, "M1": 0.3, "M2": 0.6, "M3": 0.8, "M4+": 0.95}


def plan_data(plan_id="ledger-plan", lender=None, options=None):
    options = options or [
        {"id": "settle", "kind": "early-settlement", "waive_penalties": True, "take_up": 0.1},
        {"id": "extend-3", "kind": "extension", "extra_months": 3, "take_up": 0.05},
        {
            "id": "restructure-12",
            "kind": "restructuring",
            "term_months": 12,
            "annual_rate": 0.1,
            "method": "equal-installment",
            "waive_penalties": True,
            "capitalize_overdue": True,
            "take_up": 0.2,
        },
        {"id": "holiday-2", "kind": "hardship-holiday", "months": 2, "take_up": 0.05},
    ]
    return {
        "id": plan_id,
        "lender": lender or {"jurisdictions": ["cn"], "lender_type": "consumer-finance"},
        "timeline": {
            "start": "2024-06-01",
            "announcement": "start",
            "individual_notices": "start",
            "stop_new_draws": "announcement+45d",
            "option_window_opens": "start+9d",
            "option_window_closes": "2024-09-30",
        },
        "segments": [{"id": "all", "options": [o["id"] for o in options]}],
        "options": options,
        "assumptions": {"pd_by_bucket": PD},
        "evidence": [
            "collection-manager-named",
            "collection-methods-published",
            "lawful-basis-map",
            "retention-schedule",
            "sensitive-data-consent",
            "deletion-plan",
        ],
    }


def _ledger_book(ctx, ei, flat):
    """Three loans: L1 paid to date, L2 a flat-fee loan paid to date, L3 with its last two installments unpaid."""
    for loan_id, product in (("L1", ei), ("L2", flat), ("L3", ei)):
        opened = open_loan(product=product, principal="1200.00", term=12, start_date=START, actor="test",
                           uow=ctx.uow(), loan_id=loan_id, customer_id=f"C{loan_id}", account_id=f"A{loan_id}")  # fmt: skip
        paid = 5 if loan_id != "L3" else 3
        for inst in opened.schedule.installments[:paid]:
            post_payment(loan_id, inst.total, value_date=inst.due_date, idempotency_key=f"{loan_id}-{inst.number}",
                         actor="test", uow=ctx.uow())  # fmt: skip


def _counts(ctx) -> dict[str, int]:
    with ctx.engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in TABLES_IN_LOAD_ORDER}


@pytest.fixture
def offers_ready(ledger, tmp_path, equal_installment_product, flat_fee_product):
    workspace = Workspace.init(tmp_path / "ws")
    _ledger_book(ledger, equal_installment_product, flat_fee_product)
    plan = parse_plan(plan_data(), source="test")
    built = write_ledger_offers(plan, workspace, ledger, as_of=TODAY)
    assert built.run.offers > 0
    return ledger, workspace, plan


def test_ledger_offers_are_written_with_the_plan_they_came_from(offers_ready):
    _ctx, workspace, plan = offers_ready
    offers = read_offers(workspace, plan.id).collect()
    assert offers.schema == pl.Schema(OFFER_SCHEMA)
    assert set(offers["loan_id"]) == {"L1", "L2", "L3"}
    assert set(offers["option_id"]) == {"settle", "extend-3", "restructure-12", "holiday-2"}
    again, manifest = load_offers_plan(workspace)
    assert again.model_dump(mode="json") == plan.model_dump(mode="json")
    assert manifest["source"] == "ledger" and manifest["as_of"] == TODAY.isoformat()


def test_accepting_an_offer_reschedules_the_loan_archives_the_old_schedule_and_records_who_and_when(offers_ready):
    ctx, workspace, _plan = offers_ready
    before = show_loan("L3", as_of=TODAY, uow=ctx.uow(write=False))
    assert before.days_past_due > 0
    done = accept_offer(loan_id="L3", option_id="restructure-12", ctx=ctx, workspace=workspace, actor="ops:alice")
    assert (done.change.version, done.change.previous_version, done.replayed) == (2, 1, False)
    quote = done.quote
    assert quote is not None and quote.schedule.principal > before.position.outstanding_principal  # arrears capitalised
    position = read_position("L3", uow=ctx.uow(write=False))
    assert position.schedule_version == 2
    assert [(i.due_date, i.principal_due) for i in position.installments] == [
        (i.due_date, i.principal) for i in quote.schedule.installments
    ]
    assert position.contract_annual_rate == Decimal("0.1")
    with ctx.engine.connect() as conn:
        versions = (
            conn.execute(
                select(schedule_versions)
                .where(schedule_versions.c.loan_id == "L3")
                .order_by(schedule_versions.c.version)
            )
            .mappings()
            .all()
        )
        audit = conn.execute(select(audit_log).where(audit_log.c.action == "schedule.applied")).mappings().all()
    assert versions[0]["archived_at"] is not None and versions[1]["archived_at"] is None
    assert versions[1]["created_by"] == "ops:alice" and versions[1]["reason"] == "offer:ledger-plan:restructure-12"
    assert versions[1]["idempotency_key"] == "offer:ledger-plan:L3:restructure-12"
    assert [a["actor"] for a in audit] == ["ops:alice"]
    after = show_loan("L3", as_of=TODAY, uow=ctx.uow(write=False))
    assert after.days_past_due == 0
    report = verify_ledger(uow=ctx.uow(write=False))
    assert report.ok, report.findings_as_dicts()


def test_accepting_twice_is_idempotent(offers_ready):
    ctx, workspace, _ = offers_ready
    first = accept_offer(
        loan_id="L1", option_id="extend-3", ctx=ctx, workspace=workspace, actor="ops", idempotency_key="k-1"
    )
    counts = _counts(ctx)
    again = accept_offer(
        loan_id="L1", option_id="extend-3", ctx=ctx, workspace=workspace, actor="ops", idempotency_key="k-1"
    )
    assert again.replayed and again.change.version == first.change.version == 2
    assert _counts(ctx) == counts
    with pytest.raises(Conflict, match="already used for loan L1"):
        accept_offer(
            loan_id="L3", option_id="extend-3", ctx=ctx, workspace=workspace, actor="ops", idempotency_key="k-1"
        )


def test_a_loan_takes_one_option_of_a_plan(offers_ready):
    ctx, workspace, _ = offers_ready
    accept_offer(loan_id="L1", option_id="holiday-2", ctx=ctx, workspace=workspace, actor="ops")
    counts = _counts(ctx)
    with pytest.raises(Conflict, match="already accepted holiday-2 of plan ledger-plan"):
        accept_offer(loan_id="L1", option_id="extend-3", ctx=ctx, workspace=workspace, actor="ops")
    assert _counts(ctx) == counts


def test_an_accepted_settlement_is_paid_off_by_paying_what_it_quoted(offers_ready):
    ctx, workspace, _ = offers_ready
    done = accept_offer(loan_id="L2", option_id="settle", ctx=ctx, workspace=workspace, actor="ops")
    assert done.quote is not None and len(done.quote.schedule.installments) == 1
    post_payment("L2", done.quote.pay_now, value_date=TODAY, idempotency_key="settle-L2", actor="test", uow=ctx.uow())
    assert read_position("L2", uow=ctx.uow(write=False)).is_settled
    assert verify_ledger(uow=ctx.uow(write=False)).ok


@pytest.mark.parametrize(
    ("lender", "rule"),
    [
        ({"jurisdictions": ["cn"], "lender_type": "private-lender"}, "CN-CAP-01"),
        ({"jurisdictions": ["cn"], "lender_type": "consumer-finance", "block_on_unconfirmed": True}, "CN-CAP-03"),
    ],
    ids=["4x-lpr-private-lending", "24-percent-strict-mode"],
)
def test_an_offer_above_a_cap_is_refused_at_acceptance_with_the_rule_id(offers_ready, lender, rule):
    ctx, workspace, _ = offers_ready
    pricey = [{"id": "restructure-hot", "kind": "restructuring", "term_months": 12, "fee_rate": 0.03,
               "method": "flat-fee", "take_up": 0.1}]  # fmt: skip
    plan = parse_plan(plan_data("hot", lender=lender, options=pricey), source="test")
    write_ledger_offers(plan, workspace, ctx, as_of=TODAY)
    counts = _counts(ctx)
    with pytest.raises(ComplianceBlocked) as refused:
        accept_offer(
            loan_id="L1", option_id="restructure-hot", ctx=ctx, workspace=workspace, actor="ops", plan_id="hot"
        )
    assert refused.value.rule_id == rule
    assert refused.value.code == "compliance.blocked" and rule in refused.value.message
    assert _counts(ctx) == counts  # nothing written
    assert read_position("L1", uow=ctx.uow(write=False)).schedule_version == 1


def test_acceptance_only_while_the_option_window_is_open(offers_ready):
    ctx, workspace, _ = offers_ready
    with pytest.raises(Conflict, match=r"outside the option window of wave all \(2024-06-10 to 2024-09-30\)"):
        accept_offer(
            loan_id="L1", option_id="extend-3", ctx=ctx, workspace=workspace, actor="ops", as_of=date(2024, 10, 1)
        )


def test_an_option_the_loan_was_not_offered_is_refused_with_the_ones_it_was(offers_ready):
    ctx, workspace, _ = offers_ready
    with pytest.raises(InvalidInput, match="'extend-9' is not an option of plan ledger-plan; expected one of settle"):
        accept_offer(loan_id="L1", option_id="extend-9", ctx=ctx, workspace=workspace, actor="ops")
    with pytest.raises(NotFound, match="loan L9 has no offer"):
        accept_offer(loan_id="L9", option_id="extend-3", ctx=ctx, workspace=workspace, actor="ops")


def test_several_plans_need_a_plan_id(offers_ready):
    ctx, workspace, _ = offers_ready
    write_ledger_offers(parse_plan(plan_data("second"), source="test"), workspace, ctx, as_of=TODAY)
    with pytest.raises(
        InvalidInput, match="offers exist for several plans \\(ledger-plan, second\\); name one with --plan"
    ):
        accept_offer(loan_id="L1", option_id="extend-3", ctx=ctx, workspace=workspace, actor="ops")


# --- the book ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def book_workspace(tmp_path_factory) -> Workspace:
    workspace = Workspace.init(tmp_path_factory.mktemp("book"))
    generate_book(workspace, BookConfig(customers=1200, months=24, seed=4, blocks_per_partition=None))
    return workspace


def test_build_offers_writes_the_table_then_the_plan_last(book_workspace):
    plan = read_plan(EXAMPLES / "phased-three-wave.yaml")
    built = build_offers(plan, book_workspace)
    folder = book_workspace.data_dir / "offers" / plan.id
    assert (folder / MANIFEST).is_file() and (folder / "part-00000.parquet").is_file()
    offers = read_offers(book_workspace, plan.id).collect()
    assert offers.height == built.run.offers > 0
    assert offers.schema == pl.Schema(OFFER_SCHEMA)
    assert not built.run.check.blocked
    assert offers.get_column("offered_on").unique().to_list() == [built.run.snapshot]
    rebuilt = build_offers(plan, book_workspace)
    assert read_offers(book_workspace, plan.id).collect().equals(offers)  # deterministic, and old parts replaced
    assert rebuilt.run.offers == built.run.offers


def test_checking_the_bad_example_over_the_book_blocks(book_workspace):
    run = run_plan(read_plan(EXAMPLES / "breaks-rules.yaml"), book_workspace)
    assert run.check.blocked and run.offers > 0
    assert {"CN-CAP-03", "CN-CLOSE-01", "CN-PRC-05"} <= {f.rule_id for f in run.check.findings if f.blocks}


def test_a_plan_is_checked_alone_when_there_is_no_book(tmp_path):
    run = run_plan(read_plan(EXAMPLES / "breaks-rules.yaml"), Workspace.init(tmp_path / "empty"))
    assert run.offers == 0 and run.check.figures.accounts == 0
    assert "CN-CLOSE-01" in {f.rule_id for f in run.check.findings if f.blocks}


def test_a_plan_file_that_does_not_parse_names_the_file_and_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\nsegments: [\n", encoding="utf-8")
    with pytest.raises(PlanInvalid, match=r"bad.yaml: not valid YAML at line \d"):
        read_plan(bad)
    with pytest.raises(PlanInvalid, match="cannot read"):
        read_plan(tmp_path / "missing.yaml")


def test_a_restructuring_with_a_haircut_and_capitalised_arrears_books_each_part_apart(
    ledger, tmp_path, flat_fee_product
):
    """Forgiven principal goes to waivers; capitalised interest and fee become income (not one net figure)."""
    workspace = Workspace.init(tmp_path / "ws")
    opened = open_loan(product=flat_fee_product, principal="1200.00", term=12, start_date=START, actor="test",
                       uow=ledger.uow(), loan_id="F1", customer_id="CF1", account_id="AF1")  # fmt: skip
    for inst in opened.schedule.installments[:3]:
        post_payment("F1", inst.total, value_date=inst.due_date, idempotency_key=f"F1-{inst.number}", actor="test",
                     uow=ledger.uow())  # fmt: skip
    option = {"id": "haircut", "kind": "restructuring", "term_months": 12, "annual_rate": 0.08,
              "method": "equal-installment", "haircut": 0.1, "capitalize_overdue": True, "waive_penalties": True}  # fmt: skip
    plan = parse_plan(plan_data(plan_id="haircut-plan", options=[option]), source="test")
    write_ledger_offers(plan, workspace, ledger, as_of=TODAY)
    before = trial_balance(uow=ledger.uow(write=False), loan_id="F1")
    done = accept_offer(loan_id="F1", option_id="haircut", ctx=ledger, workspace=workspace, actor="ops")
    after = trial_balance(uow=ledger.uow(write=False), loan_id="F1")
    quote = done.quote
    assert quote.forgiven_principal > 0 and quote.capitalized_fee > 0

    def moved(account: LedgerAccount) -> int:
        return after.get(account, 0) - before.get(account, 0)

    assert moved(LedgerAccount.FEE_INCOME) == to_minor(quote.capitalized_fee)
    assert moved(LedgerAccount.INTEREST_INCOME) == to_minor(quote.capitalized_interest)
    assert moved(LedgerAccount.WAIVERS) >= to_minor(quote.forgiven_principal)
