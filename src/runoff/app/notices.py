"""Notices from the ledger (用户告知书): render at send time, check, refuse or send, and record what happened.

A notice is always rendered from the loan's position as the ledger holds it in the same transaction that
records the send, so its figures are those of the send date, never of an earlier offers run. Before anything is
recorded the rendered text is checked by the compliance engine (:func:`runoff.compliance.engine.check_notice`):
a blocking finding refuses the send with the rule id (``ComplianceBlocked``) and only an audit record of the
refusal is written. A sent notice keeps its exact text, the content items it carried, the figures it was built
from and the findings it passed with; delivery, acknowledgement and failure are recorded on the same row.

The ``notices`` table is :data:`runoff.store.ledger.notices.notices`, created by the migration ``0002_notices``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import insert, select, update
from sqlalchemy.engine import RowMapping

from runoff.compliance.engine import check_notice, require_allowed
from runoff.compliance.facts import Channel, CollectorType, NoticeType
from runoff.compliance.findings import Finding
from runoff.compliance.selection import RuleBook
from runoff.errors import ComplianceBlocked, ConfigError, Conflict, InvalidInput, NotFound
from runoff.plan.model import Plan, parse_plan
from runoff.plan.notice_text import (
    RenderedNotice,
    notice_facts,
    render_announcement,
    render_notice,
    required_items,
)
from runoff.plan.notices import (
    AnnouncementContent,
    Language,
    NoticeContacts,
    NoticeContent,
    NoticeInvalid,
    announcement_content,
    default_contacts,
    notice_content,
    parse_contacts,
)
from runoff.store.ledger.models import customers
from runoff.store.ledger.notices import notices
from runoff.store.ledger.repository import audit_entry
from runoff.store.ledger.unit_of_work import UnitOfWork

# --- inputs -----------------------------------------------------------------------------------------------------


def read_plan(path: Path) -> Plan:
    """The plan file at ``path`` (YAML), validated; one clear error naming the file and field."""
    if not path.is_file():
        raise InvalidInput(f"`plan`: {str(path)!r} is not a file; expected a plan YAML file", field="plan")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidInput(f"`plan`: {path} is not valid YAML: {exc}", field="plan") from None
    return parse_plan(data, source=str(path))


def read_contacts(path: Path | None, plan: Plan) -> NoticeContacts:
    """The lender's contacts file (YAML), or the placeholders for the plan's jurisdiction when none is given."""
    if path is None:
        return default_contacts(plan)
    if not path.is_file():
        raise InvalidInput(f"`contacts`: {str(path)!r} is not a file; expected a contacts YAML file", field="contacts")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidInput(f"`contacts`: {path} is not valid YAML: {exc}", field="contacts") from None
    return parse_contacts(data, source=str(path))


@dataclass(frozen=True, slots=True)
class TemplateChoice:
    """Which of the plan's templates a notice uses (None: the shipped default) and what it is about."""

    template_id: str | None
    path: str | None
    notice_type: NoticeType


def choose_template(
    plan: Plan, channel: Channel, *, template_id: str | None = None, notice_type: NoticeType | None = None
) -> TemplateChoice:
    """The plan's template by id, else the first of the plan's templates for this channel (closure and offer
    notices first), else the shipped default for ``notice_type`` (closure when not given)."""
    templates = plan.communications.templates
    if template_id is not None:
        for t in templates:
            if t.id == template_id:
                if channel not in t.channels:
                    allowed = ", ".join(c.value for c in t.channels)
                    raise NoticeInvalid(
                        f"`template`: {template_id!r} has no {channel.value} version; expected one of {allowed}",
                        field="template",
                    )
                return TemplateChoice(t.id, t.path, notice_type or t.notice_type)
        known = ", ".join(t.id for t in templates) or "(the plan defines none)"
        raise NoticeInvalid(f"`template`: {template_id!r} is not a template of plan {plan.id}; expected one of {known}")
    order = (NoticeType.CLOSURE, NoticeType.OFFER, NoticeType.REMINDER)
    candidates = [
        t
        for t in templates
        if channel in t.channels and (notice_type is None or t.notice_type is notice_type) and t.notice_type in order
    ]
    candidates.sort(key=lambda t: order.index(t.notice_type))
    if candidates:
        t = candidates[0]
        return TemplateChoice(t.id, t.path, t.notice_type)
    return TemplateChoice(None, None, notice_type or NoticeType.CLOSURE)


# --- rendering --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreparedNotice:
    """A notice rendered and checked, not yet recorded: its content, text, facts and the engine's findings."""

    content: NoticeContent | AnnouncementContent
    rendered: RenderedNotice
    findings: tuple[Finding, ...]
    template_id: str | None
    loan_id: str | None
    customer_id: str | None

    @property
    def blocking(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.blocks)


