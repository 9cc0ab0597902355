"""Notices from the ledger: rendered at send time from the live position, checked, refused by rule id or
recorded with their text, delivery and acknowledgement; letters as PDF."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select, update

from runoff.app.context import build_context
from runoff.app.loans import open_loan
from runoff.app.notices import (
    find_font,
    letter_pdf,
    list_notices,
    notices,
    prepare_announcement,
    publish_announcement,
    record_acknowledgement,
    record_delivery,
    record_failure,
    render_loan_notice,
    send_loan_notice,
)
from runoff.app.payments import post_payment
from runoff.compliance.facts import Channel
from runoff.config import Settings
from runoff.errors import ComplianceBlocked, ConfigError, Conflict, NotFound
from runoff.plan.notice_text import NoticeFormat, plain_text
from runoff.plan.notices import Language
from runoff.store.ledger.database import create_ledger_engine, upgrade_to_head
from runoff.store.ledger.models import audit_log, customers
from tests.plan import notice_fixtures as fx


class Clock:
    """A clock a test moves (the ledger's one clock)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 1, 22, 2, 0, tzinfo=UTC))


@pytest.fixture
def ctx(ledger_url, tmp_path, clock):
    engine = create_ledger_engine(ledger_url)
    upgrade_to_head(engine)
    engine.dispose()
    context = build_context(Settings(workspace=tmp_path, database_url=ledger_url), clock=clock)
    yield context
    context.close()


@pytest.fixture
def loan(ctx) -> str:
    opened = open_loan(
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
    return opened.loan_id


def _render(ctx, plan, loan_id, as_of, language=Language.ZH_CN, channel=Channel.LETTER):
    return render_loan_notice(plan, loan_id, uow=ctx.uow(write=False), as_of=as_of, language=language, channel=channel)


def test_a_notice_is_rendered_from_the_ledger_and_a_payment_changes_its_figures(ctx, loan):
    plan = fx.plan()
    day = date(2026, 1, 25)
    before = _render(ctx, plan, loan, day)
    post_payment(loan, "275.04", value_date=date(2026, 1, 25), idempotency_key="p1", actor="test", uow=ctx.uow())
    after = _render(ctx, plan, loan, day)
    fmt = NoticeFormat(Language.ZH_CN)
    assert before.content.loan.outstanding_principal == Decimal("3000.00")
    assert after.content.loan.outstanding_principal < before.content.loan.outstanding_principal
    settle_before = next(o for o in before.content.options if o.option_id == "settle")
    settle_after = next(o for o in after.content.options if o.option_id == "settle")
    assert settle_after.total_cost < settle_before.total_cost
    assert fmt.money(settle_after.total_cost) in plain_text(after.rendered.body)
    assert fmt.money(settle_before.total_cost) not in plain_text(after.rendered.body)
    assert before.content.customer_name == "张三"


def test_sending_records_the_text_items_and_figures_of_the_send_date(ctx, loan, clock):
    plan = fx.plan()
    sent = send_loan_notice(plan, loan, uow=ctx.uow(), language=Language.EN, channel=Channel.SMS, actor="ops")
    record = sent.record
    assert (record.status, record.as_of, record.channel, record.language) == ("sent", date(2026, 1, 22), "sms", "en")
    assert record.template == "closure-letter"
    assert "annualised-rate" in record.items and "existing-installments-continue" in record.items
    assert record.body == sent.prepared.rendered.body
    settle = next(o for o in record.figures["options"] if o["option_id"] == "settle")
    assert f"CN¥{Decimal(settle['total_cost']):,.2f}" in record.body
    with ctx.uow(write=False) as uow:
        actions = list(uow.connection.execute(select(audit_log.c.action)).scalars())
    assert "notice.sent" in actions


def test_a_second_send_the_same_day_is_a_replay_and_the_next_day_a_new_notice(ctx, loan, clock):
    plan = fx.plan()
    first = send_loan_notice(plan, loan, uow=ctx.uow(), language=Language.ZH_CN, channel=Channel.LETTER, actor="ops")
    again = send_loan_notice(plan, loan, uow=ctx.uow(), language=Language.ZH_CN, channel=Channel.LETTER, actor="ops")
    assert again.replayed and again.record.id == first.record.id
    clock.now += timedelta(days=1)
    later = send_loan_notice(plan, loan, uow=ctx.uow(), language=Language.ZH_CN, channel=Channel.LETTER, actor="ops")
    assert not later.replayed and later.record.id != first.record.id and later.record.as_of == date(2026, 1, 23)
    assert [n.id for n in list_notices(uow=ctx.uow(write=False), loan_id=loan)] == [later.record.id, first.record.id]


def test_a_notice_missing_a_required_item_is_refused_with_the_rule_id_and_not_recorded(ctx, loan, tmp_path: Path):
    own = tmp_path / "zh-CN"
    own.mkdir()
    (own / "closure-letter.sms.txt.j2").write_text(
        "【{{ lender }}】现有分期按原合同继续。{% do carries('existing-installments-continue') %}\n", encoding="utf-8"
    )
    plan = fx.plan()
    with pytest.raises(ComplianceBlocked) as caught:
        send_loan_notice(
            plan,
            loan,
            uow=ctx.uow(),
            language=Language.ZH_CN,
            channel=Channel.SMS,
            actor="ops",
            search_dirs=(tmp_path,),
        )
    assert caught.value.rule_id == "CN-APR-01"
    assert "annualised-rate" in caught.value.message
    with ctx.uow(write=False) as uow:
        assert uow.connection.execute(select(notices.c.id)).first() is None
        refused = uow.connection.execute(
            select(audit_log.c.details).where(audit_log.c.action == "notice.refused")
        ).scalar_one()
    assert refused["rule_id"] == "CN-APR-01"


def test_delivery_then_acknowledgement_are_recorded_once_and_in_order(ctx, loan, clock):
    plan = fx.plan()
    sent = send_loan_notice(plan, loan, uow=ctx.uow(), language=Language.ZH_CN, channel=Channel.IN_APP, actor="ops")
    nid = sent.record.id
    clock.now += timedelta(minutes=5)
    delivered = record_delivery(nid, uow=ctx.uow(), actor="sms-gateway")
    assert delivered.status == "delivered" and delivered.delivered_at is not None
    assert record_delivery(nid, uow=ctx.uow(), actor="sms-gateway").delivered_at == delivered.delivered_at
    clock.now += timedelta(hours=3)
    acked = record_acknowledgement(nid, uow=ctx.uow(), actor="app")
    assert acked.status == "acknowledged" and acked.acknowledged_at is not None
    with pytest.raises(Conflict, match="cannot become failed"):
        record_failure(nid, "bounced", uow=ctx.uow(), actor="sms-gateway")
    with pytest.raises(NotFound, match="notice"):
        record_delivery(999, uow=ctx.uow(), actor="x")


def test_a_failed_notice_keeps_its_reason(ctx, loan):
    plan = fx.plan()
    sent = send_loan_notice(plan, loan, uow=ctx.uow(), language=Language.EN, channel=Channel.EMAIL, actor="ops")
    failed = record_failure(sent.record.id, "mailbox does not exist", uow=ctx.uow(), actor="mailer")
    assert (failed.status, failed.failure_reason) == ("failed", "mailbox does not exist")


def test_the_announcement_is_checked_and_recorded_without_a_loan(ctx):
    plan = fx.plan()
    sent = publish_announcement(plan, uow=ctx.uow(), language=Language.ZH_CN, actor="ops")
    assert sent.record.loan_id is None and sent.record.channel == "announcement"
    assert "公告" in sent.record.title


# --- PDF ----------------------------------------------------------------------------------------------------------


def _has_font(language: Language) -> bool:
    try:
        find_font(language)
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("language", [Language.ZH_CN, Language.EN], ids=["zh-CN", "en"])
def test_a_letter_renders_as_a_pdf_with_its_font_embedded(ctx, loan, language):
    if not _has_font(language):
        pytest.skip("no CJK font installed (apt-get install fonts-wqy-microhei)")
    prepared = _render(ctx, fx.plan(), loan, date(2026, 1, 22), language=language)
    pdf = letter_pdf(prepared.rendered)
    assert pdf.startswith(b"%PDF-")
    assert b"/Type /Pages" in pdf
    assert b"/FontFile2" in pdf  # the TrueType font is embedded
    assert len(pdf) > 10_000


def test_a_pdf_letter_without_a_usable_font_is_a_clear_error(ctx, loan, tmp_path):
    prepared = _render(ctx, fx.plan(), loan, date(2026, 1, 22))
    with pytest.raises(ConfigError, match="font"):
        letter_pdf(prepared.rendered, font=tmp_path / "missing.ttf")


def test_only_letters_become_pdfs(ctx, loan):
    prepared = _render(ctx, fx.plan(), loan, date(2026, 1, 22), channel=Channel.SMS)
    with pytest.raises(Exception, match="PDF is made from a letter"):
        letter_pdf(prepared.rendered)


def test_announcement_preview_needs_no_ledger():
    prepared = prepare_announcement(fx.plan(), as_of=date(2026, 1, 15), language=Language.EN)
    assert not prepared.blocking
    assert "Repayment options" in plain_text(prepared.rendered.body)
