import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import openpyxl
import polars as pl
import pytest
from sqlalchemy import func, select

from runoff.app.context import build_context
from runoff.app.ledger_check import verify_ledger
from runoff.app.tape_import import (
    ImportOutcome,
    _import_lock,
    import_tapes,
    ledger_position_loader,
    lookup_ref,
    read_manifest,
    recover_imports,
    stage_import,
)
from runoff.config import Settings
from runoff.errors import Conflict
from runoff.portfolio.generator import BookConfig, generate_partition
from runoff.portfolio.tape import TapeInvalid, load_mapping, tape_from_book, tape_in_source_columns
from runoff.store.ledger.database import create_ledger_engine, upgrade_to_head
from runoff.store.ledger.models import loans as ledger_loans
from runoff.store.workspace import Workspace

MAPPING = load_mapping(Path(__file__).parents[2] / "examples" / "mappings" / "cn_loan_tape.yaml")
NOW = datetime(2025, 1, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def book() -> dict[str, pl.DataFrame]:
    return generate_partition(BookConfig(customers=1500, months=12, seed=11), 0)


@pytest.fixture(scope="module")
def as_of(book) -> date:
    return book["performance"].get_column("month_end").max()


@pytest.fixture(scope="module")
def cn_tape(book, as_of) -> pl.DataFrame:
    """The generated book's loan tape as a Chinese core system would export it (all text)."""
    return tape_in_source_columns(tape_from_book(book["loans"], book["performance"], as_of=as_of), MAPPING)


@pytest.fixture
def workspace(tmp_path, book) -> Workspace:
    ws = Workspace.init(tmp_path / "ws")
    ws.write_partition("customers", 0, book["customers"])
    return ws


def run(files, ws, **kw) -> ImportOutcome:
    return import_tapes([Path(f) for f in files], workspace=ws, mapping=MAPPING, imported_at=NOW, **kw)


def snapshot(ws: Workspace) -> dict[str, str]:
    """Every file of the workspace's data folder with its content hash (the lock file aside)."""
    return {
        str(p.relative_to(ws.root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(ws.data_dir.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def staging_is_empty(ws: Workspace) -> bool:
    staging = ws.data_dir / "imports" / "staging"
    return not staging.exists() or not any(staging.iterdir())


def book_loans(ws: Workspace) -> pl.DataFrame:
    return ws.scan("loans").collect().sort("loan_id") if ws.has_table("loans") else pl.DataFrame()


# --- round trip -----------------------------------------------------------------------------------------------


def test_generated_book_exported_with_chinese_headers_imports_back_to_the_same_book(
    tmp_path, workspace, book, cn_tape, as_of
):
    path = tmp_path / "借据明细.csv"
    cn_tape.write_csv(path)
    assert "借据号" in path.read_text(encoding="utf-8").splitlines()[0]

    outcome = run([path], workspace)

    assert (outcome.read, outcome.loaded, outcome.quarantined) == (book["loans"].height, book["loans"].height, 0)
    assert book_loans(workspace).equals(book["loans"].sort("loan_id"))
    positions = workspace.scan("tape_positions").collect().sort("loan_id")
    expected = tape_from_book(book["loans"], book["performance"], as_of=as_of).sort("loan_id")
    assert positions.get_column("principal_balance_fen").equals(expected.get_column("principal_balance_fen"))
    assert positions.get_column("dpd").cast(pl.Int64).equals(expected.get_column("dpd"))
    assert positions.get_column("status").equals(book["loans"].sort("loan_id").get_column("status"))
    assert positions.get_column("as_of").unique().to_list() == [as_of]


# --- one percent bad rows of every kind -----------------------------------------------------------------------


def _ymd(d: date) -> str:
    return d.strftime("%Y/%m/%d")


def _d(text: str) -> date:
    return datetime.strptime(text, "%Y/%m/%d").replace(tzinfo=UTC).date()


# kind -> (eligible(row) -> bool, corrupt(row) -> row, column, reason)
def _kinds(as_of: date):
    active = lambda r: r["贷款状态"] in ("正常", "逾期")  # noqa: E731
    old_enough = lambda r: (as_of - _d(r["放款日期"])).days > 90 and r["贷款状态"] == "正常"  # noqa: E731
    return {
        "amount-text": (lambda r: True, lambda r: {**r, "本金": r["本金"] + "x"}, "principal_fen", "type.unparseable"),
        "month-13": (lambda r: True, lambda r: {**r, "放款日期": "2024/13/01"}, "originated_on", "type.unparseable"),
        "id-too-long": (
            lambda r: True,
            lambda r: {**r, "借据号": "DK" + "0" * 70 + r["借据号"]},
            "loan_id",
            "type.unparseable",
        ),
        "unknown-method": (lambda r: True, lambda r: {**r, "还款方式": "气球贷"}, "method", "type.unparseable"),
        "unknown-status": (lambda r: True, lambda r: {**r, "贷款状态": "可疑"}, "status", "type.unparseable"),
        "missing-customer": (lambda r: True, lambda r: {**r, "客户号": ""}, "customer_id", "required.missing"),
        "missing-term": (lambda r: True, lambda r: {**r, "期数": None}, "term_months", "required.missing"),
        "negative-principal": (
            lambda r: True,
            lambda r: {**r, "本金": "-" + r["本金"]},
            "principal_fen",
            "range.not_positive",
        ),
        "rate-above-one": (
            lambda r: r["还款方式"] != "等本等费",
            lambda r: {**r, "年利率": "150"},
            "annual_rate",
            "range.rate",
        ),
        "term-0": (lambda r: True, lambda r: {**r, "期数": "0"}, "term_months", "range.term"),
        "term-400": (lambda r: True, lambda r: {**r, "期数": "400"}, "term_months", "range.term"),
        "drawn-after-tape-date": (
            lambda r: True,
            lambda r: {**r, "放款日期": _ymd(as_of + timedelta(days=1))},
            "originated_on",
            "date.start_after_as_of",
        ),
        "maturity-before-drawing": (
            lambda r: True,
            lambda r: {**r, "到期日": _ymd(_d(r["放款日期"]) - timedelta(days=1))},
            "maturity_on",
            "date.due_before_origination",
        ),
        "balance-above-principal": (
            active,
            lambda r: {**r, "剩余本金": f"{float(r['本金']) + 0.01:.2f}"},
            "principal_balance_fen",
            "balance.above_principal",
        ),
        "dpd-while-current": (
            lambda r: r["贷款状态"] == "正常",
            lambda r: {**r, "逾期天数": "5"},
            "dpd",
            "dpd.contradicts_status",
        ),
        "dpd-older-than-loan": (
            active,
            lambda r: {**r, "贷款状态": "逾期", "逾期天数": str((as_of - _d(r["放款日期"])).days + 10)},
            "dpd",
            "dpd.exceeds_loan_age",
        ),
        "dpd-vs-oldest-unpaid": (
            old_enough,
            lambda r: {**r, "贷款状态": "逾期", "逾期天数": "10", "最早未还款日": _ymd(as_of - timedelta(days=40))},
            "dpd",
            "dpd.contradicts_due_date",
        ),
        "unknown-customer": (
            lambda r: True,
            lambda r: {**r, "客户号": "99999999"},
            "customer_id",
            "reference.unknown_customer",
        ),
    }


def test_one_percent_bad_rows_of_every_kind_are_quarantined_with_their_reason(tmp_path, workspace, cn_tape, as_of):
    rng = np.random.default_rng(20240630)
    rows = cn_tape.rows(named=True)
    kinds = _kinds(as_of)
    n_bad = len(rows) // 100
    per_kind = -(-n_bad // (len(kinds) + 2))  # ceil: at least 1 % in all
    taken: set[int] = set()
    expected: dict[int, tuple[str, str]] = {}  # 1-based data row -> (column, reason)
    for _name, (eligible, corrupt, column, reason) in kinds.items():
        candidates = [i for i in rng.permutation(len(rows) - 1) + 1 if i not in taken and eligible(rows[i])]
        for i in candidates[:per_kind]:
            rows[i] = corrupt(rows[i])
            taken.add(i)
            expected[i + 1] = (column, reason)
    # Duplicates within the file: later copies of loans that stay good earlier in the file.
    good = sorted(set(range(len(rows))) - taken)
    for first, later in zip(good[:per_kind], good[-per_kind:], strict=True):
        rows[later] = {**rows[later], "借据号": rows[first]["借据号"]}
        taken.add(later)
        expected[later + 1] = ("loan_id", "duplicate.in_file")
    # Loans already in the book: an earlier import carries a few of the tape's loans.
    earlier = [i for i in good[per_kind : 2 * per_kind]]
    pl.DataFrame([rows[i] for i in earlier], schema=cn_tape.schema).write_csv(tmp_path / "earlier.csv")
    assert run([tmp_path / "earlier.csv"], workspace).loaded == len(earlier)
    for i in earlier:
        expected[i + 1] = ("loan_id", "duplicate.already_loaded")
    assert len(expected) >= len(rows) // 100

    path = tmp_path / "tape.csv"
    pl.DataFrame(rows, schema=cn_tape.schema).write_csv(path)
    outcome = run([path], workspace)

    assert outcome.read == len(rows) == outcome.loaded + outcome.quarantined
    assert outcome.quarantined == len(expected)
    q = pl.read_parquet(workspace.root / outcome.quarantine_files[0])
    got = {r["row"]: (r["column"], r["reason"]) for r in q.iter_rows(named=True)}
    assert got == expected
    assert set(q.get_column("file").unique()) == {str(path)}
    raw = json.loads(q.sort("row").get_column("raw")[0])
    assert raw == {k: v for k, v in rows[q.sort("row").get_column("row")[0] - 1].items()} | {
        k: None for k, v in raw.items() if v is None
    }
    loaded_ids = set(book_loans(workspace).get_column("loan_id").to_list())
    good_ids = {int(rows[i]["借据号"]) for i in range(len(rows)) if i + 1 not in expected}
    assert loaded_ids == good_ids | {int(rows[i]["借据号"]) for i in earlier}


# --- idempotent and resumable ---------------------------------------------------------------------------------


def test_importing_the_same_file_twice_does_not_double_the_book(tmp_path, workspace, cn_tape):
    path = tmp_path / "t.csv"
    cn_tape.write_csv(path)
    first = run([path], workspace)
    before = snapshot(workspace)
    copy = tmp_path / "renamed copy.csv"
    copy.write_bytes(path.read_bytes())

    again = run([path, copy], workspace)

    assert again.import_id is None and not again.written
    assert [f.already_imported for f in again.files] == [first.import_id, first.import_id]
    assert book_loans(workspace).height == cn_tape.height
    assert snapshot(workspace) == before
    assert len(read_manifest(workspace)["imports"]) == 1


def test_a_file_that_fails_halfway_leaves_the_workspace_unchanged(tmp_path, workspace, cn_tape):
    good, broken = tmp_path / "a.csv", tmp_path / "b.csv"
    cn_tape.head(100).write_csv(good)
    lines = cn_tape.slice(100, 200).write_csv().splitlines()
    lines[100] += ",an extra field"
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = snapshot(workspace)

    with pytest.raises(TapeInvalid, match=r"b\.csv"):
        run([good, broken], workspace)

    assert snapshot(workspace) == before
    assert not book_loans(workspace).height
    assert staging_is_empty(workspace)


def test_a_commit_that_fails_midway_moves_everything_back(tmp_path, workspace, cn_tape):
    rows = cn_tape.head(50).with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("x")).otherwise(pl.col("本金")).alias("本金")
    )
    path = tmp_path / "t.csv"
    rows.write_csv(path)
    blocker = workspace.data_dir / "quarantine"
    blocker.write_text("a file where the quarantine folder should be", encoding="utf-8")
    before = snapshot(workspace)

    with pytest.raises(OSError):
        run([path], workspace)

    assert snapshot(workspace) == before  # the loans partition, moved first, was moved back
    blocker.unlink()
    outcome = run([path], workspace)
    assert (outcome.loaded, outcome.quarantined) == (49, 1)
    assert book_loans(workspace).height == 49


def test_a_crash_after_staging_is_rolled_forward_by_the_next_import(tmp_path, workspace, cn_tape):
    path = tmp_path / "t.csv"
    cn_tape.write_csv(path)
    staged = stage_import([path], workspace=workspace, mapping=MAPPING, as_of=None, strict=False, imported_at=NOW)
    assert not isinstance(staged, ImportOutcome)  # the process "dies" here: plan written, nothing committed
    assert not workspace.has_table("loans")

    assert recover_imports(workspace) == [(staged[0].import_id, "rolled forward")]
    assert book_loans(workspace).height == cn_tape.height
    assert run([path], workspace).files[0].already_imported == staged[0].import_id


def test_a_crash_before_the_plan_is_rolled_back(tmp_path, workspace, cn_tape):
    path = tmp_path / "t.csv"
    cn_tape.write_csv(path)
    plan, _ = stage_import([path], workspace=workspace, mapping=MAPPING, as_of=None, strict=False, imported_at=NOW)
    (plan.stage / "plan.json").unlink()  # died while still writing the staged partitions

    outcome = run([path], workspace)

    assert outcome.loaded == cn_tape.height
    assert len(read_manifest(workspace)["imports"]) == 1
    assert staging_is_empty(workspace)


def test_a_second_import_at_the_same_time_is_refused(tmp_path, workspace, cn_tape):
    path = tmp_path / "t.csv"
    cn_tape.head(10).write_csv(path)
    with _import_lock(workspace), pytest.raises(Conflict, match="another import"):
        run([path], workspace)


# --- formats --------------------------------------------------------------------------------------------------


def test_excel_tape_with_typed_cells_imports_with_sheet_row_numbers(tmp_path, workspace, book, as_of):
    tape = tape_from_book(book["loans"], book["performance"], as_of=as_of).head(30)
    text = tape_in_source_columns(tape, MAPPING)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "借据明细"
    ws.append(text.columns)
    for i, (typed, row) in enumerate(zip(tape.iter_rows(named=True), text.iter_rows(), strict=True)):
        cells = list(row)
        cells[text.columns.index("借据号")] = typed["loan_id"]  # a number cell
        cells[text.columns.index("放款日期")] = datetime.combine(typed["originated_on"], datetime.min.time())
        cells[text.columns.index("本金")] = typed["principal_fen"] / 100  # yuan as a float cell
        cells[text.columns.index("期数")] = float(typed["term_months"])
        ws.append(cells)
        if i == 9:
            ws.append([None] * len(cells))  # a blank row inside the sheet: data row 11
    for _ in range(3):
        ws.append([None] * len(text.columns))  # trailing blank rows are formatting, not rows
    path = tmp_path / "tape.xlsx"
    wb.save(path)

    outcome = import_tapes(
        [path], workspace=workspace, mapping=MAPPING.model_copy(update={"sheet": "借据明细"}), imported_at=NOW
    )

    assert (outcome.read, outcome.loaded, outcome.quarantined) == (31, 30, 1)
    q = pl.read_parquet(workspace.root / outcome.quarantine_files[0])
    assert q.select("row", "reason").rows() == [(11, "required.missing")]
    expected = book["loans"].filter(pl.col("loan_id").is_in(tape.get_column("loan_id").implode())).sort("loan_id")
    assert book_loans(workspace).equals(expected)


def test_parquet_tape_with_typed_columns_imports(tmp_path, workspace, book, as_of):
    tape = tape_from_book(book["loans"], book["performance"], as_of=as_of).head(40)
    path = tmp_path / "tape.parquet"
    tape.write_parquet(path)  # runoff's own field names and types: no mapping needed

    outcome = import_tapes(
        [path], workspace=workspace, mapping=load_mapping(_write(tmp_path, "amount_unit: fen\n")), imported_at=NOW
    )

    assert outcome.loaded == 40
    assert book_loans(workspace).equals(
        book["loans"].filter(pl.col("loan_id").is_in(tape["loan_id"].implode())).sort("loan_id")
    )


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_gb18030_csv_is_read_when_the_mapping_says_so(tmp_path, workspace, cn_tape):
    path = tmp_path / "gbk.csv"
    path.write_bytes(cn_tape.head(20).write_csv().encode("gb18030"))
    outcome = import_tapes(
        [path], workspace=workspace, mapping=MAPPING.model_copy(update={"encoding": "gb18030"}), imported_at=NOW
    )
    assert outcome.loaded == 20


# --- strict ---------------------------------------------------------------------------------------------------


def test_strict_import_with_a_bad_row_loads_nothing_but_writes_the_quarantine_report(tmp_path, workspace, cn_tape):
    rows = cn_tape.head(20).with_columns(
        pl.when(pl.int_range(pl.len()) == 4).then(pl.lit("-1")).otherwise(pl.col("期数")).alias("期数")
    )
    path = tmp_path / "t.csv"
    rows.write_csv(path)

    outcome = run([path], workspace, strict=True)
    again = run([path], workspace, strict=True)

    assert (outcome.read, outcome.loaded, outcome.quarantined, outcome.held_back) == (20, 0, 1, 19)
    assert not workspace.has_table("loans")
    assert workspace.scan("quarantine").collect().select("row", "reason").rows() == [(5, "range.term")]
    assert again.quarantine_files == outcome.quarantine_files  # replaced, not added
    assert [e["status"] for e in read_manifest(workspace)["imports"]] == ["rejected"]
    lenient = run([path], workspace)
    assert (lenient.loaded, lenient.quarantined) == (19, 1)
    assert workspace.scan("quarantine").collect().height == 1


def test_strict_import_of_a_clean_tape_loads_it(tmp_path, workspace, cn_tape):
    path = tmp_path / "t.csv"
    cn_tape.head(20).write_csv(path)
    assert run([path], workspace, strict=True).loaded == 20


# --- user mistakes --------------------------------------------------------------------------------------------


def test_a_tape_without_a_date_is_refused(tmp_path, workspace, cn_tape):
    path = tmp_path / "t.csv"
    cn_tape.head(5).drop("数据日期").write_csv(path)
    undated = MAPPING.model_copy(update={"columns": {k: v for k, v in MAPPING.columns.items() if k != "as_of"}})
    with pytest.raises(TapeInvalid, match="--as-of"):
        import_tapes([path], workspace=workspace, mapping=undated, imported_at=NOW)
    outcome = import_tapes([path], workspace=workspace, mapping=undated, as_of=date(2024, 12, 31), imported_at=NOW)
    assert outcome.loaded == 5


def test_a_mapped_column_missing_from_the_file_is_refused(tmp_path, workspace, cn_tape):
    path = tmp_path / "t.csv"
    cn_tape.head(5).drop("数据日期").write_csv(path)
    with pytest.raises(TapeInvalid, match="'数据日期' \\(for as_of\\)"):
        run([path], workspace)


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("t.json", "{}", "not a tape format"),
        ("missing.csv", None, "no such file"),
        ("empty.xlsx", b"not a zip", "cannot be read"),
    ],
    ids=["unknown-extension", "missing-file", "corrupt-excel"],
)
def test_unreadable_files_are_refused_naming_the_file(tmp_path, workspace, name, content, match):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(TapeInvalid, match=match):
        run([path], workspace)


def test_a_customer_tape_given_with_the_loans_is_the_register_they_must_match(tmp_path, cn_tape):
    workspace = Workspace.init(tmp_path / "bare")  # no customers table of its own
    loans = cn_tape.head(30)
    known = loans.get_column("客户号").unique().sort().head(3)
    customers = tmp_path / "客户.csv"
    pl.DataFrame({"客户号": known, "姓名": ["张三"] * known.len()}).write_csv(customers)
    path = tmp_path / "t.csv"
    loans.write_csv(path)

    outcome = run([path], workspace, customers=[customers])

    expected_loaded = loans.filter(pl.col("客户号").is_in(known.implode())).height
    assert (outcome.loaded, outcome.quarantined) == (expected_loaded, 30 - expected_loaded)
    assert outcome.reasons() == {"reference.unknown_customer": 30 - expected_loaded}


# --- the ledger -----------------------------------------------------------------------------------------------


def test_open_loans_go_into_the_ledger_with_the_tapes_balance_and_dpd(
    tmp_path, workspace, cn_tape, book, as_of, ledger_url
):
    """On SQLite, and on PostgreSQL (the COPY path) when RUNOFF_TEST_POSTGRES_URL is set."""
    path = tmp_path / "t.csv"
    cn_tape.write_csv(path)
    tape = tape_from_book(book["loans"], book["performance"], as_of=as_of)
    open_loans = tape.filter(pl.col("status").is_in(["current", "overdue"]))
    settings = Settings(workspace=workspace.root, database_url=ledger_url)
    engine = create_ledger_engine(settings.ledger_url())
    upgrade_to_head(engine)  # a PostgreSQL ledger is migrated explicitly (`runoff ledger migrate`)
    engine.dispose()

    with build_context(settings) as ctx:
        outcome = run([path], workspace, loader=ledger_position_loader(ctx))
        with ctx.engine.connect() as conn:
            rows = pl.DataFrame(
                conn.execute(
                    select(ledger_loans.c.id, ledger_loans.c.outstanding_principal_fen, ledger_loans.c.dpd)
                ).all(),
                schema={"id": pl.String, "outstanding": pl.Int64, "dpd": pl.Int64},
                orient="row",
            )
        report = verify_ledger(uow=ctx.uow(write=False))
        again = run([path], workspace, loader=ledger_position_loader(ctx))

    assert outcome.ledger == "loaded" and again.files[0].already_imported
    assert report.ok, report.findings_as_dicts()[:5]
    expected = open_loans.select(
        pl.col("loan_id").cast(pl.String).alias("id"),
        pl.col("principal_balance_fen").alias("outstanding"),
        pl.col("dpd"),
    ).sort("id")
    assert rows.sort("id").equals(expected)


def test_rolling_a_crashed_import_forward_does_not_load_the_ledger_twice(tmp_path, workspace, cn_tape):
    path = tmp_path / "t.csv"
    cn_tape.head(200).write_csv(path)
    with build_context(Settings(workspace=workspace.root)) as ctx:
        loader = ledger_position_loader(ctx)
        plan, _ = stage_import([path], workspace=workspace, mapping=MAPPING, as_of=None, strict=False, imported_at=NOW)
        plan.commit(loader)  # the ledger was loaded ...
        plan.write()  # ... but the process died before the staging was cleaned (the plan is still there)
        recover_imports(workspace, loader=loader)
        with ctx.engine.connect() as conn:
            held = conn.execute(select(func.count()).select_from(ledger_loans)).scalar_one()
    opened = cn_tape.head(200).filter(pl.col("贷款状态").is_in(["正常", "逾期"])).height
    assert held == opened


# --- lender references (surrogate keys) -----------------------------------------------------------------------


def alphanumeric(tape: pl.DataFrame) -> pl.DataFrame:
    """The tape with a real lender's references: 借据号 DK2024…, 客户号 C-…, 额度账户号 A-…."""
    return tape.with_columns(
        (pl.lit("DK2024") + pl.col("借据号").str.zfill(10)).alias("借据号"),
        (pl.lit("C-") + pl.col("客户号")).alias("客户号"),
        (pl.lit("A-") + pl.col("额度账户号")).alias("额度账户号"),
    )


def positions(ws: Workspace) -> pl.DataFrame:
    return ws.scan("tape_positions").collect().sort("loan_id")


def id_map_files(ws: Workspace) -> dict[str, str]:
    return {k: v for k, v in snapshot(ws).items() if "/id_map/" in k}


@pytest.fixture
def bare(tmp_path) -> Workspace:
    """A workspace with no customers table: no register, references load as they come."""
    return Workspace.init(tmp_path / "bare")


@pytest.fixture
def dk_tape(cn_tape) -> pl.DataFrame:
    return alphanumeric(cn_tape.head(60))


def test_alphanumeric_references_load_with_ids_above_the_books_in_row_order(tmp_path, bare, dk_tape):
    path = tmp_path / "借据明细.csv"
    dk_tape.write_csv(path)

    outcome = run([path], bare)

    assert (outcome.loaded, outcome.quarantined) == (60, 0)
    customers = dk_tape.get_column("客户号").unique().len()
    assert outcome.ids_assigned == {"loan": 60, "customer": customers, "account": customers}
    pos = positions(bare)
    assert pos.get_column("loan_id").to_list() == list(range(1, 61))  # an empty book: 1, 2, ... in row order
    assert pos.get_column("loan_ref").to_list() == dk_tape.get_column("借据号").to_list()
    loans = book_loans(bare).join(pos.select("loan_id", "customer_ref", "account_ref"), on="loan_id")
    assert loans.get_column("loan_id").dtype == pl.Int64
    # One reference, one id: per customer and per credit line.
    for ref, key in (("customer_ref", "customer_id"), ("account_ref", "account_id")):
        assert loans.group_by(ref).agg(pl.col(key).n_unique()).get_column(key).max() == 1
        assert loans.get_column(key).n_unique() == customers


def test_surrogate_ids_start_above_the_largest_id_in_the_book(tmp_path, workspace, book, cn_tape):
    cn_tape.head(10).write_csv(tmp_path / "int.csv")
    run([tmp_path / "int.csv"], workspace)  # whole-number references: the book's own ids
    top = book_loans(workspace).get_column("loan_id").max()
    dk = alphanumeric(cn_tape.slice(10, 5)).with_columns(
        pl.col("客户号").str.strip_prefix("C-"), pl.col("额度账户号").str.strip_prefix("A-")
    )
    dk.write_csv(tmp_path / "dk.csv")

    outcome = run([tmp_path / "dk.csv"], workspace)

    assert outcome.loaded == 5 and outcome.ids_assigned["loan"] == 5
    new = positions(workspace).filter(pl.col("loan_ref").str.starts_with("DK"))
    assert new.get_column("loan_id").to_list() == list(range(top + 1, top + 6))
    assert (
        positions(workspace)
        .filter(~pl.col("loan_ref").str.starts_with("DK"))
        .select(pl.col("loan_id").cast(pl.String) == pl.col("loan_ref"))
        .to_series()
        .all()
    )  # whole-number references equal their id as text


def test_reimporting_alphanumeric_references_maps_them_to_the_same_ids(tmp_path, bare, dk_tape):
    path = tmp_path / "t.csv"
    dk_tape.write_csv(path)
    run([path], bare)
    before_ids = positions(bare).select("loan_id", "loan_ref")
    before = snapshot(bare)

    assert run([path], bare).import_id is None  # the same bytes: skipped
    assert snapshot(bare) == before
    # The same references in another file (a new cut of the tape): every row is already in the book.
    recut = tmp_path / "recut.csv"
    dk_tape.reverse().write_csv(recut)
    again = run([recut], bare)

    assert (again.loaded, again.quarantined) == (0, 60)
    assert again.reasons() == {"duplicate.already_loaded": 60}
    assert again.ids_assigned == {"loan": 0, "customer": 0, "account": 0}
    q = pl.read_parquet(bare.root / again.quarantine_files[0])
    assert set(q.get_column("loan_ref")) == set(dk_tape.get_column("借据号"))
    assert "'DK2024" in q.get_column("message")[0] and "already in the book" in q.get_column("message")[0]
    assert positions(bare).select("loan_id", "loan_ref").equals(before_ids)


def test_two_files_with_overlapping_references_map_them_consistently_in_one_run_or_two(tmp_path, dk_tape):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    dk_tape.head(40).write_csv(first)
    # The second file repeats loans 30–39 and brings 40–59, some of them from customers of the first file.
    dk_tape.slice(30, 30).write_csv(second)
    together = Workspace.init(tmp_path / "together")
    apart = Workspace.init(tmp_path / "apart")

    both = run([first, second], together)
    run([first], apart)
    later = run([second], apart)

    assert (both.loaded, both.quarantined) == (60, 10) == (40 + later.loaded, later.quarantined)
    assert later.reasons() == {"duplicate.already_loaded": 10}
    assert book_loans(together).equals(book_loans(apart))
    assert positions(together).equals(positions(apart))
    pos = positions(together)
    assert pos.get_column("loan_ref").to_list() == dk_tape.get_column("借据号").to_list()
    shared = pos.group_by("customer_ref").agg(pl.col("loan_id").min(), pl.col("loan_id").max().alias("last"))
    assert shared.filter((pl.col("loan_id") <= 40) & (pl.col("last") > 40)).height > 0  # customers in both files
    customer_of = (
        book_loans(together).join(pos, on="loan_id").group_by("customer_ref").agg(pl.col("customer_id").n_unique())
    )
    assert customer_of.get_column("customer_id").max() == 1


def test_a_reference_twice_in_a_file_is_quarantined_naming_it(tmp_path, bare, dk_tape):
    rows = dk_tape.head(10).with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(pl.col("借据号").first()).otherwise(pl.col("借据号")).alias("借据号")
    )
    path = tmp_path / "t.csv"
    rows.write_csv(path)

    outcome = run([path], bare)

    assert (outcome.loaded, outcome.quarantined) == (9, 1)
    q = pl.read_parquet(bare.root / outcome.quarantine_files[0])
    ref = rows.get_column("借据号")[0]
    assert q.select("row", "loan_ref", "column", "reason").rows() == [(8, ref, "loan_id", "duplicate.in_file")]
    assert f"'{ref}' appears earlier in this file" in q.get_column("message")[0]
    assert outcome.ids_assigned["loan"] == 9


def test_leading_zeros_are_one_reference_as_they_were_one_id(tmp_path, bare, cn_tape):
    rows = cn_tape.head(3).with_columns(pl.col("借据号").str.zfill(12))
    rows = pl.concat([rows, cn_tape.head(1)])  # the first loan again, without its zeros
    rows.write_csv(tmp_path / "t.csv")

    outcome = run([tmp_path / "t.csv"], bare)

    assert outcome.reasons() == {"duplicate.in_file": 1}
    assert outcome.ids_assigned == {"loan": 0, "customer": 0, "account": 0}  # whole numbers need no map
    assert positions(bare).get_column("loan_ref").to_list() == sorted(
        cn_tape.head(3).get_column("借据号").to_list(), key=int
    )


def test_a_crash_mid_import_leaves_the_id_map_unchanged(tmp_path, bare, dk_tape):
    dk_tape.head(20).write_csv(tmp_path / "a.csv")
    run([tmp_path / "a.csv"], bare)
    before = id_map_files(bare)
    assert before  # loans, customers and accounts of a.csv
    path = tmp_path / "b.csv"
    dk_tape.slice(20, 20).write_csv(path)

    plan, _ = stage_import([path], workspace=bare, mapping=MAPPING, as_of=None, strict=False, imported_at=NOW)
    (plan.stage / "plan.json").unlink()  # died while staging: nothing published
    assert recover_imports(bare) == [(plan.import_id, "rolled back")]
    assert id_map_files(bare) == before
    blocker = bare.data_dir / "quarantine"  # a commit that fails after the id map was moved in
    blocker.write_text("not a folder", encoding="utf-8")
    bad = tmp_path / "c.csv"
    dk_tape.slice(20, 20).with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("x")).otherwise(pl.col("本金")).alias("本金")
    ).write_csv(bad)  # one bad row: a quarantine report to write where the blocker is
    with pytest.raises(OSError):
        run([bad], bare)
    assert id_map_files(bare) == before
    blocker.unlink()

    ids_then = run([path], bare)
    assert ids_then.loaded == 20 and len(id_map_files(bare)) == len(before) + 3  # loans, customers, accounts