def _customer(uow: UnitOfWork, customer_id: str | None) -> RowMapping | None:
    if customer_id is None:
        return None
    return uow.connection.execute(select(customers).where(customers.c.id == customer_id)).mappings().first()


def _prepare(
    uow: UnitOfWork,
    plan: Plan,
    loan_id: str,
    *,
    as_of: date,
    language: Language,
    channel: Channel,
    contacts: NoticeContacts,
    choice: TemplateChoice,
    segment: str | None,
    search_dirs: tuple[Path, ...],
    book: RuleBook,
    collector: CollectorType | None,
) -> PreparedNotice:
    record = uow.ledger.require_loan(loan_id)
    position = uow.ledger.positions([record])[loan_id]
    person = _customer(uow, record.customer_id)
    region = (person["region"] if person is not None else None) or plan.region
    notice_id = f"{plan.id}/{choice.template_id or choice.notice_type.value}/{loan_id}/{channel.value}/{as_of}"
    content = notice_content(
        plan,
        position,
        as_of=as_of,
        notice_type=choice.notice_type,
        contacts=contacts,
        notice_id=notice_id,
        segment=segment,
        customer_id=record.customer_id,
        customer_name=person["name"] if person is not None else None,
        region=region,
    )
    needed = required_items(
        book,
        notice_type=choice.notice_type,
        channel=channel,
        on=as_of,
        region=region,
        collector=collector,
        product_class=plan.product_class,
    )
    rendered = render_notice(
        content, language=language, channel=channel, template=choice.path, search_dirs=search_dirs, required=needed
    )
    facts = notice_facts(
        rendered,
        sent_on=as_of,
        customer_id=record.customer_id,
        region=region,
        references=content.references,
        product_class=plan.product_class,
        collector=collector,
    )
    findings = check_notice(facts, plan.lender, book=book)
    return PreparedNotice(content, rendered, tuple(findings), choice.template_id, loan_id, record.customer_id)


def render_loan_notice(
    plan: Plan,
    loan_id: str,
    *,
    uow: UnitOfWork,
    as_of: date,
    language: Language,
    channel: Channel,
    contacts: NoticeContacts | None = None,
    template_id: str | None = None,
    notice_type: NoticeType | None = None,
    segment: str | None = None,
    search_dirs: tuple[Path, ...] = (),
    book: RuleBook | None = None,
    collector: CollectorType | None = None,
) -> PreparedNotice:
    """Render one loan's notice from the ledger as of ``as_of`` and check it (nothing is written)."""
    choice = choose_template(plan, channel, template_id=template_id, notice_type=notice_type)
    with uow:
        return _prepare(
            uow,
            plan,
            loan_id,
            as_of=as_of,
            language=language,
            channel=channel,
            contacts=contacts or default_contacts(plan),
            choice=choice,
            segment=segment,
            search_dirs=search_dirs,
            book=book or RuleBook(plan.lender),
            collector=collector,
        )


def prepare_announcement(
    plan: Plan,
    *,
    as_of: date,
    language: Language,
    contacts: NoticeContacts | None = None,
    search_dirs: tuple[Path, ...] = (),
    book: RuleBook | None = None,
) -> PreparedNotice:
    """Render the public announcement page (公告) of ``plan`` and check it as a public closure notice."""
    content = announcement_content(
        plan, as_of=as_of, contacts=contacts or default_contacts(plan), notice_id=f"{plan.id}/announcement/{as_of}"
    )
    rendered = render_announcement(content, language=language, search_dirs=search_dirs)
    facts = notice_facts(
        rendered,
        sent_on=as_of,
        customer_id=None,
        region=plan.region,
        references=content.references,
        product_class=plan.product_class,
    )
    findings = check_notice(facts, plan.lender, book=book or RuleBook(plan.lender))
    return PreparedNotice(content, rendered, tuple(findings), None, None, None)


