"""The assessment report (资产评估报告): one self-contained HTML file with Plotly charts, readable offline.

The page carries plotly.js inline once (the first chart is written with ``include_plotlyjs=True``, the
rest reuse it), so it opens from a USB stick on an air-gapped laptop. Headings are in Chinese and
English.

Sections come in a fixed order: the book's figures built here from the analytics (overview,
delinquency trend, segments, vintages, roll rates, concentration, profiles), then **slots** other
capabilities fill with :class:`ReportSection` values — ``score-distribution``, ``roc``, ``ks``,
``calibration`` (PD models), ``stress`` (repayment-ability stress tests), ``alerts`` and
``watchlist`` (early warning). A slot nobody filled shows what to run to fill it; a section with a
new key is added after the slots. Example, from the PD workflow::

    section = ReportSection(key="roc", title_zh="ROC 曲线", title_en="ROC curve", figures=(roc_figure,))
    html = assessment_report(data, sections=[section])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import jinja2
import plotly.graph_objects as go
import polars as pl

from runoff.risk.delinquency import TOTAL
from runoff.risk.roll_rates import TransitionMatrix

SLOTS: dict[str, tuple[str, str, str]] = {
    "score-distribution": (
        "评分分布",
        "Score distributions",
        "run `runoff model validate` to add the score distributions",
    ),
    "roc": ("ROC 曲线", "ROC curve", "run `runoff model validate` to add the ROC curves"),
    "ks": ("KS 曲线", "KS curve", "run `runoff model validate` to add the KS curves"),
    "calibration": ("校准", "Calibration", "run `runoff model validate` to add the calibration by decile"),
    "stress": (
        "还款能力压力测试",
        "Repayment-ability stress tests",
        "run `runoff stress SCENARIO.yaml` to add stress results",
    ),
    "alerts": ("风险预警", "Open alerts", "run `runoff warn --as-of DATE` to evaluate the early-warning rules"),
    "watchlist": ("预警名单", "Watchlist", "run `runoff warn --as-of DATE` to build the roll-forward watchlist"),
}
"""Sections filled by other capabilities: key → (Chinese title, English title, what to run when empty)."""

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


@dataclass(frozen=True, slots=True)
class ReportTable:
    """A table in a section; columns are formatted by name (``*_fen`` as yuan, ``*_rate``/``*_share`` as %)."""

    frame: pl.DataFrame
    caption: str = ""
    max_rows: int = 50


@dataclass(frozen=True, slots=True)
class ReportSection:
    """One section of the report: bilingual title, Plotly figures, tables and plain-text notes (escaped)."""

    key: str
    title_zh: str
    title_en: str
    figures: Sequence[go.Figure] = ()
    tables: Sequence[ReportTable] = ()
    notes: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class AssessmentData:
    """The analytics results the book's own sections are drawn from (any may be missing)."""

    as_of: date
    rates: pl.DataFrame
    vintages: pl.DataFrame | None = None
    matrix: TransitionMatrix | None = None  # bucket states, pooled over recent months
    matrix_months: tuple[date, ...] = ()
    rolls: pl.DataFrame | None = None
    flows: pl.DataFrame | None = None
    concentration: pl.DataFrame | None = None
    segment_concentration: pl.DataFrame | None = None
    top_customers: pl.DataFrame | None = None
    profiles: pl.DataFrame | None = None
    clusters: pl.DataFrame | None = None
    book: Mapping[str, Any] = field(default_factory=dict)


# --- formatting --------------------------------------------------------------------------------------------------


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "✔" if value else ""
    if column.endswith("_fen") and isinstance(value, int | float):
        return f"{value / 100:,.2f}"
    if any(column.endswith(s) for s in ("_rate", "_share", "probability", "p_roll", "p_charge_off")) and isinstance(
        value, int | float
    ):
        return f"{value * 100:.2f}%"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


def _header(column: str) -> str:
    return column.removesuffix("_fen") + (" (元)" if column.endswith("_fen") else "")


def table_html(table: ReportTable) -> str:
    """An escaped HTML table of ``table.frame`` (first ``max_rows`` rows)."""
    frame = table.frame.head(table.max_rows)
    env = _environment()
    return env.get_template("table").render(
        caption=table.caption,
        headers=[_header(c) for c in frame.columns],
        rows=[[_cell(c, v) for c, v in zip(frame.columns, row, strict=True)] for row in frame.iter_rows()],
        more=max(0, table.frame.height - table.max_rows),
        flagged=[bool(r.get("flag")) for r in frame.iter_rows(named=True)] if "flag" in frame.columns else None,
    )


