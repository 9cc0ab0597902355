"""Notice text: the Jinja2 templates per language and channel, with amounts, rates and dates formatted by locale.

A template states what it carries: ``{% do carries('annualised-rate') %}`` beside the figures it prints.
:func:`render_notice` collects those items as it renders, so the compliance check of a notice is a check of the
text actually produced (a lender's own template that leaves the rates out is caught, not assumed). Templates are
looked up in the lender's folders first, then in the ones shipped in ``runoff/plan/templates``::

    <lang>/<template-name>.<channel>.<ext>.j2    e.g. zh-CN/offer-letter.sms.txt.j2   (a lender's own)
    <lang>/<channel>.<ext>.j2                    e.g. zh-CN/letter.html.j2             (the shipped default)

Amounts are formatted with Babel (``¥1,234.56`` in zh_CN, ``CN¥1,234.56`` in en_US); Chinese letters also
write the RMB amount in words (大写金额) with cn2an, as payment documents do.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import cn2an
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal, format_percent
from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
)

from runoff.compliance.checks import RequiredContent, conditions_match
from runoff.compliance.facts import (
    ELECTRONIC_CHANNELS,
    Channel,
    CollectorType,
    ContentItem,
    NoticeFacts,
    NoticeType,
    ProductClass,
    ReferenceEvent,
)
from runoff.compliance.selection import RuleBook
from runoff.money import CENT, ZERO, quantize
from runoff.plan.notices import AnnouncementContent, Language, NoticeContent, NoticeInvalid

CHANNEL_FILES: dict[Channel, str] = {
    Channel.LETTER: "letter.html.j2",
    Channel.EMAIL: "email.html.j2",
    Channel.SMS: "sms.txt.j2",
    Channel.IN_APP: "in-app.txt.j2",
    Channel.ANNOUNCEMENT: "announcement.html.j2",
}
"""The shipped template of each channel (under the language's folder)."""

HTML_CHANNELS = frozenset({Channel.LETTER, Channel.EMAIL, Channel.ANNOUNCEMENT})

TITLES: dict[Language, dict[NoticeType, str]] = {
    Language.ZH_CN: {
        NoticeType.CLOSURE: "关于分期服务逐步停止的告知书",
        NoticeType.STOP_DRAWS: "关于停止新增借款的告知书",
        NoticeType.LINE_TERMINATION: "关于终止借款额度的告知书",
        NoticeType.OFFER: "可选还款方案告知书",
        NoticeType.REMINDER: "还款方案选择期提醒",
    },
    Language.EN: {
        NoticeType.CLOSURE: "Our installment service is closing: what it means for you",
        NoticeType.STOP_DRAWS: "No new purchases on your credit line",
        NoticeType.LINE_TERMINATION: "Your credit line is ending",
        NoticeType.OFFER: "Your repayment options",
        NoticeType.REMINDER: "Reminder: your repayment options",
    },
}
ANNOUNCEMENT_TITLE = {
    Language.ZH_CN: "关于分期服务逐步停止的公告",
    Language.EN: "Announcement: our installment service is closing",
}


# --- formatting -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoticeFormat:
    """Locale formatting for one language: money, money in words, rates and dates."""

    language: Language

    def money(self, amount: Decimal | None) -> str:
        if amount is None:
            return "—"
        return format_currency(quantize(amount), "CNY", locale=self.language.locale)

    def words(self, amount: Decimal | None) -> str:
        """The amount in Chinese capital numerals (人民币大写, 壹仟贰佰叁拾肆元伍角陆分); empty in English."""
        if amount is None or self.language is not Language.ZH_CN:
            return ""
        value = quantize(amount).copy_abs()
        text = "零元整" if value == ZERO else str(cn2an.an2cn(format(value.quantize(CENT), "f"), "rmb"))
        return ("负" if amount < 0 else "") + text

    def pct(self, rate: Decimal | None) -> str:
        """A fraction as a percent with two decimals (0.126834 → 12.68%)."""
        if rate is None:
            return "—"
        return format_percent(rate, "#,##0.00%", locale=self.language.locale)

    def rate(self, rate: Decimal | None, digits: int = 2) -> str:
        """A small daily rate as a percent (0.0005 → 0.05%)."""
        if rate is None:
            return "—"
        pattern = "#,##0." + "0" * digits + "%"
        return format_percent(rate, pattern, locale=self.language.locale)

    def day(self, day: date | None) -> str:
        if day is None:
            return "—"
        return format_date(day, "long", locale=self.language.locale)

    def number(self, value: int | Decimal) -> str:
        return format_decimal(value, locale=self.language.locale)


# --- rendering ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RenderedNotice:
    """A notice as text: its title, body (HTML or plain text), and the content items the text carries."""

    notice_id: str
    language: Language
    channel: Channel
    notice_type: NoticeType
    title: str
    body: str
    media_type: str  # text/html or text/plain
    items: frozenset[ContentItem]
    template: str

    @property
    def suffix(self) -> str:
        return ".html" if self.media_type == "text/html" else ".txt"


@lru_cache(maxsize=16)
def _environment(search_dirs: tuple[str, ...]) -> Environment:
    loaders: list[Any] = [FileSystemLoader(list(search_dirs))] if search_dirs else []
    loaders.append(PackageLoader("runoff.plan", "templates"))
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=lambda name: name is not None and ".html" in name,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.do"],
    )
    return env