# --- recording --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoticeRecord:
    """A row of ``notices``."""

    id: int
    notice_key: str
    plan_id: str
    loan_id: str | None
    customer_id: str | None
    notice_type: str
    channel: str
    language: str
    template: str
    as_of: date
    status: str
    sent_at: datetime
    delivered_at: datetime | None
    acknowledged_at: datetime | None
    failed_at: datetime | None
    failure_reason: str | None
    title: str
    body: str
    content_sha256: str
    items: list[str]
    figures: dict[str, Any] | None
    findings: list[dict[str, Any]] | None
    actor: str

    @classmethod
    def of(cls, row: RowMapping) -> NoticeRecord:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class SentNotice:
    """The outcome of a send: the row, the prepared notice (None on a replay) and whether it was a replay."""

    record: NoticeRecord
    prepared: PreparedNotice | None
    replayed: bool = False


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def content_figures(content: NoticeContent) -> dict[str, Any]:
    """The figures a notice was rendered from, as JSON (amounts as decimal strings, rates as fractions)."""
    loan = content.loan
    return {
        "as_of": content.as_of.isoformat(),
        "segment": content.segment,
        "wave": content.wave,
        "effective_on": content.effective_on.isoformat(),
        "window": [content.window_opens.isoformat(), content.window_closes.isoformat()],
        "loan": None
        if loan is None
        else {
            "loan_id": loan.loan_id,
            "outstanding_principal": str(loan.outstanding_principal),
            "remaining_payable": str(loan.remaining_payable),
            "overdue": str(loan.overdue),
            "days_past_due": loan.days_past_due,
            "installments_left": loan.installments_left,
            "next_due_date": loan.next_due_date.isoformat() if loan.next_due_date else None,
            "next_due_amount": str(loan.next_due_amount),
            "apr_nominal": _money(loan.apr_nominal),
        },
        "options": [
            {
                "option_id": o.option_id,
                "kind": o.kind.value,
                "pay_now": str(o.pay_now),
                "total_cost": str(o.total_cost),
                "saving": str(o.saving),
                "apr_nominal": _money(o.apr_nominal),
                "apr_effective": _money(o.apr_effective),
                "installments": o.installments,
                "installment_amount": _money(o.installment_amount),
                "first_due": o.first_due.isoformat() if o.first_due else None,
                "maturity": o.maturity.isoformat() if o.maturity else None,
            }
            for o in content.options
        ],
        "unavailable": [list(u) for u in content.unavailable],
        "changes": [[c.phase, c.on.isoformat()] for c in content.changes],
    }


def _audit(uow: UnitOfWork, actor: str, action: str, object_id: str, details: dict[str, Any]) -> None:
    uow.ledger.append_audit([audit_entry(uow.now(), actor, action, "notice", object_id, details)])


def notice_key(plan_id: str, loan_id: str | None, template: str, channel: Channel, language: Language, on: date) -> str:
    """The idempotency key of a send: one notice per plan, loan, template, channel, language and day."""
    return f"{plan_id}:{loan_id or '-'}:{template}:{channel.value}:{language.value}:{on.isoformat()}"


def _existing(uow: UnitOfWork, key: str) -> NoticeRecord | None:
    row = uow.connection.execute(select(notices).where(notices.c.notice_key == key)).mappings().first()
    return None if row is None else NoticeRecord.of(row)


def _record(uow: UnitOfWork, prepared: PreparedNotice, *, key: str, plan: Plan, actor: str) -> NoticeRecord:
    rendered = prepared.rendered
    figures = content_figures(prepared.content) if isinstance(prepared.content, NoticeContent) else None
    values = {
        "notice_key": key,
        "plan_id": plan.id,
        "loan_id": prepared.loan_id,
        "customer_id": prepared.customer_id,
        "notice_type": rendered.notice_type.value,
        "channel": rendered.channel.value,
        "language": rendered.language.value,
        "template": prepared.template_id or rendered.template,
        "as_of": prepared.content.as_of,
        "status": "sent",
        "sent_at": uow.now(),
        "title": rendered.title[:200],
        "body": rendered.body,
        "content_sha256": hashlib.sha256(rendered.body.encode("utf-8")).hexdigest(),
        "items": sorted(i.value for i in rendered.items),
        "figures": figures,
        "findings": [f.model_dump(mode="json") for f in prepared.findings],
        "actor": actor,
    }
    uow.connection.execute(insert(notices).values(**values))
    _audit(
        uow,
        actor,
        "notice.sent",
        key,
        {"loan_id": prepared.loan_id, "channel": rendered.channel.value, "warnings": len(prepared.findings)},
    )
    found = _existing(uow, key)
    assert found is not None
    return found


def _refused(uow: UnitOfWork, actor: str, key: str, error: ComplianceBlocked) -> None:
    """Record a refusal in the audit log in its own transaction (the send's transaction rolls back)."""
    with UnitOfWork(uow.engine, clock=uow.now, write=True) as audit:
        _audit(audit, actor, "notice.refused", key, {"rule_id": error.rule_id, "message": error.message})
        audit.commit()