# --- figures -----------------------------------------------------------------------------------------------------


def _layout(fig: go.Figure, title: str, *, y_title: str = "", percent: bool = True, height: int = 420) -> go.Figure:
    fig.update_layout(
        title=title,
        height=height,
        margin={"l": 60, "r": 30, "t": 50, "b": 50},
        legend={"orientation": "h", "y": -0.18},
        template="plotly_white",
        yaxis={"title": y_title, "tickformat": ".1%" if percent else ",", "rangemode": "tozero"},
    )
    return fig


def delinquency_trend_figure(rates: pl.DataFrame) -> go.Figure:
    """M1+, M2+ (30+), M3+ and M4+ (90+) balance rates of the whole book by month end, with the open balance."""
    total = rates.filter(pl.col("dimension") == TOTAL).sort("month_end")
    months = total.get_column("month_end").to_list()
    fig = go.Figure()
    fig.add_bar(
        x=months,
        y=(total.get_column("open_balance_fen") / 100).to_list(),
        name="open balance 余额 (元)",
        yaxis="y2",
        marker_color="#dfe7f2",
    )
    for k, (name, label) in enumerate(
        (("m1plus", "M1+ (≥1 DPD)"), ("m2plus", "M2+ (30+)"), ("m3plus", "M3+ (61+)"), ("m4plus", "M4+ (90+)"))
    ):
        fig.add_scatter(
            x=months, y=total.get_column(f"{name}_balance_rate").to_list(), name=label, mode="lines+markers",
            line={"color": PALETTE[k]},
        )  # fmt: skip
    _layout(fig, "逾期率(余额) · Overdue rates by balance", y_title="share of open balance")
    fig.update_layout(yaxis2={"overlaying": "y", "side": "right", "showgrid": False, "title": "元", "tickformat": ","})
    return fig


def segment_figure(rates: pl.DataFrame, dimension: str, *, as_of: date) -> go.Figure:
    """M1+ and M4+ balance rates of each segment of ``dimension`` at ``as_of``."""
    at = rates.filter((pl.col("dimension") == dimension) & (pl.col("month_end") == as_of))
    segs = at.get_column("segment").to_list()
    fig = go.Figure()
    fig.add_bar(x=segs, y=at.get_column("m1plus_balance_rate").to_list(), name="M1+", marker_color=PALETTE[0])
    fig.add_bar(x=segs, y=at.get_column("m4plus_balance_rate").to_list(), name="M4+ (90+)", marker_color=PALETTE[3])
    return _layout(fig, f"{dimension}: M1+ / M4+ at {as_of.isoformat()}", height=360)


def vintage_figure(curves: pl.DataFrame, metric: str, title: str, *, last: int = 12) -> go.Figure:
    """One line per vintage (the ``last`` most recent) of ``metric`` by months on book."""
    vintages = sorted(curves.get_column("vintage").unique().to_list())[-last:]
    fig = go.Figure()
    for k, v in enumerate(vintages):
        rows = curves.filter((pl.col("vintage") == v) & pl.col("observed")).sort("mob")
        fig.add_scatter(
            x=rows.get_column("mob").to_list(), y=rows.get_column(metric).to_list(), name=v, mode="lines",
            line={"color": PALETTE[k % len(PALETTE)]},
        )  # fmt: skip
    _layout(fig, title, y_title=metric)
    fig.update_layout(xaxis={"title": "MOB 账龄 (months on book)"})
    return fig


def transition_heatmap(matrix: TransitionMatrix, *, title: str) -> go.Figure:
    """The transition matrix as a heatmap, each cell annotated with its probability."""
    p = matrix.probabilities
    text = [[("" if v != v else f"{v * 100:.1f}%") for v in row] for row in p]
    fig = go.Figure(
        go.Heatmap(
            z=p.tolist(), x=list(matrix.to_states), y=list(matrix.from_states), text=text, texttemplate="%{text}",
            colorscale="Reds", zmin=0, zmax=1, colorbar={"tickformat": ".0%"},
        )
    )  # fmt: skip
    fig.update_layout(
        title=title, height=420, template="plotly_white", margin={"l": 80, "r": 30, "t": 50, "b": 50},
        xaxis={"title": "to 下月状态"}, yaxis={"title": "from 本月状态", "autorange": "reversed"},
    )  # fmt: skip
    return fig


