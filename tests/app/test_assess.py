"""The assessment use cases on a generated workspace: outputs and report, in-process == Dask, the generator's
true chain recovered through the executor, early warning with alerts, and clear errors on bad books."""

from __future__ import annotations

import re
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sqlalchemy import select

from runoff.app import alerts as alerts_module
from runoff.app import assess
from runoff.app.alerts import AlertStore
from runoff.app.book import generate_book
from runoff.errors import Conflict, InvalidInput, NotFound, RunoffError
from runoff.portfolio.generator import BookConfig
from runoff.reports.assessment import ReportSection
from runoff.risk.alerts import change_alert_status, empty_alerts, record_alerts
from runoff.risk.delinquency import delinquency_partition, merge_delinquency, overdue_rates, prepare_book
from runoff.risk.warning import Alert, ThresholdRule, WarningRules
from runoff.store.ledger.models import audit_log
from runoff.store.workspace import Workspace

BOOK = BookConfig(customers=6000, months=14, seed=21, blocks_per_partition=1)  # two partitions
NOW = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    ws = Workspace.init(tmp_path_factory.mktemp("assess") / "book")
    generate_book(ws, BOOK)
    assert len(ws.partitions("performance")) == 2
    return ws


@pytest.fixture(scope="module")
def assessed(workspace):
    return assess.assess_book(workspace, clusters=4, seed=1, now=NOW)


def test_assess_writes_the_report_and_every_table(workspace, assessed):
    assert assessed.report == workspace.root / "reports" / "assessment.html"
    page = assessed.report.read_text(encoding="utf-8")
    assert page.count("* plotly.js v") == 1 and "资产评估报告" in page
    for name in ("delinquency", "vintages", "transitions", "roll_rates", "flow_rates", "concentration", "profiles",
                 "clusters", "indicators", "watchlist", "first_payment_default"):  # fmt: skip
        assert Path(assessed.outputs[name]).is_file(), name
        assert assess.read_output(workspace, name).height > 0, name
    assert assessed.as_of == BOOK.month_ends()[-1]


def test_the_headline_is_the_book_computed_directly_from_its_tables(workspace, assessed):
    parts = [
        delinquency_partition(prepare_book(workspace.read_partition("performance", p), as_of=assessed.as_of))
        for p in workspace.partitions("performance")
    ]
    total = overdue_rates(merge_delinquency(parts)).filter(
        (pl.col("dimension") == "total") & (pl.col("month_end") == assessed.as_of)
    )
    row = total.row(0, named=True)
    for key in ("open_loans", "open_balance_fen", "m1plus_balance_rate", "m4plus_balance_rate"):
        assert assessed.headline[key] == row[key], key


def test_the_result_as_json_names_the_report_and_the_alerts(assessed):
    doc = assessed.as_dict()
    assert doc["report"].endswith("reports/assessment.html")
    assert set(doc["alerts"]) == {"raised", "updated", "open"}
    assert doc["watchlist_accounts"] > 0
    assert all(s["lift"] >= 1.5 for s in doc["flagged_segments"])


def test_an_earlier_as_of_date_stands_on_that_month_end(workspace):
    analytics = assess.book_analytics(workspace, as_of=date(2024, 6, 20), dimensions=(), metrics=("delinquency",))
    assert analytics.as_of == date(2024, 5, 31)
    assert analytics.overdue_rates().get_column("month_end").max() == date(2024, 5, 31)


def test_sections_given_by_another_capability_land_in_the_report(workspace):
    section = ReportSection("stress", "压力测试", "Stress tests", notes=("base EL 1.2 %, stressed 2.0 %",))
    result = assess.assess_book(workspace, sections=[section], now=NOW)
    page = result.report.read_text(encoding="utf-8")
    stress = page[page.index('<section id="stress">') :]
    assert "stressed 2.0 %" in stress[: stress.index("</section>")]


# --- executors ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_sums_as_in_process(workspace):
    distributed = pytest.importorskip("dask.distributed")
    here = assess.book_analytics(workspace, dimensions=("grade", "term"), metrics=("delinquency", "transitions"))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        there = assess.book_analytics(
            workspace,
            dimensions=("grade", "term"),
            metrics=("delinquency", "transitions"),
            scheduler=cluster.scheduler_address,
        )
    assert here.delinquency_sums is not None and there.delinquency_sums is not None
    assert here.delinquency_sums.equals(there.delinquency_sums)
    assert here.transition_counts is not None and here.transition_counts.equals(there.transition_counts)


# --- the generator's true chain, from the truth saved in the workspace --------------------------------------------