def template_names(language: Language, channel: Channel, template: str | None) -> list[str]:
    """Where a template is looked for, first match wins: the plan's named template, then the channel default."""
    default = f"{language.value}/{CHANNEL_FILES[channel]}"
    if template is None:
        return [default]
    base = Path(template).name
    return [f"{language.value}/{base}.{CHANNEL_FILES[channel]}", default]


def _tidy_text(text: str) -> str:
    lines = [line.rstrip() for line in text.splitlines()]
    out = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return out + "\n"


def _render(
    names: Sequence[str], variables: dict[str, Any], *, search_dirs: Sequence[Path | str]
) -> tuple[str, frozenset[ContentItem], str]:
    env = _environment(tuple(str(Path(d)) for d in search_dirs))
    try:
        template = env.select_template(list(names))
    except TemplateNotFound:
        raise NoticeInvalid(
            f"`template`: none of {', '.join(names)} exists in {', '.join(map(str, search_dirs)) or 'the shipped templates'}",
            field="template",
        ) from None
    carried: set[ContentItem] = set()

    def carries(item: str) -> str:
        try:
            carried.add(ContentItem(item))
        except ValueError:
            allowed = ", ".join(i.value for i in ContentItem)
            raise NoticeInvalid(
                f"`template`: {template.name} says it carries {item!r}; expected one of {allowed}", field="template"
            ) from None
        return ""

    try:
        body = template.render(**variables, carries=carries)
    except (UndefinedError, TemplateSyntaxError) as exc:
        raise NoticeInvalid(f"`template`: {template.name} cannot be rendered: {exc}", field="template") from None
    return body, frozenset(carried), str(template.name)


def opt_out_needed(channel: Channel, required: frozenset[ContentItem], *, always: bool) -> bool:
    """Electronic messages carry opt-out words where a rule asks for them, or always when the lender says so."""
    if channel not in ELECTRONIC_CHANNELS:
        return False
    return always or ContentItem.OPT_OUT_INSTRUCTIONS in required


def render_notice(
    content: NoticeContent,
    *,
    language: Language,
    channel: Channel,
    template: str | None = None,
    search_dirs: Sequence[Path | str] = (),
    required: frozenset[ContentItem] = frozenset(),
) -> RenderedNotice:
    """Render one customer's notice in ``language`` for ``channel``; ``required`` are the items the rules ask for
    on this channel (the opt-out text goes in when they include it)."""
    if channel not in CHANNEL_FILES or channel is Channel.ANNOUNCEMENT:
        raise NoticeInvalid(f"`channel`: {channel.value!r} is not an individual notice channel", field="channel")
    fmt = NoticeFormat(language)
    title = TITLES[language].get(content.notice_type, TITLES[language][NoticeType.CLOSURE])
    variables = {
        "c": content,
        "f": fmt,
        "title": title,
        "lender": content.contacts.lender_name.get(language),
        "channel": channel.value,
        "html": channel in HTML_CHANNELS,
        "opt_out": opt_out_needed(channel, required, always=content.contacts.opt_out_on_all_electronic),
        "lang": language,
    }
    body, items, name = _render(template_names(language, channel, template), variables, search_dirs=search_dirs)
    if channel not in HTML_CHANNELS:
        body = _tidy_text(body)
    return RenderedNotice(
        notice_id=content.notice_id,
        language=language,
        channel=channel,
        notice_type=content.notice_type,
        title=title,
        body=body,
        media_type="text/html" if channel in HTML_CHANNELS else "text/plain",
        items=items,
        template=name,
    )