def roll_rate_figure(rolls: pl.DataFrame) -> go.Figure:
    """Roll-forward balance rates of each bucket by the month the roll starts from."""
    total = rolls.filter(pl.col("dimension") == TOTAL).sort("month_end")
    fig = go.Figure()
    for k, bucket in enumerate(("current", "M1", "M2", "M3", "M4+")):
        rows = total.filter(pl.col("from_bucket") == bucket)
        fig.add_scatter(
            x=rows.get_column("month_end").to_list(), y=rows.get_column("roll_forward_balance_rate").to_list(),
            name=f"{bucket} → worse", mode="lines+markers", line={"color": PALETTE[k]},
        )  # fmt: skip
    return _layout(fig, "迁徙率 · Roll-forward rates by balance", y_title="share of the bucket's balance")


def flow_figure(flows: pl.DataFrame) -> go.Figure:
    """Current → charge-off flow rate by month (point in time and following a cohort)."""
    fig = go.Figure()
    months = flows.get_column("month_end").to_list()
    fig.add_scatter(
        x=months, y=flows.get_column("current_to_charge_off").to_list(), name="point in time", mode="lines+markers"
    )
    fig.add_scatter(
        x=months,
        y=flows.get_column("current_to_charge_off_lagged").to_list(),
        name="cohort (lagged)",
        mode="lines+markers",
    )
    _layout(fig, "流转率 · Flow rate, current → charge-off", y_title="share of a current balance", height=360)
    fig.update_layout(yaxis={"tickformat": ".2%"})
    return fig


def concentration_figure(concentration: pl.DataFrame) -> go.Figure:
    """Top-10 customers' share of the open and overdue balance, and the HHI, by month end."""
    months = concentration.get_column("month_end").to_list()
    fig = go.Figure()
    fig.add_scatter(x=months, y=concentration.get_column("top10_share").to_list(), name="top-10 share of balance")
    fig.add_scatter(x=months, y=concentration.get_column("overdue_top10_share").to_list(), name="top-10 share of M1+")
    fig.add_scatter(x=months, y=concentration.get_column("hhi").to_list(), name="HHI", yaxis="y2", line={"dash": "dot"})
    _layout(fig, "集中度 · Concentration", y_title="share")
    fig.update_layout(
        yaxis2={"overlaying": "y", "side": "right", "showgrid": False, "title": "HHI", "tickformat": ".2e"}
    )
    return fig


def indicator_figure(indicators: pl.DataFrame, names: Sequence[str], *, title: str) -> go.Figure:
    """Book-level indicator series (rates) on one chart."""
    fig = go.Figure()
    for k, name in enumerate(names):
        rows = indicators.filter((pl.col("indicator") == name) & (pl.col("dimension") == TOTAL)).sort("month_end")
        if rows.height:
            fig.add_scatter(
                x=rows.get_column("month_end").to_list(), y=rows.get_column("value").to_list(), name=name,
                mode="lines+markers", line={"color": PALETTE[k % len(PALETTE)]},
            )  # fmt: skip
    return _layout(fig, title, y_title="value")


# --- the book's sections -----------------------------------------------------------------------------------------


def _overview(data: AssessmentData) -> ReportSection:
    at = data.rates.filter((pl.col("dimension") == TOTAL) & (pl.col("month_end") == data.as_of))
    rows = []
    if at.height:
        r = at.row(0, named=True)
        rows = [
            ("open loans 在贷笔数", f"{r['open_loans']:,}"),
            ("open principal 在贷余额 (元)", f"{r['open_balance_fen'] / 100:,.2f}"),
            *[
                (
                    f"{label} by count / by balance",
                    f"{_cell('_rate', r[f'{k}_count_rate'])} / {_cell('_rate', r[f'{k}_balance_rate'])}",
                )
                for k, label in (("m1plus", "M1+"), ("m2plus", "M2+ (30+)"), ("m3plus", "M3+"), ("m4plus", "M4+ (90+)"))
            ],
        ]
    for key, value in data.book.items():
        rows.append((str(key), _cell(str(key), value)))
    frame = pl.DataFrame(rows, schema=["figure", "value"], orient="row") if rows else pl.DataFrame()
    notes = [
        f"As of 截至 {data.as_of.isoformat()}. Rates are over the open loans (count) or open principal (balance) at "
        "the month end; M1+ is any arrears (≥1 DPD), M2+ is 30+ DPD, M3+ 61+ DPD and M4+ 90+ DPD (the NPL "
        "convention). A closing book loses its good payers first: read the counts and amounts beside the ratios."
    ]
    return ReportSection(
        "overview", "概览", "Overview", tables=(ReportTable(frame, "key figures"),) if rows else (), notes=notes
    )


