"""The assessment report: one self-contained, offline HTML page, bilingual headings, slots other capabilities fill."""

from __future__ import annotations

import re
from datetime import datetime

import plotly.graph_objects as go
import polars as pl
import pytest

from runoff.reports.assessment import (
    SLOTS,
    AssessmentData,
    ReportSection,
    ReportTable,
    assessment_report,
    table_html,
)
from runoff.risk.delinquency import (
    DEFAULT_DIMENSIONS,
    delinquency_partition,
    merge_delinquency,
    overdue_rates,
    prepare_book,
)
from runoff.risk.roll_rates import (
    concentration,
    concentration_partition,
    flow_rates,
    merge_concentration,
    merge_transitions,
    roll_rates,
    transition_matrix,
    transition_partition,
)
from runoff.risk.vintage import merge_vintages, vintage_curves, vintage_partition
from tests.risk.hand_book import MAR, hand_book


@pytest.fixture(scope="module")
def data() -> AssessmentData:
    book = hand_book()
    prepared = prepare_book(
        book["performance"], loans=book["loans"], customers=book["customers"], dimensions=DEFAULT_DIMENSIONS, as_of=MAR
    )
    counts = merge_transitions([transition_partition(prepared)])
    return AssessmentData(
        as_of=MAR,
        rates=overdue_rates(merge_delinquency([delinquency_partition(prepared)])),
        vintages=vintage_curves(merge_vintages([vintage_partition(prepared, book["loans"])]), as_of=MAR),
        matrix=transition_matrix(counts, weight="balance"),
        rolls=roll_rates(counts),
        flows=flow_rates(counts),
        concentration=concentration(merge_concentration([concentration_partition(prepared)])),
    )


@pytest.fixture(scope="module")
def html(data) -> str:
    return assessment_report(data, generated_at=datetime(2024, 4, 2, 9, 0))


def _sections(page: str) -> list[tuple[str, str, str]]:
    return re.findall(r'<section id="([^"]+)"><h2>([^<]+)<span class="en">([^<]+)</span>', page)


def test_the_page_carries_plotly_once_and_loads_nothing_from_the_network(html):
    assert html.count("* plotly.js v") == 1  # the library's banner, inlined once
    assert re.search(r"<script[^>]+src=", html) is None
    assert re.search(r"<link[^>]+href=", html) is None
    assert html.count('class="plotly-graph-div"') >= 5
    assert html.index("* plotly.js v") < html.index('id="fig-1"')


def test_every_heading_is_in_chinese_and_english(html):
    sections = _sections(html)
    keys = [k for k, _, _ in sections]
    assert keys[:6] == ["overview", "delinquency-trend", "segments", "vintages", "roll-rates", "concentration"]
    assert keys[6:] == list(SLOTS)
    for key, zh, en in sections:
        assert re.search(r"[\u4e00-\u9fff]", zh), key
        assert re.search(r"[A-Za-z]", en), key


def test_unfilled_slots_say_what_to_run(html):
    roc = html[html.index('<section id="roc">') :]
    roc = roc[: roc.index("</section>")]
    assert "Not available yet" in roc and "runoff model validate" in roc
    stress = html[html.index('<section id="stress">') :]
    assert "runoff stress SCENARIO.yaml" in stress[: stress.index("</section>")]


def test_a_provided_section_fills_its_slot_and_new_keys_come_after_the_slots(data):
    roc = go.Figure(go.Scatter(x=[0, 0.2, 1], y=[0, 0.7, 1], name="scorecard"))
    provided = [
        ReportSection("roc", "ROC 曲线", "ROC curve", figures=(roc,), notes=("AUC 0.78 out of time",)),
        ReportSection("model-card", "模型卡", "Model card", tables=(ReportTable(pl.DataFrame({"feature": ["dpd"]})),)),
    ]
    page = assessment_report(data, sections=provided)
    keys = [k for k, _, _ in _sections(page)]
    assert keys.count("roc") == 1 and keys[-1] == "model-card"
    roc_html = page[page.index('<section id="roc">') :]
    roc_html = roc_html[: roc_html.index("</section>")]
    assert "AUC 0.78 out of time" in roc_html and "plotly-graph-div" in roc_html
    assert "Not available yet" not in roc_html
    assert page.count("* plotly.js v") == 1


def test_figures_of_the_hand_book_carry_its_numbers(html):
    # M1+ balance rate in February: 12800 / 17200; the heatmap's current → M1 by balance: 10200 / 16400
    assert f"{12800 / 17200!r}"[:12] in html
    assert f"{10200 / 16400 * 100:.1f}%" in html


@pytest.mark.parametrize(
    ("column", "value", "shown"),
    [
        ("balance_fen", 1234567, "12,345.67"),
        ("m1plus_balance_rate", 0.04567, "4.57%"),
        ("top10_share", 0.5, "50.00%"),
        ("open_loans", 12345, "12,345"),
        ("lift", 1.23456, "1.235"),
        ("flag", True, "✔"),
        ("segment", None, "–"),
    ],
    ids=["fen-as-yuan", "rate", "share", "count", "float", "flag", "missing"],
)
def test_table_cells_are_formatted_by_column_name(column, value, shown):
    frame = pl.DataFrame({column: [value]})
    assert f"<td>{shown}</td>" in table_html(ReportTable(frame))


def test_table_text_is_escaped():
    page = table_html(ReportTable(pl.DataFrame({"segment": ["<script>alert(1)</script>"]}), caption="a & b"))
    assert "<script>" not in page and "&lt;script&gt;" in page and "a &amp; b" in page


def test_long_tables_are_cut_and_say_so():
    page = table_html(ReportTable(pl.DataFrame({"n": list(range(60))}), max_rows=50))
    assert page.count("<tr>") == 51 and "10 more rows" in page


def test_the_same_inputs_give_the_same_page(data):
    at = datetime(2024, 4, 2, 9, 0)
    assert assessment_report(data, generated_at=at) == assessment_report(data, generated_at=at)


def test_a_book_with_only_overdue_rates_still_renders(data):
    page = assessment_report(AssessmentData(as_of=MAR, rates=data.rates))
    keys = [k for k, _, _ in _sections(page)]
    assert keys[:3] == ["overview", "delinquency-trend", "segments"] and "vintages" not in keys
    assert page.count("* plotly.js v") == 1