def test_entry_to_delinquency_by_grade_matches_the_saved_true_matrices(workspace):
    """P(current → M1 | not settled early) by grade, pooled over months, within 4 multinomial standard errors
    of the count-weighted true probability saved in data/truth/transitions.parquet."""
    truth = pl.read_parquet(workspace.data_dir / "truth" / "transitions.parquet").filter(
        (pl.col("from_state") == "current") & (pl.col("to_state") == "M1")
    )
    counts = assess.book_analytics(workspace, dimensions=("grade",), metrics=("transitions",)).transition_counts
    assert counts is not None
    rows = counts.filter((pl.col("dimension") == "grade") & (pl.col("from_state") == "current"))
    z_scores = {}
    for grade in ("A", "B", "C", "D", "E"):
        g = rows.filter((pl.col("segment") == grade) & ~pl.col("to_state").is_in(["prepaid", "unobserved"]))
        per_month = g.group_by("month_end").agg(
            pl.col("loans").sum().alias("n"), pl.col("loans").filter(pl.col("to_state") == "M1").sum().alias("k")
        )
        # the chain's probability for a transition out of month t is the one of month t + 1
        p = truth.filter(pl.col("grade") == grade).select(
            pl.col("month_end").dt.offset_by("-1mo").dt.month_end().alias("month_end"), "probability"
        )
        joined = per_month.join(p, on="month_end", how="inner")
        n, k, q = (joined.get_column(c).to_numpy().astype(float) for c in ("n", "k", "probability"))
        expected = (n * q).sum() / n.sum()
        se = np.sqrt((n * q * (1 - q)).sum()) / n.sum()
        z_scores[grade] = (k.sum() / n.sum() - expected) / se
    assert max(abs(z) for z in z_scores.values()) < 4, z_scores


# --- early warning -------------------------------------------------------------------------------------------------


def test_warn_records_alerts_once_and_refreshes_them_on_the_next_run(workspace):
    rules = WarningRules(rules=(ThresholdRule(id="any-arrears", indicator="m1plus_balance_rate", threshold=0.0),))
    first = assess.warn(workspace, as_of=date(2024, 10, 31), rules=rules, now=NOW)
    assert first.raised == ["any-arrears@2024-10"]
    again = assess.warn(workspace, as_of=date(2024, 11, 30), rules=rules, now=NOW)
    assert (again.raised, again.updated) == ([], ["any-arrears@2024-10"])
    store = AlertStore(workspace)
    row = store.with_status("all").filter(pl.col("alert_id") == "any-arrears@2024-10").row(0, named=True)
    assert (row["first_seen_on"], row["last_seen_on"], row["raised_by"]) == (
        date(2024, 10, 31),
        date(2024, 11, 30),
        "runoff warn",
    )
    store.change("any-arrears@2024-10", "acknowledged", by="li.wei", at=NOW)
    assert store.with_status("acknowledged").get_column("alert_id").to_list() == ["any-arrears@2024-10"]
    store.change("any-arrears@2024-10", "resolved", by="li.wei", at=NOW, note="seasonal")
    assert "any-arrears@2024-10" not in store.open().get_column("alert_id").to_list()


def test_warn_builds_a_watchlist_by_grade(workspace):
    result = assess.warn(workspace, as_of=BOOK.month_ends()[-1], now=NOW)
    top = result.watchlist["top"]
    assert top.height == 100 and top.get_column("rank").to_list() == list(range(1, 101))
    assert set(top.get_column("segment")) <= {"A", "B", "C", "D", "E"}
    assert result.roll_forward is not None and result.roll_forward.dimension == "grade"
    expected = top.get_column("expected_roll_fen").to_list()
    assert expected == sorted(expected, reverse=True)


def test_a_rule_file_that_does_not_exist_is_named(tmp_path):
    with pytest.raises(NotFound, match=r"nope\.yaml does not exist"):
        assess.read_rules(tmp_path / "nope.yaml")


# --- alerts in the ledger ------------------------------------------------------------------------------------------

FEB, MAR = date(2025, 2, 28), date(2025, 3, 31)
ALERT_ID = "m1plus-high@2025-02"


def fired(as_of: date, value: float = 0.09) -> Alert:
    return Alert(rule_id="m1plus-high", kind="threshold", indicator="m1plus_balance_rate", segment="all",
                 severity="high", as_of=as_of, observed_on=as_of, value=value, threshold=0.08, direction="above",
                 message=f"M1+ {value:.1%} above 8 %")  # fmt: skip


@pytest.fixture
def alerts(ledger, tmp_path) -> AlertStore:
    """Alerts in the test ledger (SQLite or PostgreSQL) of an empty workspace."""
    return AlertStore(Workspace.init(tmp_path / "alerts"), context=ledger)


