"""Notice content and text: every language and channel carries what the rules of its jurisdiction require,
with the figures of the send date (APR by IRR, total cost, dates) in the text itself."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from runoff.compliance.engine import check_notice, require_allowed
from runoff.compliance.facts import Channel, CollectorType, ContentItem, NoticeType
from runoff.compliance.selection import RuleBook
from runoff.compliance.taxonomy import RuleKind
from runoff.errors import ComplianceBlocked
from runoff.plan.notice_text import (
    NoticeFormat,
    notice_facts,
    plain_text,
    render_announcement,
    render_notice,
    required_items,
)
from runoff.plan.notices import (
    Language,
    NoticeInvalid,
    announcement_content,
    default_contacts,
    loan_features,
    notice_content,
    parse_channel,
    parse_contacts,
    parse_language,
    segment_of,
)
from runoff.servicing.apr import apr_of_schedule
from tests.plan import notice_fixtures as fx

CHANNELS = [Channel.LETTER, Channel.EMAIL, Channel.SMS, Channel.IN_APP]
LANGUAGES = [Language.ZH_CN, Language.EN]


def _content(plan, position, notice_type=NoticeType.CLOSURE, as_of=fx.NOTICE_DAY, **kw):
    return notice_content(
        plan,
        position,
        as_of=as_of,
        notice_type=notice_type,
        contacts=default_contacts(plan),
        notice_id="N-1",
        customer_id="C1",
        **kw,
    )


def _text(rendered) -> str:
    return plain_text(rendered.body) if rendered.media_type == "text/html" else rendered.body


def _check(plan, content, rendered):
    book = RuleBook(plan.lender)
    facts = notice_facts(
        rendered,
        sent_on=content.as_of,
        customer_id="C1",
        region=content.region,
        references=content.references,
        product_class=plan.product_class,
    )
    return check_notice(facts, plan.lender, book=book)


# --- content --------------------------------------------------------------------------------------------------------


def test_a_current_loan_lands_in_the_first_matching_segment_and_its_wave():
    plan = fx.plan()
    content = _content(plan, fx.current_position())
    assert (content.segment, content.wave) == ("current", "wave-1")
    assert [o.option_id for o in content.options] == ["settle", "extend-6"]
    assert content.window_opens == date(2026, 1, 29) and content.window_closes == date(2026, 4, 29)


def test_a_loan_in_arrears_gets_the_catch_all_segment_and_the_later_wave():
    plan = fx.plan()
    content = _content(plan, fx.arrears_position())
    assert (content.segment, content.wave) == ("arrears", "wave-2")
    assert content.loan is not None and content.loan.days_past_due > 60
    assert content.window_opens == date(2026, 2, 28)  # wave 2 is shifted a month


def test_options_are_priced_by_the_servicing_quotes_with_their_own_apr():
    plan = fx.plan()
    position = fx.current_position()
    content = _content(plan, position)
    extend = next(o for o in content.options if o.option_id == "extend-6")
    settle = next(o for o in content.options if o.option_id == "settle")
    assert extend.installments == 12 + 6  # installments not yet due plus six
    assert abs(extend.apr_nominal - Decimal("0.18")) < Decimal("0.0005")  # an extension keeps the loan's price
    assert settle.total_cost == settle.pay_now and settle.installments == 0
    assert settle.total_cost < content.loan.remaining_payable  # no interest beyond the settlement date
    assert content.loan.apr_nominal == pytest.approx(apr_of_schedule(_schedule(position)).nominal, abs=Decimal("1e-12"))


def _schedule(position):
    from runoff.servicing.schedule import build_schedule

    return build_schedule(position.product, principal=position.principal, term=12, start_date=position.start_date)


def test_an_explicit_segment_overrides_the_conditions():
    plan = fx.plan()
    content = _content(plan, fx.current_position(), segment="arrears")
    assert content.segment == "arrears"
    assert [o.option_id for o in content.options] == ["restructure-24", "settle-discount"]


def test_a_loan_in_no_segment_is_one_clear_error():
    plan = fx.plan(segments=[{"id": "only-m1", "when": "bucket == M1", "options": ["settle"]}], waves=[])
    with pytest.raises(NoticeInvalid, match="matches no segment"):
        segment_of(plan, loan_features(fx.current_position(), as_of=fx.NOTICE_DAY))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("zh-CN", Language.ZH_CN), ("zh", Language.ZH_CN), ("中文", Language.ZH_CN), ("en-US", Language.EN)],
    ids=["zh-CN", "zh", "chinese", "en-US"],
)
def test_language_aliases(text, expected):
    assert parse_language(text) is expected


def test_an_unknown_language_or_channel_names_what_is_allowed():
    with pytest.raises(NoticeInvalid, match="expected zh-CN or en"):
        parse_language("fr")
    with pytest.raises(NoticeInvalid, match="letter, sms, email, in-app"):
        parse_channel("fax")


def test_a_bad_contacts_file_names_the_field():
    with pytest.raises(NoticeInvalid, match="service_hotline"):
        parse_contacts(
            {"lender_name": "X", "website": "w", "complaint_phone": "1", "regulator_name": "R"}, source="c.yaml"
        )


# --- formatting -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "amount", "money", "words"),
    [
        (Language.ZH_CN, "1234.56", "¥1,234.56", "壹仟贰佰叁拾肆元伍角陆分"),
        (Language.ZH_CN, "1005.05", "¥1,005.05", "壹仟零伍元零伍分"),
        (Language.ZH_CN, "0", "¥0.00", "零元整"),
        (Language.EN, "1234.56", "CN¥1,234.56", ""),
    ],
    ids=["zh-amount", "zh-zeros", "zh-zero", "en-amount"],
)
def test_money_is_formatted_by_locale_and_written_in_words_in_chinese(language, amount, money, words):
    fmt = NoticeFormat(language)
    assert fmt.money(Decimal(amount)) == money
    assert fmt.words(Decimal(amount)) == words


def test_rates_and_dates_by_locale():
    assert NoticeFormat(Language.ZH_CN).pct(Decimal("0.126834")) == "12.68%"
    assert NoticeFormat(Language.ZH_CN).day(date(2026, 3, 1)) == "2026年3月1日"
    assert NoticeFormat(Language.EN).day(date(2026, 3, 1)) == "March 1, 2026"


# --- every language and channel, every jurisdiction ----------------------------------------------------------------


@pytest.mark.parametrize("jurisdiction", ["cn", "us", "eu"])
@pytest.mark.parametrize("language", LANGUAGES, ids=lambda lang: lang.value)
@pytest.mark.parametrize("channel", CHANNELS, ids=lambda c: c.value)
@pytest.mark.parametrize("notice_type", [NoticeType.CLOSURE, NoticeType.OFFER], ids=lambda t: t.value)
def test_every_notice_carries_the_content_its_jurisdiction_requires(jurisdiction, language, channel, notice_type):
    plan = fx.plan(jurisdiction)
    content = _content(plan, fx.current_position(), notice_type=notice_type)
    book = RuleBook(plan.lender)
    needed = required_items(book, notice_type=notice_type, channel=channel, on=content.as_of, region=content.region)
    rendered = render_notice(content, language=language, channel=channel, required=needed)
    findings = _check(plan, content, rendered)
    content_findings = [f.message for f in findings if f.kind is RuleKind.CONTENT]
    assert content_findings == []
    assert needed <= rendered.items
    require_allowed(findings)  # block_on_unconfirmed: nothing blocks either
    text = _text(rendered)
    fmt = NoticeFormat(language)
    for option in content.options:
        assert fmt.pct(option.apr_nominal) in text
        assert fmt.money(option.total_cost) in text
    assert fmt.pct(content.loan.apr_nominal) in text
    assert fmt.day(content.window_opens) in text and fmt.day(content.window_closes) in text
    assert fmt.day(content.loan.next_due_date) in text


def test_the_cn_closure_notice_requires_the_items_of_its_rules():
    plan = fx.plan("cn")
    needed = required_items(
        RuleBook(plan.lender), notice_type=NoticeType.CLOSURE, channel=Channel.SMS, on=fx.NOTICE_DAY, region="CN"
    )
    assert {
        ContentItem.ANNUALISED_RATE,
        ContentItem.ALL_FEES,
        ContentItem.DEFAULT_CONSEQUENCES,
        ContentItem.EXISTING_INSTALLMENTS_CONTINUE,
        ContentItem.REPAYMENT_CHANNELS,
        ContentItem.KEY_TERMS_HIGHLIGHTED,
    } <= needed


def test_chinese_letters_write_the_total_cost_in_words():
    plan = fx.plan()
    content = _content(plan, fx.current_position())
    text = _text(render_notice(content, language=Language.ZH_CN, channel=Channel.LETTER))
    for option in content.options:
        assert NoticeFormat(Language.ZH_CN).words(option.total_cost) in text


@pytest.mark.parametrize(
    ("channel", "opt_out"),
    [(Channel.SMS, "回复TD退订"), (Channel.IN_APP, "退订"), (Channel.EMAIL, "退订")],
    ids=["sms", "in-app", "email"],
)
def test_electronic_messages_carry_opt_out_words_and_letters_do_not(channel, opt_out):
    plan = fx.plan()
    content = _content(plan, fx.current_position())
    rendered = render_notice(content, language=Language.ZH_CN, channel=channel)
    assert opt_out in _text(rendered) and ContentItem.OPT_OUT_INSTRUCTIONS in rendered.items
    letter = render_notice(content, language=Language.ZH_CN, channel=Channel.LETTER)
    assert ContentItem.OPT_OUT_INSTRUCTIONS not in letter.items


def test_opt_out_goes_in_where_a_rule_requires_it_even_if_the_lender_would_leave_it_out():
    plan = fx.plan("us")
    contacts = default_contacts(plan).model_copy(update={"opt_out_on_all_electronic": False})
    content = notice_content(
        plan,
        fx.current_position(),
        as_of=fx.NOTICE_DAY,
        notice_type=NoticeType.CLOSURE,
        contacts=contacts,
        notice_id="N-2",
    )
    book = RuleBook(plan.lender)
    plain = render_notice(content, language=Language.EN, channel=Channel.SMS)
    assert ContentItem.OPT_OUT_INSTRUCTIONS not in plain.items
    needed = required_items(
        book,
        notice_type=NoticeType.CLOSURE,
        channel=Channel.SMS,
        on=fx.NOTICE_DAY,
        region="US",
        collector=CollectorType.AGENCY,
    )
    assert ContentItem.OPT_OUT_INSTRUCTIONS in needed  # Reg F, agencies' electronic messages
    with_rule = render_notice(content, language=Language.EN, channel=Channel.SMS, required=needed)
    assert "Reply STOP to opt out" in with_rule.body


def test_a_notice_whose_template_leaves_out_the_rates_is_refused_with_the_rule_id(tmp_path: Path):
    own = tmp_path / "zh-CN"
    own.mkdir()
    (own / "closure-letter.sms.txt.j2").write_text(
        "【{{ lender }}】我们将停止分期服务，现有分期按原合同继续。{% do carries('existing-installments-continue') %}\n",
        encoding="utf-8",
    )
    plan = fx.plan()
    content = _content(plan, fx.current_position())
    rendered = render_notice(
        content, language=Language.ZH_CN, channel=Channel.SMS, template="notices/closure-letter", search_dirs=[tmp_path]
    )
    assert rendered.template == "zh-CN/closure-letter.sms.txt.j2"
    findings = _check(plan, content, rendered)
    with pytest.raises(ComplianceBlocked, match="annualised-rate") as caught:
        require_allowed(findings)
    assert caught.value.rule_id in {"CN-APR-01", "CN-APR-02", "CN-CLOSE-01", "CN-PRC-05"}
    assert {f.rule_id for f in findings if f.blocks} >= {"CN-APR-01", "CN-APR-02"}


def test_a_template_claiming_an_unknown_item_is_one_clear_error(tmp_path: Path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "x.sms.txt.j2").write_text("{% do carries('free-lunch') %}hi\n", encoding="utf-8")
    content = _content(fx.plan(), fx.current_position())
    with pytest.raises(NoticeInvalid, match="free-lunch"):
        render_notice(content, language=Language.EN, channel=Channel.SMS, template="x", search_dirs=[tmp_path])


def test_an_option_the_loan_cannot_take_is_listed_not_dropped():
    plan = fx.plan(
        options=[*fx.PLAN["options"], {"id": "holiday-3", "kind": "hardship-holiday", "months": 3}],
        segments=[{"id": "all", "options": ["settle", "holiday-3"]}],
        waves=[],
    )
    # a loan whose every installment is already due has nothing to defer
    position = fx.current_position(start=date(2024, 1, 10))
    content = _content(plan, position, as_of=date(2026, 1, 22))
    assert [u[0] for u in content.unavailable] == ["holiday-3"]
    text = _text(render_notice(content, language=Language.EN, channel=Channel.LETTER))
    assert "holiday-3" in text


# --- the public announcement ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES, ids=lambda lang: lang.value)
def test_the_announcement_lists_waves_options_and_passes_the_closure_rules(language):
    plan = fx.plan()
    content = announcement_content(plan, as_of=date(2026, 1, 15), contacts=default_contacts(plan), notice_id="A-1")
    rendered = render_announcement(content, language=language)
    facts = notice_facts(rendered, sent_on=content.as_of, customer_id=None, region="CN", references=content.references)
    findings = check_notice(facts, plan.lender)
    assert [f.message for f in findings if f.kind is RuleKind.CONTENT] == []
    text = plain_text(rendered.body)
    fmt = NoticeFormat(language)
    assert fmt.pct(Decimal("0.12")) in text  # the restructuring's rate
    assert fmt.day(date(2026, 3, 16)) in text  # stop new draws, 60 days after the announcement
    assert len(content.waves) == 2
    assert ("accounts in arrears" in text) and ("current accounts" in text)


def test_an_option_without_an_annualised_rate_leaves_the_rate_item_out_and_is_refused():
    from dataclasses import replace

    plan = fx.plan()
    content = _content(plan, fx.current_position())
    no_rate = replace(content, options=(replace(content.options[1], apr_nominal=None, apr_effective=None),))
    rendered = render_notice(no_rate, language=Language.ZH_CN, channel=Channel.LETTER)
    assert ContentItem.ANNUALISED_RATE not in rendered.items
    assert "—" in _text(rendered)  # the missing rate shows as a dash, never as a made-up figure
    with pytest.raises(ComplianceBlocked) as caught:
        require_allowed(_check(plan, no_rate, rendered))
    assert caught.value.rule_id == "CN-APR-01"


def test_settling_on_the_drawing_date_costs_the_principal_at_a_zero_rate():
    plan = fx.plan()
    position = fx.current_position(start=fx.NOTICE_DAY)
    settle = next(o for o in _content(plan, position).options if o.option_id == "settle")
    assert settle.total_cost == Decimal("3000.00") and settle.apr_nominal == 0