def render_announcement(
    content: AnnouncementContent, *, language: Language, search_dirs: Sequence[Path | str] = ()
) -> RenderedNotice:
    """Render the public announcement page (公告) in ``language``."""
    fmt = NoticeFormat(language)
    title = ANNOUNCEMENT_TITLE[language]
    variables = {
        "c": content,
        "f": fmt,
        "title": title,
        "lender": content.contacts.lender_name.get(language),
        "channel": Channel.ANNOUNCEMENT.value,
        "html": True,
        "opt_out": False,
        "lang": language,
    }
    names = [f"{language.value}/{CHANNEL_FILES[Channel.ANNOUNCEMENT]}"]
    body, items, name = _render(names, variables, search_dirs=search_dirs)
    return RenderedNotice(
        notice_id=content.notice_id,
        language=language,
        channel=Channel.ANNOUNCEMENT,
        notice_type=NoticeType.CLOSURE,
        title=title,
        body=body,
        media_type="text/html",
        items=items,
        template=name,
    )


def plain_text(html: str) -> str:
    """The readable text of a rendered HTML notice (tags dropped, entities decoded), for checks and previews."""
    import html as html_module

    text = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", html, flags=re.S | re.I)
    text = re.sub(r"<br\s*/?>|</(p|div|h\d|li|tr|table|thead|tbody)>", "\n", text, flags=re.I)
    text = re.sub(r"</t[dh]>", " ", text, flags=re.I)
    text = re.sub(r"<[^>]+>", "", text)
    text = html_module.unescape(text)
    return _tidy_text(re.sub(r"[ \t]+", " ", text))


# --- compliance ---------------------------------------------------------------------------------------------------


def required_items(
    book: RuleBook,
    *,
    notice_type: NoticeType,
    channel: Channel,
    on: date,
    region: str | None,
    collector: CollectorType | None = None,
    product_class: ProductClass = ProductClass.INSTALLMENT_LOAN,
) -> frozenset[ContentItem]:
    """The content items the rules binding the lender ask of a notice of this type on this channel."""
    probe = NoticeFacts(
        notice_id="probe",
        notice_type=notice_type,
        channel=channel,
        sent_on=on,
        region=region,
        product_class=product_class,
        collector_type=collector,
    )
    acting = collector or book.profile.default_collector
    out: set[ContentItem] = set()
    for _rule, check in book.checks_for(on, target="notice", region=region, collector=acting):
        if not isinstance(check, RequiredContent) or not conditions_match(check, probe):
            continue
        if check.notice_types and notice_type not in check.notice_types:
            continue
        if check.channels and channel not in check.channels:
            continue
        out |= check.items
    return frozenset(out)


def notice_facts(
    rendered: RenderedNotice,
    *,
    sent_on: date,
    customer_id: str | None,
    region: str | None,
    references: dict[ReferenceEvent, date],
    product_class: ProductClass = ProductClass.INSTALLMENT_LOAN,
    collector: CollectorType | None = None,
) -> NoticeFacts:
    """What the compliance engine checks: the notice's type, channel and date, and the items its text carries."""
    return NoticeFacts(
        notice_id=rendered.notice_id,
        customer_id=customer_id,
        notice_type=rendered.notice_type,
        channel=rendered.channel,
        language=rendered.language.value,
        region=region,
        product_class=product_class,
        sent_on=sent_on,
        references=references,
        contents=rendered.items,
        collector_type=collector,
    )