def audit_trail(ledger, alert_id: str = ALERT_ID) -> list[tuple[str, str, datetime]]:
    """(action, actor, at in UTC) of an alert's audit rows, in order."""
    with ledger.uow(write=False) as uow:
        rows = uow.connection.execute(
            select(audit_log.c.action, audit_log.c.actor, audit_log.c.at)
            .where(audit_log.c.object_type == "alert", audit_log.c.object_id == alert_id)
            .order_by(audit_log.c.id)
        ).all()
    return [(a, who, at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)) for a, who, at in rows]


def test_an_alert_goes_open_acknowledged_resolved_with_who_and_when_in_the_ledger(ledger, alerts):
    _, raised, _ = alerts.record([fired(FEB)], at=NOW, actor="runoff warn")
    assert raised == [ALERT_ID]
    assert alerts.with_status("open").get_column("status").to_list() == ["open"]
    acked_at, resolved_at = NOW + timedelta(hours=1), NOW + timedelta(hours=5)
    ack = alerts.change(ALERT_ID, "acknowledged", by="li.wei", at=acked_at, note="collections are on it")
    assert alerts.with_status("acknowledged").get_column("alert_id").to_list() == [ALERT_ID]
    done = alerts.change(ALERT_ID, "resolved", by="wang.fang", at=resolved_at, note="rate back under 8 %")
    row = alerts.all().row(0, named=True)
    assert done == row
    assert (ack["status"], ack["note"]) == ("acknowledged", "collections are on it")
    assert (row["status"], row["raised_by"], row["raised_at"]) == ("resolved", "runoff warn", NOW)
    assert (row["acknowledged_by"], row["acknowledged_at"]) == ("li.wei", acked_at)
    assert (row["resolved_by"], row["resolved_at"], row["note"]) == ("wang.fang", resolved_at, "rate back under 8 %")
    assert alerts.open().height == 0
    assert audit_trail(ledger) == [
        ("alert.raised", "runoff warn", NOW),
        ("alert.acknowledged", "li.wei", acked_at),
        ("alert.resolved", "wang.fang", resolved_at),
    ]


@pytest.mark.parametrize(
    ("first", "then", "message"),
    [
        ("resolved", "acknowledged", "is resolved; it can move to nothing (it is final), not acknowledged"),
        ("resolved", "resolved", "is resolved; it can move to nothing (it is final), not resolved"),
        ("acknowledged", "acknowledged", "is acknowledged; it can move to resolved, not acknowledged"),
        ("acknowledged", "open", "is acknowledged; it can move to resolved, not open"),
    ],
    ids=["resolved-to-acknowledged", "resolved-twice", "acknowledged-twice", "acknowledged-back-to-open"],
)
def test_a_move_the_lifecycle_does_not_allow_is_refused_and_changes_nothing(ledger, alerts, first, then, message):
    alerts.record([fired(FEB)], at=NOW, actor="runoff warn")
    alerts.change(ALERT_ID, first, by="li.wei", at=NOW)
    before, trail = alerts.all(), audit_trail(ledger)
    with pytest.raises(Conflict, match=re.escape(f"alert {ALERT_ID} {message}")):
        alerts.change(ALERT_ID, then, by="wang.fang", at=NOW + timedelta(days=1))
    assert alerts.all().equals(before)
    assert audit_trail(ledger) == trail


def test_unknown_alerts_and_anonymous_actors_are_refused(alerts):
    alerts.record([fired(FEB)], at=NOW, actor="runoff warn")
    with pytest.raises(NotFound, match="'nope' is not an alert"):
        alerts.change("nope", "acknowledged", by="li.wei", at=NOW)
    with pytest.raises(InvalidInput, match="`by`: expected the name of who acts"):
        alerts.change(ALERT_ID, "acknowledged", by=" ", at=NOW)
    assert alerts.all().get_column("status").to_list() == ["open"]


def test_a_rule_that_keeps_firing_refreshes_its_alert_and_once_resolved_raises_a_new_one(ledger, alerts):
    alerts.record([fired(FEB)], at=NOW, actor="runoff warn")
    later = NOW + timedelta(days=31)
    _, raised, updated = alerts.record([fired(MAR, 0.1)], at=later, actor="runoff warn")
    assert (raised, updated) == ([], [ALERT_ID])
    row = alerts.all().row(0, named=True)
    assert (row["first_seen_on"], row["last_seen_on"], row["value"]) == (FEB, MAR, 0.1)
    alerts.record([fired(MAR, 0.1)], at=later, actor="runoff warn")  # the same run again: nothing new to audit
    assert [a for a, _, _ in audit_trail(ledger)] == ["alert.raised", "alert.refreshed"]
    alerts.change(ALERT_ID, "resolved", by="li.wei", at=later)
    _, raised, _ = alerts.record([fired(FEB)], at=later, actor="runoff warn")
    assert raised == [f"{ALERT_ID}#2"]
    assert alerts.open().get_column("alert_id").to_list() == [f"{ALERT_ID}#2"]