def send_loan_notice(
    plan: Plan,
    loan_id: str,
    *,
    uow: UnitOfWork,
    language: Language,
    channel: Channel,
    actor: str,
    contacts: NoticeContacts | None = None,
    template_id: str | None = None,
    notice_type: NoticeType | None = None,
    segment: str | None = None,
    search_dirs: tuple[Path, ...] = (),
    book: RuleBook | None = None,
    collector: CollectorType | None = None,
) -> SentNotice:
    """Send one loan's notice: render it from the ledger as of today (the unit of work's clock), check it,
    refuse with the rule id if a rule blocks it, else record it as sent. Idempotent per plan, loan, template,
    channel, language and day: a second send the same day returns the first (``replayed``)."""
    choice = choose_template(plan, channel, template_id=template_id, notice_type=notice_type)
    with uow:
        as_of = uow.now().date()
        key = notice_key(plan.id, loan_id, choice.template_id or choice.notice_type.value, channel, language, as_of)
        found = _existing(uow, key)
        if found is not None:
            return SentNotice(found, None, replayed=True)
        prepared = _prepare(
            uow,
            plan,
            loan_id,
            as_of=as_of,
            language=language,
            channel=channel,
            contacts=contacts or default_contacts(plan),
            choice=choice,
            segment=segment,
            search_dirs=search_dirs,
            book=book or RuleBook(plan.lender),
            collector=collector,
        )
        try:
            require_allowed(prepared.findings)
        except ComplianceBlocked as exc:
            uow.rollback()
            _refused(uow, actor, key, exc)
            raise
        record = _record(uow, prepared, key=key, plan=plan, actor=actor)
        uow.commit()
    return SentNotice(record, prepared)


def publish_announcement(
    plan: Plan,
    *,
    uow: UnitOfWork,
    language: Language,
    actor: str,
    contacts: NoticeContacts | None = None,
    search_dirs: tuple[Path, ...] = (),
    book: RuleBook | None = None,
) -> SentNotice:
    """Record the public announcement (公告) as published today, after the same check as any notice."""
    with uow:
        as_of = uow.now().date()
        key = notice_key(plan.id, None, "announcement", Channel.ANNOUNCEMENT, language, as_of)
        found = _existing(uow, key)
        if found is not None:
            return SentNotice(found, None, replayed=True)
        prepared = prepare_announcement(
            plan, as_of=as_of, language=language, contacts=contacts, search_dirs=search_dirs, book=book
        )
        try:
            require_allowed(prepared.findings)
        except ComplianceBlocked as exc:
            uow.rollback()
            _refused(uow, actor, key, exc)
            raise
        record = _record(uow, prepared, key=key, plan=plan, actor=actor)
        uow.commit()
    return SentNotice(record, prepared)


# --- delivery and acknowledgement -----------------------------------------------------------------------------------