def test_lookup_goes_from_a_reference_to_the_ledger_id(tmp_path, bare, dk_tape, cn_tape):
    dk_tape.head(5).write_csv(tmp_path / "t.csv")
    run([tmp_path / "t.csv"], bare)
    ref = dk_tape.get_column("借据号")[3]

    found = lookup_ref(bare, f" {ref} ")
    customer = lookup_ref(bare, dk_tape.get_column("客户号")[3], kind="customer")

    assert (found.id, found.ledger_id, found.source, found.in_book) == (4, "4", "id map", True)
    assert customer.source == "id map" and customer.in_book
    assert lookup_ref(bare, "0042").as_dict() | {"in_book": None} == {
        "kind": "loan",
        "ref": "42",
        "id": 42,
        "ledger_id": "42",
        "source": "whole number",
        "import_id": None,
        "in_book": None,
    }
    assert lookup_ref(bare, "DK-never").id is None
    with pytest.raises(TapeInvalid, match="kind"):
        lookup_ref(bare, ref, kind="merchant")


def test_the_ledger_holds_the_internal_id_of_an_alphanumeric_loan(tmp_path, bare, dk_tape, ledger_url):
    """On SQLite, and on PostgreSQL (the COPY path) when RUNOFF_TEST_POSTGRES_URL is set."""
    path = tmp_path / "t.csv"
    dk_tape.write_csv(path)
    settings = Settings(workspace=bare.root, database_url=ledger_url)
    engine = create_ledger_engine(settings.ledger_url())
    upgrade_to_head(engine)
    engine.dispose()

    with build_context(settings) as ctx:
        outcome = run([path], bare, loader=ledger_position_loader(ctx))
        with ctx.engine.connect() as conn:
            held = set(conn.execute(select(ledger_loans.c.id)).scalars().all())

    assert outcome.ledger == "loaded"
    open_refs = dk_tape.filter(pl.col("贷款状态").is_in(["正常", "逾期"])).get_column("借据号")
    expected = {lookup_ref(bare, r).ledger_id for r in open_refs}
    assert held == expected and all(h.isdigit() for h in held)