def test_concurrent_runs_raise_the_same_alert_once(alerts):
    barrier = threading.Barrier(4)
    raised: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            raised.append(alerts.record([fired(FEB)], at=NOW, actor="runoff warn")[1])
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(raised) == [[], [], [], [ALERT_ID]]
    assert alerts.all().height == 1


def test_alerts_the_workspace_kept_in_parquet_move_into_the_ledger_once(ledger, tmp_path):
    ws = Workspace.init(tmp_path / "before-the-ledger")
    table, _, _ = record_alerts(empty_alerts(), [fired(FEB)], at=NOW, actor="runoff warn")
    table = change_alert_status(table, ALERT_ID, "acknowledged", by="li.wei", at=NOW + timedelta(hours=1))
    ws.write_frame(alerts_module.LEGACY_ALERTS_FILE, table)
    store = AlertStore(ws, context=ledger)
    assert store.all().equals(table)
    assert not (ws.data_dir / alerts_module.LEGACY_ALERTS_FILE).exists()
    assert (ws.data_dir / f"{alerts_module.LEGACY_ALERTS_FILE}.imported").is_file()
    assert store.all().equals(table)
    assert [a for a, _, _ in audit_trail(ledger)] == ["alert.imported"]


def test_warn_records_its_alerts_in_the_ledger_it_is_given(workspace, ledger):
    rules = WarningRules(rules=(ThresholdRule(id="any-arrears", indicator="m1plus_balance_rate", threshold=0.0),))
    store = AlertStore(workspace, context=ledger)
    result = assess.warn(workspace, as_of=date(2024, 10, 31), rules=rules, now=NOW, alerts=store)
    assert result.raised == ["any-arrears@2024-10"]
    assert result.open_alerts.get_column("alert_id").to_list() == ["any-arrears@2024-10"]
    assert [a for a, _, _ in audit_trail(ledger, "any-arrears@2024-10")] == ["alert.raised"]


# --- bad books -------------------------------------------------------------------------------------------------------


def test_a_workspace_without_a_book_says_what_to_run(tmp_path):
    with pytest.raises(NotFound, match="run `runoff generate` or `runoff import` first"):
        assess.assess_book(Workspace.init(tmp_path / "empty"), now=NOW)


def test_an_empty_performance_table_is_a_clear_error(tmp_path, workspace):
    ws = Workspace.init(tmp_path / "hollow")
    ws.write_partition("performance", 0, workspace.read_partition("performance", 0).clear())
    with pytest.raises(RunoffError, match=r"performance.*no month-end rows"):
        assess.assess_book(ws, now=NOW)


def test_a_performance_table_missing_columns_names_them(tmp_path, workspace):
    ws = Workspace.init(tmp_path / "narrow")
    narrow = workspace.read_partition("performance", 0).drop("dpd", "status")
    ws.write_frame("performance/part-00000.parquet", narrow)
    with pytest.raises(RunoffError, match=r"performance.*\['status', 'dpd'\]"):
        assess.book_analytics(ws, dimensions=())


def test_section_providers_that_are_not_installed_are_skipped(workspace, monkeypatch):
    monkeypatch.setattr(assess, "SECTION_PROVIDERS", ("runoff.app.not_there:sections", *assess.SECTION_PROVIDERS))
    sections = assess.provided_sections(workspace, as_of=BOOK.month_ends()[-1])
    assert all(s.key in ("score-distribution", "roc", "ks", "calibration", "stress") for s in sections)


def test_a_scores_table_feeds_the_profiles_pd(tmp_path, workspace):
    import shutil

    copy = Workspace.open(Path(shutil.copytree(workspace.root, tmp_path / "scored")))
    as_of = assess.resolve_as_of(copy, None)
    for partition in copy.partitions("customers"):
        customers = copy.read_partition("customers", partition).select("customer_id")
        scores = customers.with_columns(
            pl.lit(as_of).alias("as_of"), pl.lit("test-1").alias("model_version"), pl.lit(0.05).alias("pd")
        )
        copy.write_frame(f"scores/part-{partition:05d}.parquet", scores)
    result = assess.assess_book(copy, clusters=3, seed=1, now=NOW)
    assert result.report.is_file()