def _aware(moment: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; the ledger writes them in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


_NEXT: dict[str, tuple[str, ...]] = {
    "delivered": ("sent",),
    "acknowledged": ("sent", "delivered"),
    "failed": ("sent",),
}
"""Which statuses each event may follow: a notice is delivered once, acknowledged after it was sent or delivered."""


def _transition(
    notice_id: int,
    status: str,
    *,
    uow: UnitOfWork,
    actor: str,
    at: datetime | None = None,
    reason: str | None = None,
) -> NoticeRecord:
    with uow:
        row = uow.connection.execute(select(notices).where(notices.c.id == notice_id)).mappings().first()
        if row is None:
            raise NotFound(f"`notice`: no notice {notice_id} in the ledger", field="notice")
        current = NoticeRecord.of(row)
        when = at or uow.now()
        if current.status == status:
            return current  # recorded already: idempotent
        if current.status not in _NEXT[status]:
            raise Conflict(
                f"`notice`: notice {notice_id} is {current.status}; it cannot become {status} "
                f"(expected it to be {' or '.join(_NEXT[status])})",
                field="notice",
            )
        if _aware(when) < _aware(current.sent_at):
            raise InvalidInput(
                f"`at`: {when.isoformat()} is before the notice was sent ({current.sent_at.isoformat()})", field="at"
            )
        values: dict[str, Any] = {"status": status, f"{status}_at": when}
        if status == "acknowledged" and current.delivered_at is None:
            values["delivered_at"] = when  # an acknowledged notice was delivered
        if reason is not None:
            values["failure_reason"] = reason[:500]
        uow.connection.execute(update(notices).where(notices.c.id == notice_id).values(**values))
        _audit(uow, actor, f"notice.{status}", current.notice_key, {"id": notice_id, "reason": reason})
        row = uow.connection.execute(select(notices).where(notices.c.id == notice_id)).mappings().one()
        uow.commit()
    return NoticeRecord.of(row)


def record_delivery(notice_id: int, *, uow: UnitOfWork, actor: str, at: datetime | None = None) -> NoticeRecord:
    """The channel confirmed delivery (SMS receipt, e-mail accepted, letter posted, message shown)."""
    return _transition(notice_id, "delivered", uow=uow, actor=actor, at=at)


def record_acknowledgement(notice_id: int, *, uow: UnitOfWork, actor: str, at: datetime | None = None) -> NoticeRecord:
    """The customer acknowledged the notice (read receipt, signed return slip, tapped "I have read this")."""
    return _transition(notice_id, "acknowledged", uow=uow, actor=actor, at=at)


def record_failure(
    notice_id: int, reason: str, *, uow: UnitOfWork, actor: str, at: datetime | None = None
) -> NoticeRecord:
    """The channel could not deliver (bounced, unknown number); the notice must go out another way."""
    if not reason.strip():
        raise InvalidInput("`reason`: empty; expected why the notice could not be delivered", field="reason")
    return _transition(notice_id, "failed", uow=uow, actor=actor, at=at, reason=reason)


def list_notices(
    *, uow: UnitOfWork, loan_id: str | None = None, plan_id: str | None = None, limit: int = 1000
) -> list[NoticeRecord]:
    """Notices recorded, newest first, for a loan and/or a plan."""
    query = select(notices).order_by(notices.c.id.desc()).limit(limit)
    if loan_id is not None:
        query = query.where(notices.c.loan_id == loan_id)
    if plan_id is not None:
        query = query.where(notices.c.plan_id == plan_id)
    with uow:
        return [NoticeRecord.of(r) for r in uow.connection.execute(query).mappings()]


# --- PDF letters ------------------------------------------------------------------------------------------------

CJK_FONT_CANDIDATES: tuple[str, ...] = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/arphic/ukai.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/System/Library/Fonts/PingFang.ttc",
    "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/simsun.ttc",
)
"""System fonts with Chinese glyphs, in order of preference (Debian: fonts-wqy-microhei, fonts-noto-cjk, ...)."""

LATIN_FONT_CANDIDATES: tuple[str, ...] = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)


def find_font(language: Language, *, font: Path | None = None) -> Path:
    """The font file a PDF letter in ``language`` is set in: the one given, else the first system font that has
    the language's glyphs; a clear error naming what to install when there is none."""
    if font is not None:
        if not font.is_file():
            raise ConfigError(f"`font`: {str(font)!r} is not a file; expected a TrueType/OpenType font file")
        return font
    # a CJK font first even for English: names and addresses may be written in Chinese
    candidates = list(CJK_FONT_CANDIDATES)
    if language is Language.EN:
        candidates = [*candidates, *LATIN_FONT_CANDIDATES]
    for name in candidates:
        path = Path(name)
        if path.is_file():
            return path
    for root in (Path("/usr/share/fonts"), Path("/usr/local/share/fonts")):
        if root.is_dir():
            found = sorted(
                p for p in root.rglob("*") if "cjk" in p.name.lower() and p.suffix in (".ttc", ".ttf", ".otf")
            )
            if found:
                return found[0]
    raise ConfigError(
        f"no font with {'Chinese' if language is Language.ZH_CN else 'Unicode'} glyphs found for the PDF letter; "
        "install one (Debian: apt-get install fonts-wqy-microhei, or fonts-noto-cjk) or pass --font PATH"
    )


def _pdf_html(html: str) -> str:
    """The letter's body as the HTML subset fpdf2 lays out (no head, styles or doctype)."""
    import re

    body = re.sub(r"(?is)<!DOCTYPE[^>]*>|<head>.*?</head>|</?html[^>]*>|</?body[^>]*>", "", html)
    return body.strip()


def letter_pdf(rendered: RenderedNotice, *, font: Path | None = None) -> bytes:
    """The letter as a PDF (A4) set in a font with the language's glyphs (fpdf2; the font is embedded)."""
    from fpdf import FPDF

    if rendered.media_type != "text/html":
        raise NoticeInvalid(
            f"`channel`: a PDF is made from a letter, not from {rendered.channel.value}", field="channel"
        )
    path = find_font(rendered.language, font=font)
    pdf = FPDF(format="A4")
    pdf.set_margins(18, 18, 18)
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.set_title(rendered.title)
    pdf.set_creator("runoff")
    for style in ("", "B", "I", "BI"):
        pdf.add_font("notice", style, str(path))
    pdf.add_page()
    pdf.set_font("notice", size=10.5)
    pdf.write_html(_pdf_html(rendered.body), font_family="notice")
    return bytes(pdf.output())