def book_sections(data: AssessmentData) -> list[ReportSection]:
    """The sections drawn from the book's analytics, in report order."""
    out = [_overview(data)]
    total = data.rates.filter(pl.col("dimension") == TOTAL).sort("month_end")
    trend_cols = ["month_end", "open_loans", "open_balance_fen", "m1plus_count_rate", "m1plus_balance_rate",
                  "m2plus_balance_rate", "m3plus_balance_rate", "m4plus_balance_rate", "charged_off_fen"]  # fmt: skip
    out.append(
        ReportSection(
            "delinquency-trend", "逾期趋势", "Delinquency trend",
            figures=(delinquency_trend_figure(data.rates),),
            tables=(ReportTable(total.select([c for c in trend_cols if c in total.columns]).reverse(), "by month end, latest first", 24),),
        )
    )  # fmt: skip
    dims = [d for d in data.rates.get_column("dimension").unique(maintain_order=True).to_list() if d != TOTAL]
    if dims:
        at = data.rates.filter((pl.col("dimension") != TOTAL) & (pl.col("month_end") == data.as_of))
        seg_cols = ["dimension", "segment", "open_loans", "open_balance_fen", "m1plus_count_rate", "m1plus_balance_rate",
                    "m3plus_balance_rate", "m4plus_balance_rate"]  # fmt: skip
        tables = [ReportTable(at.select(seg_cols), f"segments at {data.as_of.isoformat()}", 200)]
        if data.segment_concentration is not None and data.segment_concentration.height:
            tables.append(ReportTable(data.segment_concentration.drop("month_end"), "concentration by dimension (HHI)"))
        out.append(
            ReportSection(
                "segments", "分群逾期", "Delinquency by segment",
                figures=tuple(segment_figure(data.rates, d, as_of=data.as_of) for d in dims), tables=tuple(tables),
            )
        )  # fmt: skip
    if data.vintages is not None and data.vintages.height:
        out.append(
            ReportSection(
                "vintages", "账龄分析", "Vintage curves",
                figures=(
                    vintage_figure(data.vintages, "m1plus_rate", "M1+ 余额 / 放款额 · M1+ balance over originated"),
                    vintage_figure(data.vintages, "ever_m3plus_rate", "曾 M3+ 笔数占比 · Ever M3+ (share of loans)"),
                    vintage_figure(data.vintages, "cum_charge_off_rate", "累计核销率 · Cumulative charge-off"),
                ),
                notes=("Coincident rates are over the vintage's originated principal; the ever rate counts each loan "
                       "from the first month end it was that late.",),
            )
        )  # fmt: skip
    figures: list[go.Figure] = []
    tables = []
    if data.matrix is not None:
        span = (
            f"{data.matrix_months[0].isoformat()} – {data.matrix_months[-1].isoformat()}"
            if data.matrix_months
            else "all months"
        )
        figures.append(
            transition_heatmap(data.matrix, title=f"迁徙矩阵(余额) · Transition matrix by balance, from {span}")
        )
        tables.append(ReportTable(data.matrix.frame().filter(pl.col("count") > 0), "transition counts (pooled)", 60))
    if data.rolls is not None and data.rolls.height:
        figures.append(roll_rate_figure(data.rolls))
    if data.flows is not None and data.flows.height:
        figures.append(flow_figure(data.flows))
    if figures:
        out.append(ReportSection("roll-rates", "迁徙率", "Roll rates", figures=tuple(figures), tables=tuple(tables)))
    if data.concentration is not None and data.concentration.height:
        conc_tables = []
        if data.top_customers is not None and data.top_customers.height:
            conc_tables.append(ReportTable(data.top_customers, f"largest customers at {data.as_of.isoformat()}", 20))
        out.append(
            ReportSection(
                "concentration", "集中度", "Concentration", figures=(concentration_figure(data.concentration),),
                tables=tuple(conc_tables),
            )
        )  # fmt: skip
    if data.profiles is not None and data.profiles.height:
        prof_tables = [ReportTable(data.profiles, "segments (flagged ✔: lift ≥ 1.5 with enough customers)", 200)]
        if data.clusters is not None and data.clusters.height:
            prof_tables.append(ReportTable(data.clusters, "behaviour clusters: mean features of the fitting sample"))
        out.append(
            ReportSection(
                "profiles", "用户画像", "Customer profiles", tables=tuple(prof_tables),
                notes=("Lift is a segment's M1+ balance rate over the book's; the internal risk screening "
                       "(内部审计与风险排查) starts from the flagged segments.",),
            )
        )  # fmt: skip
    return out


# --- rendering ---------------------------------------------------------------------------------------------------

