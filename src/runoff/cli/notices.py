"""`runoff notices render|send|delivered|acknowledged|failed|list|announce`: customer notices (用户告知书) from the ledger.

``render`` previews one loan's notice as of a date (nothing is written; exit 1 when a rule would refuse it);
``send`` renders it as of today from the ledger, checks it and records it, or refuses with the rule id (exit 2);
``announce`` renders the public announcement page (公告). Letters can also be written as PDF (``--pdf``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from runoff.app.clock import today
from runoff.app.notices import (
    NoticeRecord,
    PreparedNotice,
    SentNotice,
    content_figures,
    letter_pdf,
    list_notices,
    prepare_announcement,
    publish_announcement,
    read_contacts,
    read_plan,
    record_acknowledgement,
    record_delivery,
    record_failure,
    render_loan_notice,
    send_loan_notice,
)
from runoff.cli.ledger import ActorOption, WorkspaceOption, actor_name, ledger_context, parse_date
from runoff.cli.output import JsonOption, emit
from runoff.compliance.facts import Channel, NoticeType
from runoff.errors import InvalidInput
from runoff.plan.model import Plan
from runoff.plan.notice_text import plain_text
from runoff.plan.notices import Language, NoticeContent, parse_channel, parse_language

PlanOption = typer.Option(..., "--plan", help="The exit plan (YAML).", show_default=False)
LoanOption = typer.Option(..., "--loan", help="Loan id in the ledger.", show_default=False)
LangOption = typer.Option(None, "--lang", help="zh-CN or en (default: the plan's first language).")
ChannelOption = typer.Option("letter", "--channel", help="letter, sms, email or in-app.")
TemplateOption = typer.Option(None, "--template", help="The plan's template id (default: the plan's for the channel).")
TypeOption = typer.Option(None, "--type", help="Notice type when the plan names no template: closure, offer, reminder.")
SegmentOption = typer.Option(None, "--segment", help="The customer's segment (default: the first the loan matches).")
ContactsOption = typer.Option(None, "--contacts", help="The lender's contacts (YAML); default: placeholders.")
TemplatesDirOption = typer.Option(
    None, "--templates", help="A folder of the lender's own templates, tried before the shipped ones."
)
OutOption = typer.Option(None, "--out", help="Write the notice into this folder instead of printing it.")
PdfOption = typer.Option(False, "--pdf", help="Also write a letter as PDF (needs a CJK font; see --font).")
FontOption = typer.Option(None, "--font", help="The TrueType/OpenType font file for PDF letters.")


def _language(plan: Plan, text: str | None) -> Language:
    if text is not None:
        return parse_language(text)
    return parse_language(plan.communications.languages[0]) if plan.communications.languages else Language.ZH_CN


def _notice_type(text: str | None) -> NoticeType | None:
    if text is None:
        return None
    try:
        return NoticeType(text.strip().lower())
    except ValueError:
        allowed = ", ".join(t.value for t in NoticeType)
        raise InvalidInput(f"`type`: {text!r} is not a notice type; expected one of {allowed}", field="type") from None


def _dirs(templates: Path | None) -> tuple[Path, ...]:
    if templates is None:
        return ()
    if not templates.is_dir():
        raise InvalidInput(f"`templates`: {str(templates)!r} is not a folder", field="templates")
    return (templates,)


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text)


def _write(prepared: PreparedNotice, out: Path, *, pdf: bool, font: Path | None) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    r = prepared.rendered
    stem = _slug(
        f"{prepared.loan_id or prepared.content.plan_id}-{prepared.template_id or r.notice_type.value}-{r.channel.value}-{r.language.value}"
    )
    if r.channel is Channel.ANNOUNCEMENT:
        stem = _slug(f"{prepared.content.plan_id}-announcement-{r.language.value}")
    path = out / f"{stem}{r.suffix}"
    path.write_text(r.body, encoding="utf-8")
    files = [str(path)]
    if pdf and r.channel is Channel.LETTER:
        pdf_path = out / f"{stem}.pdf"
        pdf_path.write_bytes(letter_pdf(r, font=font))
        files.append(str(pdf_path))
    return files


def _findings(prepared: PreparedNotice) -> list[dict[str, Any]]:
    return [f.model_dump(mode="json") for f in prepared.findings]


def prepared_dict(prepared: PreparedNotice, files: list[str]) -> dict[str, Any]:
    r = prepared.rendered
    return {
        "notice_id": r.notice_id,
        "loan_id": prepared.loan_id,
        "template": prepared.template_id or r.template,
        "notice_type": r.notice_type.value,
        "channel": r.channel.value,
        "language": r.language.value,
        "as_of": prepared.content.as_of.isoformat(),
        "title": r.title,
        "items": sorted(i.value for i in r.items),
        "blocked": bool(prepared.blocking),
        "findings": _findings(prepared),
        "figures": content_figures(prepared.content) if isinstance(prepared.content, NoticeContent) else None,
        "files": files,
        "body": None if files else r.body,
    }


def record_dict(record: NoticeRecord, *, replayed: bool = False, with_body: bool = False) -> dict[str, Any]:
    out = {
        "id": record.id,
        "notice_key": record.notice_key,
        "plan_id": record.plan_id,
        "loan_id": record.loan_id,
        "customer_id": record.customer_id,
        "notice_type": record.notice_type,
        "channel": record.channel,
        "language": record.language,
        "template": record.template,
        "as_of": record.as_of.isoformat(),
        "status": record.status,
        "sent_at": record.sent_at.isoformat(),
        "delivered_at": record.delivered_at.isoformat() if record.delivered_at else None,
        "acknowledged_at": record.acknowledged_at.isoformat() if record.acknowledged_at else None,
        "failed_at": record.failed_at.isoformat() if record.failed_at else None,
        "failure_reason": record.failure_reason,
        "content_sha256": record.content_sha256,
        "items": record.items,
        "warnings": len(record.findings or []),
        "replayed": replayed,
    }
    if with_body:
        out["body"] = record.body
    return out


def _show_prepared(prepared: PreparedNotice, files: list[str]) -> Any:
    def render(console: Console) -> None:
        r = prepared.rendered
        if files:
            for name in files:
                console.print(name, highlight=False, soft_wrap=True)
        else:
            console.print(plain_text(r.body) if r.media_type == "text/html" else r.body, highlight=False, markup=False)
        for f in prepared.findings:
            style = "red" if f.blocks else "yellow"
            console.print(f"[{style}]{f.severity.value}[/{style}] {f.message}", highlight=False, soft_wrap=True)
        if prepared.blocking:
            console.print("[red]this notice would be refused at send time[/red]")

    return render


def _show_records(records: list[NoticeRecord]) -> Any:
    def render(console: Console) -> None:
        table = Table(title="notices")
        for col in ("id", "loan", "type", "channel", "lang", "as of", "status", "template"):
            table.add_column(col, no_wrap=True)
        for r in records:
            table.add_row(
                str(r.id),
                r.loan_id or "-",
                r.notice_type,
                r.channel,
                r.language,
                r.as_of.isoformat(),
                r.status,
                r.template,
            )
        console.print(table)

    return render


def register(app: typer.Typer) -> None:
    """Add the `notices` group to ``app``."""
    group = typer.Typer(help="Customer notices (用户告知书): render, send and track; the public announcement (公告).")
    app.add_typer(group, name="notices")

    @group.command("render")
    def render_cmd(
        plan_path: Path = PlanOption,
        loan: str = LoanOption,
        lang: str | None = LangOption,
        channel: str = ChannelOption,
        as_of: str | None = typer.Option(None, "--as-of", help="Figures as of (YYYY-MM-DD); default today."),
        template: str | None = TemplateOption,
        notice_type: str | None = TypeOption,
        segment: str | None = SegmentOption,
        contacts: Path | None = ContactsOption,
        templates: Path | None = TemplatesDirOption,
        out: Path | None = OutOption,
        pdf: bool = PdfOption,
        font: Path | None = FontOption,
        workspace: Path | None = WorkspaceOption,
        json_out: bool = JsonOption,
    ) -> None:
        """Preview one loan's notice from the ledger (nothing is written); exit 1 if a rule would refuse it."""
        if pdf and out is None:
            raise InvalidInput("`pdf`: give --out DIR to write the PDF letter into", field="pdf")
        plan = read_plan(plan_path)
        language = _language(plan, lang)
        chan = parse_channel(channel)
        kind = _notice_type(notice_type)
        people = read_contacts(contacts, plan)
        dirs = _dirs(templates)
        with ledger_context(workspace) as ctx:
            day = parse_date(as_of, field="as_of") if as_of is not None else ctx.today()
            prepared = render_loan_notice(
                plan,
                loan,
                uow=ctx.uow(write=False),
                as_of=day,
                language=language,
                channel=chan,
                contacts=people,
                template_id=template,
                notice_type=kind,
                segment=segment,
                search_dirs=dirs,
            )
        files = _write(prepared, out, pdf=pdf, font=font) if out is not None else []
        emit(prepared_dict(prepared, files), as_json=json_out, render=_show_prepared(prepared, files))
        if prepared.blocking:
            raise typer.Exit(code=1)

    @group.command("send")
    def send_cmd(
        plan_path: Path = PlanOption,
        loan: str = LoanOption,
        lang: str | None = LangOption,
        channel: str = ChannelOption,
        template: str | None = TemplateOption,
        notice_type: str | None = TypeOption,
        segment: str | None = SegmentOption,
        contacts: Path | None = ContactsOption,
        templates: Path | None = TemplatesDirOption,
        out: Path | None = OutOption,
        pdf: bool = PdfOption,
        font: Path | None = FontOption,
        actor: str | None = ActorOption,
        workspace: Path | None = WorkspaceOption,
        json_out: bool = JsonOption,
    ) -> None:
        """Render one loan's notice as of today from the ledger, check it and record it as sent (or refuse it)."""
        plan = read_plan(plan_path)
        language = _language(plan, lang)
        chan = parse_channel(channel)
        kind = _notice_type(notice_type)
        people = read_contacts(contacts, plan)
        dirs = _dirs(templates)
        with ledger_context(workspace) as ctx:
            sent = send_loan_notice(
                plan,
                loan,
                uow=ctx.uow(),
                language=language,
                channel=chan,
                actor=actor_name(actor),
                contacts=people,
                template_id=template,
                notice_type=kind,
                segment=segment,
                search_dirs=dirs,
            )
        _emit_sent(sent, out=out, pdf=pdf, font=font, as_json=json_out)

    def _status(
        notice_id: int, status: str, actor: str | None, workspace: Path | None, json_out: bool, reason: str | None
    ) -> None:
        with ledger_context(workspace) as ctx:
            who = actor_name(actor)
            if status == "delivered":
                record = record_delivery(notice_id, uow=ctx.uow(), actor=who)
            elif status == "acknowledged":
                record = record_acknowledgement(notice_id, uow=ctx.uow(), actor=who)
            else:
                record = record_failure(notice_id, reason or "", uow=ctx.uow(), actor=who)
        emit(record_dict(record), as_json=json_out, render=_show_records([record]))

    @group.command("delivered")
    def delivered_cmd(
        notice_id: int = typer.Argument(..., help="The notice's id (from `send` or `list`)."),
        actor: str | None = ActorOption,
        workspace: Path | None = WorkspaceOption,
        json_out: bool = JsonOption,
    ) -> None:
        """Record that the channel delivered the notice."""
        _status(notice_id, "delivered", actor, workspace, json_out, None)

    @group.command("acknowledged")
    def acknowledged_cmd(
        notice_id: int = typer.Argument(..., help="The notice's id."),
        actor: str | None = ActorOption,
        workspace: Path | None = WorkspaceOption,
        json_out: bool = JsonOption,
    ) -> None:
        """Record that the customer acknowledged the notice."""
        _status(notice_id, "acknowledged", actor, workspace, json_out, None)

    @group.command("failed")
    def failed_cmd(
        notice_id: int = typer.Argument(..., help="The notice's id."),
        reason: str = typer.Option(..., "--reason", help="Why it could not be delivered.", show_default=False),
        actor: str | None = ActorOption,
        workspace: Path | None = WorkspaceOption,
        json_out: bool = JsonOption,
    ) -> None:
        """Record that the channel could not deliver the notice."""
        _status(notice_id, "failed", actor, workspace, json_out, reason)

    @group.command("list")
    def list_cmd(
        loan: str | None = typer.Option(None, "--loan", help="Only this loan's notices."),
        plan_id: str | None = typer.Option(None, "--plan-id", help="Only this plan's notices."),
        limit: int = typer.Option(100, "--limit", min=1, max=100_000, help="At most this many, newest first."),
        workspace: Path | None = WorkspaceOption,
        json_out: bool = JsonOption,
    ) -> None:
        """Notices recorded in the ledger, newest first."""
        with ledger_context(workspace) as ctx:
            records = list_notices(uow=ctx.uow(write=False), loan_id=loan, plan_id=plan_id, limit=limit)
        emit([record_dict(r) for r in records], as_json=json_out, render=_show_records(records))

    @group.command("announce")
    def announce_cmd(
        plan_path: Path = PlanOption,
        lang: str | None = LangOption,
        as_of: str | None = typer.Option(None, "--as-of", help="Date on the page (YYYY-MM-DD); default today."),
        contacts: Path | None = ContactsOption,
        templates: Path | None = TemplatesDirOption,
        out: Path | None = OutOption,
        record: bool = typer.Option(False, "--record", help="Record the announcement as published today."),
        actor: str | None = ActorOption,
        workspace: Path | None = WorkspaceOption,
        json_out: bool = JsonOption,
    ) -> None:
        """The public announcement page (公告) of the plan: dates, waves, options and contacts."""
        plan = read_plan(plan_path)
        language = _language(plan, lang)
        people = read_contacts(contacts, plan)
        dirs = _dirs(templates)
        if record:
            with ledger_context(workspace) as ctx:
                sent = publish_announcement(
                    plan, uow=ctx.uow(), language=language, actor=actor_name(actor), contacts=people, search_dirs=dirs
                )
            _emit_sent(sent, out=out, pdf=False, font=None, as_json=json_out)
            return
        day = parse_date(as_of, field="as_of") if as_of is not None else today()
        prepared = prepare_announcement(plan, as_of=day, language=language, contacts=people, search_dirs=dirs)
        files = _write(prepared, out, pdf=False, font=None) if out is not None else []
        emit(prepared_dict(prepared, files), as_json=json_out, render=_show_prepared(prepared, files))
        if prepared.blocking:
            raise typer.Exit(code=1)


def _emit_sent(sent: SentNotice, *, out: Path | None, pdf: bool, font: Path | None, as_json: bool) -> None:
    files: list[str] = []
    if out is not None and sent.prepared is not None:
        files = _write(sent.prepared, out, pdf=pdf, font=font)
    data = record_dict(sent.record, replayed=sent.replayed)
    data["files"] = files

    def render(console: Console) -> None:
        verb = "already sent today" if sent.replayed else "sent"
        r = sent.record
        console.print(
            f"notice {r.id} {verb}: {r.notice_type} by {r.channel} in {r.language} to loan {r.loan_id or '-'}"
        )
        for name in files:
            console.print(name, highlight=False, soft_wrap=True)

    emit(data, as_json=as_json, render=render)