_TEMPLATES = {
    "table": """<table><caption>{{ caption }}</caption><thead><tr>{% for h in headers %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in rows %}<tr{% if flagged and flagged[loop.index0] %} class="flag"{% endif %}>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}</tbody></table>
{% if more %}<p class="more">… {{ more }} more rows in the Parquet output</p>{% endif %}""",
    "page": """<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body{font-family:-apple-system,"Segoe UI","PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f3b5a;color:#fff;padding:18px 32px}header h1{margin:0;font-size:24px}header p{margin:4px 0 0;opacity:.85}
nav{padding:8px 32px;background:#eef2f7;font-size:14px}nav a{margin-right:14px;color:#1f3b5a;text-decoration:none}
main{padding:8px 32px 48px;max-width:1280px}section{background:#fff;border:1px solid #e3e6ea;border-radius:6px;margin:18px 0;padding:12px 20px}
h2{font-size:20px;border-bottom:1px solid #e3e6ea;padding-bottom:6px}h2 .en{color:#667;font-weight:normal;font-size:16px;margin-left:8px}
table{border-collapse:collapse;font-size:13px;margin:10px 0;width:100%}caption{text-align:left;font-weight:bold;padding:4px 0}
th,td{border-bottom:1px solid #eee;padding:4px 8px;text-align:right;white-space:nowrap}th:first-child,td:first-child{text-align:left}
tr.flag td{background:#fff1f0}.placeholder{color:#888;font-style:italic}.more{color:#888;font-size:12px}
.figure{margin:8px 0}footer{color:#888;font-size:12px;padding:0 32px 24px}
</style></head><body>
<header><h1>{{ title }}</h1><p>截至 As of {{ as_of }}{% if generated_at %} · 生成于 generated {{ generated_at }}{% endif %}</p></header>
<nav>{% for s in sections %}<a href="#{{ s.key }}">{{ s.title_zh }}</a>{% endfor %}</nav>
<main>{% for s in sections %}<section id="{{ s.key }}"><h2>{{ s.title_zh }}<span class="en">{{ s.title_en }}</span></h2>
{% for n in s.notes %}<p{% if s.placeholder %} class="placeholder"{% endif %}>{{ n }}</p>{% endfor %}
{% for f in s.figures %}<div class="figure">{{ f | safe }}</div>{% endfor %}
{% for t in s.tables %}{{ t | safe }}{% endfor %}</section>{% endfor %}</main>
<footer>runoff · self-contained report: charts drawn with plotly.js embedded in this file, no network needed.</footer>
</body></html>""",
}


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.DictLoader(_TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined)


def arrange_sections(book: Sequence[ReportSection], provided: Sequence[ReportSection]) -> list[ReportSection]:
    """The book's sections, then every slot (the provided section, or a placeholder), then other provided sections."""
    by_key: dict[str, list[ReportSection]] = {}
    for s in provided:
        by_key.setdefault(s.key, []).append(s)
    out = list(book)
    for key, (zh, en, todo) in SLOTS.items():
        out += by_key.pop(key, []) or [ReportSection(key, zh, en, notes=(f"尚无结果 · Not available yet: {todo}.",))]
    for extra in by_key.values():
        out += extra
    return out


def render_report(
    sections: Sequence[ReportSection], *, title: str, as_of: date, generated_at: datetime | None = None
) -> str:
    """The page: each section in order, plotly.js inlined with the first chart only."""
    rendered = []
    first = True
    n = 0
    for s in sections:
        figs = []
        for fig in s.figures:
            n += 1
            figs.append(
                fig.to_html(
                    full_html=False, include_plotlyjs=first, div_id=f"fig-{n}",
                    config={"displaylogo": False, "responsive": True},
                )
            )  # fmt: skip
            first = False
        rendered.append(
            {
                "key": s.key,
                "title_zh": s.title_zh,
                "title_en": s.title_en,
                "notes": list(s.notes),
                "figures": figs,
                "tables": [table_html(t) for t in s.tables],
                "placeholder": not s.figures and not s.tables and s.key in SLOTS,
            }
        )
    return (
        _environment()
        .get_template("page")
        .render(
            title=title,
            as_of=as_of.isoformat(),
            generated_at=generated_at.isoformat(timespec="seconds") if generated_at else None,
            sections=rendered,
        )
    )


def assessment_report(
    data: AssessmentData,
    *,
    sections: Sequence[ReportSection] = (),
    title: str = "资产评估报告 · Book assessment",
    generated_at: datetime | None = None,
) -> str:
    """The whole report: the book's sections from ``data`` and the ``sections`` other capabilities provide."""
    return render_report(
        arrange_sections(book_sections(data), sections), title=title, as_of=data.as_of, generated_at=generated_at
    )
