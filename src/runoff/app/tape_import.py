"""Import loan tapes into a workspace (导入借据明细): read, check, load the good rows, quarantine the rest.

Every row read ends up in exactly one place, and the outcome says so: ``read = loaded + quarantined``
(plus ``held back`` under ``--strict``, see below), asserted before anything is written.

* **Loaded** rows go to the book's ``loans`` table as new partitions (``data/loans/part-NNNNN.parquet``,
  numbered after every partition already in the workspace, customers kept whole within an import) and
  their position on the tape's date (balance, DPD, oldest unpaid due date) to ``data/tape_positions/``
  under the same partition numbers; then the open loans go into the ledger through its bulk path
  (:func:`ledger_position_loader`, COPY on PostgreSQL), unless no ledger is given.
* **Quarantined** rows go to ``data/quarantine/part-NNNNN.parquet``: import id, file, content hash, row
  number (1-based data row as in the file), column, reason code, message, every reason, and the raw row
  as a JSON object.
* **Strict** (``strict=True``) is all or nothing: one rejected row and no loan is loaded; the quarantine
  report is still written so the lender can fix the tape, and the good rows are counted as held back.

Ids (surrogate keys, 代理键): the book keys loans, customers and accounts by Int64, a lender by its own
references (借据号 ``DK20240131000123``, 客户号 ``C-88812``). A whole-number reference is the id itself (integer
tapes load as they always did); any other gets the next id above the largest the book and the map use, in
file then row order, recorded in the id map ``data/imports/id_map/<kind>/<import id>.parquet`` (``ref``,
``id``, ``import_id``; kinds loan, customer, account). The same reference maps to the same id in every later
file and run, so checks (duplicates, the customer register) are made on references. The ledger holds the
book id (as text); the reference is kept beside it in ``data/tape_positions`` (``loan_ref``, ``customer_ref``,
``account_ref``) and named in the quarantine report (``loan_ref``). From a reference to the ledger id:
``runoff lookup DK20240131000123 [--kind loan|customer|account]`` (:func:`lookup_ref`), or in Polars
``pl.read_parquet("data/tape_positions/*.parquet").filter(pl.col("loan_ref") == "DK20240131000123")``.

Idempotent: a file is known by the SHA-256 of its bytes; a file the manifest
(``data/imports/manifest.json``) records as loaded is skipped, and a loan id already in the book is
quarantined as a duplicate, so importing the same tape twice never doubles the book. (A file whose
loans were since removed, e.g. by ``runoff generate``, counts as not imported.)

Crash-safe: everything is written under ``data/imports/staging/<import>/`` first; a ``plan.json`` written
last in staging marks the import ready; commit renames each staged file (partitions and id-map entries,
which are new files, never rewrites of old ones) into ``data/`` (atomic on
one file system), loads the ledger, and writes the manifest last. An error during commit moves the
files back, so the workspace is as it was; a hard crash leaves a staging folder that the next import
(or :func:`recover_imports`) rolls back (no plan yet) or forward (plan written).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import select

from runoff.app.context import AppContext
from runoff.errors import Conflict
from runoff.portfolio.generator import TARGET_LOANS_PER_PARTITION
from runoff.portfolio.schemas import TABLES
from runoff.portfolio.tape import (
    ID_MAP_SCHEMA,
    REF_DTYPE,
    REF_FIELDS,
    ROW,
    Identified,
    TapeCheck,
    TapeInvalid,
    TapeMapping,
    book_loans,
    canonical_ref,
    check_tape,
    convert_tape,
    identify,
    ledger_opening,
    quarantine_rows,
    read_ids,
    refs_of_ids,
    tape_positions,
    tape_rules,
    whole_number_id,
)
from runoff.store.ledger import models as ledger_models
from runoff.store.ledger.bulk import load_book
from runoff.store.workspace import Workspace

IMPORTS_DIR = "imports"  # under data/
ID_MAP_DIR = "id_map"  # under data/imports/: <kind>/<import id>.parquet
MANIFEST = "manifest.json"
PLAN = "plan.json"
LOANS_TABLE = "loans"
CUSTOMERS_TABLE = "customers"
ACCOUNTS_TABLE = "accounts"
POSITIONS_TABLE = "tape_positions"
QUARANTINE_TABLE = "quarantine"

QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "import_id": pl.String(),
    "file": pl.String(),
    "file_sha256": pl.String(),
    ROW: pl.Int64(),
    "loan_ref": REF_DTYPE,
    "column": pl.String(),
    "reason": pl.String(),
    "message": pl.String(),
    "reasons": pl.List(pl.String()),
    "raw": pl.String(),
}
"""The quarantine table: one row per rejected tape row, its 借据号 as read (``loan_ref``), the first reason and all."""

TAPE_SUFFIXES = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "excel",
    ".xlsm": "excel",
}


# --- reading tapes ---------------------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes: the identity of a tape for idempotent imports."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_tape(path: Path, mapping: TapeMapping) -> pl.DataFrame:
    """A tape's rows as given (CSV and Excel cells as text, Parquet columns as typed), one row per data row.

    Nothing is dropped or coerced here: a line with more fields than the header is an error naming the
    file, not a silently truncated row; blank lines stay (they are rows, and fail the required-field check).
    """
    kind = TAPE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise TapeInvalid(
            f"{path}: {path.suffix or 'no extension'} is not a tape format; expected "
            + ", ".join(sorted(TAPE_SUFFIXES)),
            field="file",
        )
    if not path.is_file():
        raise TapeInvalid(f"{path}: no such file", field="file")
    try:
        if kind == "csv":
            frame = _read_csv(path, mapping)
        elif kind == "parquet":
            frame = pl.read_parquet(path)
        else:
            frame = _read_excel(path, mapping)
    except TapeInvalid:
        raise
    except (pl.exceptions.PolarsError, OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TapeInvalid(f"{path}: cannot be read as {kind}: {first}", field="file") from None
    return frame.rename({c: c.strip().lstrip("\ufeff") for c in frame.columns})


def _read_csv(path: Path, mapping: TapeMapping) -> pl.DataFrame:
    separator = "\t" if path.suffix.lower() == ".tsv" and mapping.separator == "," else mapping.separator
    encoding = mapping.encoding.lower().replace("_", "-")
    source: Path | io.BytesIO = path
    if encoding not in ("utf-8", "utf8"):
        # Polars reads UTF-8 only; GBK/GB18030 tapes (common from Chinese core systems) are transcoded first.
        source = io.BytesIO(path.read_bytes().decode(mapping.encoding).encode("utf-8"))
    return pl.read_csv(source, infer_schema=False, separator=separator, raise_if_empty=False)


def _cell_text(value: Any) -> str | None:
    """An Excel cell as text: dates ISO, whole floats without ``.0`` (Excel stores every number as a float)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return text if text.strip() else None


def _read_excel(path: Path, mapping: TapeMapping) -> pl.DataFrame:
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        if mapping.sheet is not None:
            if mapping.sheet not in book.sheetnames:
                raise TapeInvalid(
                    f"{path}: no sheet {mapping.sheet!r}; its sheets are {', '.join(book.sheetnames)}", field="sheet"
                )
            sheet = book[mapping.sheet]
        else:
            sheet = book.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
        header_cells = next(rows, None)
        if header_cells is None:
            return pl.DataFrame()
        header = _unique_headers([_cell_text(h) for h in header_cells])
        width = len(header)
        columns: list[list[str | None]] = [[] for _ in header]
        last_filled = 0
        for n, cells in enumerate(rows, start=1):
            texts = [_cell_text(v) for v in cells]
            if any(t is not None for t in texts[width:]):
                raise TapeInvalid(
                    f"{path}: data row {n} has values beyond the header's last column ({header[-1]!r})", field="file"
                )
            texts = (texts + [None] * width)[:width]
            if any(t is not None for t in texts):
                last_filled = n
            for col, text in zip(columns, texts, strict=True):
                col.append(text)
    finally:
        book.close()
    # Blank rows inside the sheet are rows (their numbers must match the sheet); trailing ones are formatting.
    return pl.DataFrame(
        {h: col[:last_filled] for h, col in zip(header, columns, strict=True)}, schema=dict.fromkeys(header, pl.String)
    )


def _unique_headers(cells: Sequence[str | None]) -> list[str]:
    seen: Counter[str] = Counter()
    out = []
    for i, cell in enumerate(cells, start=1):
        name = (cell or f"column_{i}").strip()
        seen[name] += 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return out


# --- the workspace side ----------------------------------------------------------------------------------------


def _table_column(workspace: Workspace, table: str, column: str) -> pl.Series | None:
    """One column of a workspace table, or None when the table has no partition yet."""
    if not workspace.has_table(table):
        return None
    return workspace.scan(table).select(column).collect().get_column(column)


def _imports_dir(workspace: Workspace) -> Path:
    return workspace.data_dir / IMPORTS_DIR


def _next_partition(workspace: Workspace) -> int:
    """The first partition number no table of the workspace uses yet."""
    used = [p for t in (*TABLES, POSITIONS_TABLE, QUARANTINE_TABLE) for p in workspace.partitions(t)]
    return max(used, default=-1) + 1


def _write_json_atomically(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=2, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_manifest(workspace: Workspace) -> dict[str, Any]:
    """The workspace's import manifest: every committed import with its files, counts and partitions."""
    path = _imports_dir(workspace) / MANIFEST
    if not path.exists():
        return {"version": 1, "imports": []}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _live_imports(workspace: Workspace, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifest's loaded imports whose loans are in the book now."""
    out = []
    for entry in manifest["imports"]:
        if entry.get("status") != "loaded":
            continue
        loans_parts = [p for p in entry["parts"] if p.startswith(f"data/{LOANS_TABLE}/")]
        if not all((workspace.root / part).is_file() for part in loans_parts):
            continue  # its partitions were removed since (a regenerated book): the file is not in the book
        out.append(entry)
    return out


def _loaded_files(workspace: Workspace, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """sha256 → the manifest's record of that file, for files whose loans are in the book now."""
    out: dict[str, dict[str, Any]] = {}
    for entry in _live_imports(workspace, manifest):
        for f in entry["files"]:
            out[f["sha256"]] = {**f, "import_id": entry["import_id"]}
    return out


# --- the id map (surrogate keys) -------------------------------------------------------------------------------


def _id_map_path(workspace: Workspace, kind: str, import_id: str) -> Path:
    return _imports_dir(workspace) / ID_MAP_DIR / kind / f"{import_id}.parquet"


def read_id_maps(workspace: Workspace) -> dict[str, pl.DataFrame]:
    """Each kind's id map (``ref``, ``id``, ``import_id``): the entries of the imports whose loans are in the book.

    The map is append-only, one file per import and kind, published with the import's loans; entries
    of an import whose loans were since removed (a regenerated book) no longer count.
    """
    live = [e["import_id"] for e in _live_imports(workspace, read_manifest(workspace))]
    maps: dict[str, pl.DataFrame] = {}
    for kind in REF_FIELDS:
        paths = [p for i in live if (p := _id_map_path(workspace, kind, i)).is_file()]
        schema = {**ID_MAP_SCHEMA, "import_id": pl.String()}
        maps[kind] = pl.concat([pl.read_parquet(p) for p in paths]) if paths else pl.DataFrame(schema=schema)
    return maps


def _max_id(workspace: Workspace, columns: Sequence[tuple[str, str]]) -> int:
    """The largest id the book's tables use in ``columns`` ((table, column) pairs); 0 for an empty book."""
    top = 0
    for table, column in columns:
        if workspace.has_table(table):
            value = workspace.scan(table).select(pl.col(column).max()).collect().item()
            top = max(top, int(value) if value is not None else 0)
    return top


def _id_floors(workspace: Workspace) -> dict[str, int]:
    """Per kind, the largest id already in the book: surrogate ids are assigned above it."""
    return {
        "loan": _max_id(workspace, [(LOANS_TABLE, "loan_id")]),
        "customer": _max_id(
            workspace, [(CUSTOMERS_TABLE, "customer_id"), (ACCOUNTS_TABLE, "customer_id"), (LOANS_TABLE, "customer_id")]
        ),
        "account": _max_id(workspace, [(ACCOUNTS_TABLE, "account_id"), (LOANS_TABLE, "account_id")]),
    }


@dataclass(frozen=True, slots=True)
class RefLookup:
    """Where a lender's reference is in the book: its id (the ledger's id, as text there) and how it was given."""

    kind: str
    ref: str
    id: int | None  # None: the reference was never loaded and is not a whole number
    source: str  # "id map" (a surrogate id), "whole number" (the reference is the id) or "unknown"
    import_id: str | None  # the import that assigned the surrogate id
    in_book: bool  # the book's table holds that id

    @property
    def ledger_id(self) -> str | None:
        """The ledger keys rows by text: the book id written out (``runoff ledger ...`` takes it)."""
        return str(self.id) if self.id is not None else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ref": self.ref,
            "id": self.id,
            "ledger_id": self.ledger_id,
            "source": self.source,
            "import_id": self.import_id,
            "in_book": self.in_book,
        }


def lookup_ref(workspace: Workspace, ref: str, *, kind: str = "loan") -> RefLookup:
    """The book id of a lender's reference (``runoff lookup DK20240131000123``), from the workspace's id map.

    A whole-number reference that the map does not hold is its own id. The same as the Polars query
    ``pl.read_parquet("data/imports/id_map/loan/*.parquet").filter(pl.col("ref") == REF)``, restricted
    to imports whose loans are still in the book; ``data/tape_positions`` holds ``loan_ref`` beside
    each ``loan_id`` too.
    """
    if kind not in REF_FIELDS:
        raise TapeInvalid(f"`kind`: {kind!r} is not a kind of reference; expected one of {', '.join(REF_FIELDS)}")
    if not ref.strip():
        raise TapeInvalid("`ref`: empty; expected a reference such as DK20240131000123 or 1001", field="ref")
    canonical: str = pl.select(canonical_ref(pl.lit(ref.strip()))).item()
    id_map = read_id_maps(workspace)[kind].filter(pl.col("ref") == canonical)
    found: int | None = None
    import_id: str | None = None
    source = "unknown"
    if id_map.height:
        found, source, import_id = int(id_map.get_column("id")[0]), "id map", id_map.get_column("import_id")[0]
    elif (number := pl.select(whole_number_id(pl.lit(canonical))).item()) is not None:
        found, source = int(number), "whole number"
    table, column = {"loan": (LOANS_TABLE, "loan_id"), "customer": (LOANS_TABLE, "customer_id")}.get(
        kind, (LOANS_TABLE, "account_id")
    )
    in_book = (
        found is not None
        and workspace.has_table(table)
        and workspace.scan(table).filter(pl.col(column) == found).select(pl.len()).collect().item() > 0
    )
    return RefLookup(kind=kind, ref=canonical, id=found, source=source, import_id=import_id, in_book=in_book)


def _import_lock(workspace: Workspace) -> contextlib.AbstractContextManager[None]:
    """One import at a time per workspace."""
    busy = Conflict(f"another import is running in the workspace {workspace.root}; wait for it to finish")
    return workspace.exclusive(_imports_dir(workspace) / ".lock", busy)


# --- outcome ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What happened to one file: where each of its rows went."""

    file: str
    sha256: str
    read: int
    loaded: int
    quarantined: int
    held_back: int = 0
    already_imported: str | None = None  # the import that loaded this very file before
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    """The outcome of one ``runoff import``: per file and in total, ``read = loaded + quarantined + held_back``."""

    import_id: str | None
    as_of: date | None
    strict: bool
    files: tuple[FileOutcome, ...]
    written: bool  # something was committed to the workspace (loans or a quarantine report)
    ledger: str  # loaded | off (no ledger given) | skipped (nothing to load)
    quarantine_files: tuple[str, ...]
    partitions: tuple[int, ...]  # partitions of loans and tape_positions this import added
    ids_assigned: dict[str, int] = field(default_factory=dict)  # new surrogate ids per kind (loan, customer, account)

    @property
    def read(self) -> int:
        return sum(f.read for f in self.files if f.already_imported is None)

    @property
    def loaded(self) -> int:
        return sum(f.loaded for f in self.files if f.already_imported is None)

    @property
    def quarantined(self) -> int:
        return sum(f.quarantined for f in self.files if f.already_imported is None)

    @property
    def held_back(self) -> int:
        return sum(f.held_back for f in self.files if f.already_imported is None)

    @property
    def rejected(self) -> bool:
        return self.quarantined > 0

    def reasons(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for f in self.files:
            if f.already_imported is None:
                total.update(f.reasons)
        return dict(total.most_common())

    def as_dict(self) -> dict[str, Any]:
        return {
            "import_id": self.import_id,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "strict": self.strict,
            "read": self.read,
            "loaded": self.loaded,
            "quarantined": self.quarantined,
            "held_back": self.held_back,
            "written": self.written,
            "ledger": self.ledger,
            "quarantine_files": list(self.quarantine_files),
            "partitions": list(self.partitions),
            "ids_assigned": dict(self.ids_assigned),
            "reasons": self.reasons(),
            "files": [asdict(f) for f in self.files],
        }


def _balanced(outcome: FileOutcome) -> FileOutcome:
    if outcome.read != outcome.loaded + outcome.quarantined + outcome.held_back:
        raise AssertionError(
            f"{outcome.file}: read {outcome.read} != loaded {outcome.loaded} + quarantined {outcome.quarantined}"
            f" + held back {outcome.held_back}"
        )
    return outcome


# --- ledger integration point ----------------------------------------------------------------------------------

PositionLoader = Callable[[pl.DataFrame, pl.DataFrame], int]
"""Loads (loans, positions) into the ledger and returns the number of loans it added; must skip loans it
already holds, so that rolling a crashed import forward is safe."""


def ledger_position_loader(ctx: AppContext, *, actor: str = "tape-import") -> PositionLoader:
    """Loads an import's open loans into the ledger through its bulk path (COPY on PostgreSQL).

    Loans the ledger already holds are skipped (so rolling a crashed import forward is safe), and the
    customers and credit lines they refer to are added when new. One write transaction: all or nothing.
    """

    def load(loans: pl.DataFrame, positions: pl.DataFrame) -> int:
        opening = ledger_opening(loans, positions)
        if opening.loans.is_empty() or opening.as_of is None:
            return 0
        with ctx.uow() as uow:
            conn = uow.connection
            held = _ledger_ids(conn, ledger_models.loans)
            new_loans = opening.loans.filter(~pl.col("id").is_in(held.implode()))
            if new_loans.is_empty():
                return 0
            new_installments = opening.installments.join(
                new_loans.select(pl.col("id").alias("loan_id")), on="loan_id", how="semi"
            )
            customers = new_loans.select(pl.col("customer_id").alias("id")).unique()
            customers = customers.filter(~pl.col("id").is_in(_ledger_ids(conn, ledger_models.customers).implode()))
            accounts = new_loans.select(pl.col("account_id").alias("id"), "customer_id").unique("id")
            accounts = accounts.filter(~pl.col("id").is_in(_ledger_ids(conn, ledger_models.accounts).implode()))
            result = load_book(
                conn,
                loans_df=new_loans,
                installments_df=new_installments,
                products=opening.products,
                customers_df=customers,
                accounts_df=accounts,
                as_of=opening.as_of,
                actor=actor,
                now=uow.now(),
            )
            uow.commit()
        return result.loans

    return load


def _ledger_ids(conn: Any, table: Any) -> pl.Series:
    return pl.Series("id", conn.execute(select(table.c.id)).scalars().all(), dtype=pl.String)


# --- staging and commit ----------------------------------------------------------------------------------------


def _staging_root(workspace: Workspace) -> Path:
    return _imports_dir(workspace) / "staging"


@dataclass
class ImportPlan:
    """A staged import: files written under staging, the moves that publish them and the manifest entry."""

    workspace: Workspace
    import_id: str
    moves: list[tuple[str, str]]  # (staged path, target path), relative to the workspace root
    entry: dict[str, Any]
    ledger_needed: bool

    @property
    def stage(self) -> Path:
        return _staging_root(self.workspace) / self.import_id

    def write(self) -> None:
        """Mark the staged import ready to commit (the last write in staging)."""
        data = {
            "import_id": self.import_id,
            "moves": self.moves,
            "entry": self.entry,
            "ledger_needed": self.ledger_needed,
        }
        _write_json_atomically(self.stage / PLAN, data)

    @classmethod
    def read(cls, workspace: Workspace, stage: Path) -> ImportPlan:
        data = json.loads((stage / PLAN).read_text(encoding="utf-8"))
        return cls(
            workspace=workspace,
            import_id=data["import_id"],
            moves=[(a, b) for a, b in data["moves"]],
            entry=data["entry"],
            ledger_needed=data["ledger_needed"],
        )

    def commit(self, loader: PositionLoader | None) -> str:
        """Publish the staged files, load the ledger, then record the import; undo the moves on any error.

        Returns what happened to the ledger: loaded, off (no loader given) or skipped (nothing loaded).
        """
        root = self.workspace.root
        done: list[tuple[Path, Path]] = []
        try:
            for staged_rel, target_rel in self.moves:
                staged, target = root / staged_rel, root / target_rel
                if not staged.exists() and target.exists():
                    continue  # moved before a crash: rolling forward
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, target)
                done.append((staged, target))
            ledger = self._load_ledger(loader)
            manifest = read_manifest(self.workspace)
            others = [e for e in manifest["imports"] if e["import_id"] != self.import_id]
            manifest["imports"] = [*others, {**self.entry, "ledger": ledger}]
            _write_json_atomically(_imports_dir(self.workspace) / MANIFEST, manifest)
        except BaseException:
            for staged, target in reversed(done):
                with contextlib.suppress(OSError):
                    os.replace(target, staged)
            shutil.rmtree(self.stage, ignore_errors=True)
            raise
        shutil.rmtree(self.stage, ignore_errors=True)
        return ledger

    def _targets(self, table: str) -> list[Path]:
        return [self.workspace.root / t for _, t in self.moves if t.startswith(f"data/{table}/")]

    def _load_ledger(self, loader: PositionLoader | None) -> str:
        if not self.ledger_needed:
            return "skipped"
        if loader is None:
            return "off"
        loader(pl.read_parquet(self._targets(LOANS_TABLE)), pl.read_parquet(self._targets(POSITIONS_TABLE)))
        return "loaded"


def recover_imports(workspace: Workspace, *, loader: PositionLoader | None = None) -> list[tuple[str, str]]:
    """Finish or undo imports a crash interrupted: with a plan, roll forward; without, delete the staging.

    Returns (import id, "rolled forward" | "rolled back") for each.
    """
    out: list[tuple[str, str]] = []
    staging = _staging_root(workspace)
    if not staging.exists():
        return out
    for stage in sorted(p for p in staging.iterdir() if p.is_dir()):
        if (stage / PLAN).exists():
            ImportPlan.read(workspace, stage).commit(loader)
            out.append((stage.name, "rolled forward"))
        else:
            shutil.rmtree(stage, ignore_errors=True)
            out.append((stage.name, "rolled back"))
    return out


# --- the use case ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckedTape:
    """One tape read and checked, not yet written anywhere."""

    path: Path
    sha256: str
    raw: pl.DataFrame
    check: TapeCheck


def import_tapes(
    files: Sequence[Path],
    *,
    workspace: Workspace,
    mapping: TapeMapping,
    as_of: date | None = None,
    strict: bool = False,
    customers: Sequence[Path] = (),
    loader: PositionLoader | None = None,
    imported_at: datetime,
) -> ImportOutcome:
    """Import loan tapes into ``workspace`` (see the module docstring for what goes where).

    ``as_of`` is the tape's date (else the mapping's ``as_of``, else each row's mapped ``as_of`` column);
    ``customers`` are customer tapes (a ``customer_id`` column) whose ids, with the workspace's
    ``customers`` table, form the register loans must refer to; ``loader`` loads the ledger (usually
    :func:`ledger_position_loader`; None leaves the ledger alone); ``imported_at`` comes from the app's one clock.
    """
    if not files:
        raise TapeInvalid("no tape given; name one or more CSV, Parquet or Excel files", field="file")
    tape_date = as_of or mapping.as_of
    with _import_lock(workspace):
        recover_imports(workspace, loader=loader)
        plan = stage_import(
            files,
            workspace=workspace,
            mapping=mapping,
            as_of=tape_date,
            strict=strict,
            customers=customers,
            imported_at=imported_at,
        )
        if isinstance(plan, ImportOutcome):
            return plan
        staged, outcome = plan
        ledger = staged.commit(loader)
        return replace(outcome, ledger=ledger)


def stage_import(
    files: Sequence[Path],
    *,
    workspace: Workspace,
    mapping: TapeMapping,
    as_of: date | None,
    strict: bool,
    customers: Sequence[Path] = (),
    imported_at: datetime,
) -> ImportOutcome | tuple[ImportPlan, ImportOutcome]:
    """Read and check the tapes and stage what the import will write; nothing in the book changes yet.

    Returns the outcome alone when every file was imported before, else the plan to commit and the
    outcome it will have.
    """
    already = _loaded_files(workspace, read_manifest(workspace))
    id_maps = read_id_maps(workspace)
    in_book = _table_column(workspace, LOANS_TABLE, "loan_id")
    loaded_refs = refs_of_ids(in_book, id_maps["loan"]) if in_book is not None else None
    register = _customer_register(workspace, customers, mapping, id_maps["customer"])

    checked: list[CheckedTape] = []
    skipped: list[FileOutcome] = []
    seen: set[str] = set()
    for path in files:
        sha = file_sha256(path) if path.is_file() else ""
        if sha in already:
            prior = already[sha]
            skipped.append(
                FileOutcome(
                    file=str(path),
                    sha256=sha,
                    read=prior["read"],
                    loaded=prior["loaded"],
                    quarantined=prior["quarantined"],
                    held_back=prior.get("held_back", 0),
                    already_imported=prior["import_id"],
                )
            )
            continue
        if sha and sha in seen:
            raise TapeInvalid(f"{path}: the same file is named twice in this import", field="file")
        seen.add(sha)
        raw = read_tape(path, mapping)
        converted = convert_tape(raw, mapping, file=str(path))
        if as_of is None and converted.height and converted.get_column("as_of").null_count() == converted.height:
            raise TapeInvalid(
                f"{path}: the tape's date is unknown; give --as-of YYYY-MM-DD, `as_of:` in the mapping, "
                "or map a 数据日期 column to `as_of`",
                field="as_of",
            )
        refs_so_far = _concat_ids(loaded_refs, [c.check.accepted.get_column("loan_id") for c in checked])
        rules = tape_rules(mapping, as_of=as_of, loaded_loan_refs=refs_so_far, known_customer_refs=register)
        checked.append(CheckedTape(path, sha, raw, check_tape(converted, rules)))

    if not checked:
        return ImportOutcome(
            import_id=None,
            as_of=as_of,
            strict=strict,
            files=tuple(skipped),
            written=False,
            ledger="skipped",
            quarantine_files=(),
            partitions=(),
        )
    import_id = hashlib.sha256("|".join(c.sha256 for c in checked).encode()).hexdigest()[:16]
    hold = strict and any(c.check.quarantined for c in checked)
    outcomes = [
        _balanced(
            FileOutcome(
                file=str(c.path),
                sha256=c.sha256,
                read=c.check.read,
                loaded=0 if hold else c.check.loaded,
                quarantined=c.check.quarantined,
                held_back=c.check.loaded if hold else 0,
                reasons=dict(Counter(c.check.rejected.get_column("reason").to_list()).most_common()),
            )
        )
        for c in checked
    ]
    identified = None
    if not hold and any(c.check.loaded for c in checked):
        # Ids in file order, then row order: the same files in the same order get the same ids.
        accepted = pl.concat([c.check.accepted for c in checked if c.check.loaded])
        identified = identify(accepted, id_maps=id_maps, floors=_id_floors(workspace))
    plan = _stage(
        workspace,
        import_id,
        checked,
        outcomes,
        hold=hold,
        identified=identified,
        as_of=as_of,
        imported_at=imported_at,
    )
    outcome = ImportOutcome(
        import_id=import_id,
        as_of=as_of,
        strict=strict,
        files=tuple(outcomes + skipped),
        written=True,
        ledger="skipped",
        quarantine_files=tuple(t for _, t in plan.moves if t.startswith(f"data/{QUARANTINE_TABLE}/")),
        partitions=tuple(plan.entry["partitions"]),
        ids_assigned=dict(plan.entry["ids_assigned"]),
    )
    return plan, outcome


def _concat_ids(loaded: pl.Series | None, accepted: list[pl.Series]) -> pl.Series | None:
    parts = ([loaded] if loaded is not None else []) + accepted
    return pl.concat(parts) if parts else None


def _customer_register(
    workspace: Workspace, customers: Sequence[Path], mapping: TapeMapping, id_map: pl.DataFrame
) -> pl.Series | None:
    """Customer references loans must refer to: the workspace's customers table and any customer tapes given."""
    parts: list[pl.Series] = []
    in_book = _table_column(workspace, CUSTOMERS_TABLE, "customer_id")
    if in_book is not None:
        parts.append(refs_of_ids(in_book, id_map))
    for path in customers:
        raw = read_tape(path, mapping)
        source = mapping.source_of("customer_id", raw.columns)
        if source is None:
            raise TapeInvalid(f"{path}: no customer_id column in this customer tape", field="customer_id")
        parts.append(read_ids(raw.get_column(source)).drop_nulls())
    return pl.concat(parts) if parts else None


def _customer_chunks(loans: pl.DataFrame, size: int) -> list[pl.DataFrame]:
    """Loans cut into partitions of about ``size`` loans, each customer's loans in one partition.

    Sorted by customer, a customer goes to the chunk its first loan falls in, so a chunk may run over
    ``size`` by at most one customer's loans.
    """
    if loans.height <= size:
        return [loans]
    ordered = loans.sort("customer_id", "loan_id")
    first_of_customer = pl.col("customer_id").is_first_distinct()
    chunk = pl.when(first_of_customer).then(pl.int_range(pl.len()) // size).forward_fill()
    keyed = ordered.with_columns(chunk.alias("__chunk"))
    return [part.drop("__chunk") for part in keyed.partition_by("__chunk", maintain_order=True)]


def _stage(
    workspace: Workspace,
    import_id: str,
    checked: Sequence[CheckedTape],
    outcomes: Sequence[FileOutcome],
    *,
    hold: bool,
    identified: Identified | None,
    as_of: date | None,
    imported_at: datetime,
) -> ImportPlan:
    """Write the import's partitions and id-map entries under staging, and the plan that publishes them.

    ``identified`` holds the rows to load with their book ids, or None when nothing is loaded (``--strict``
    held the import back, or every row was quarantined).
    """
    root = workspace.root
    stage = _staging_root(workspace) / import_id
    shutil.rmtree(stage, ignore_errors=True)
    moves: list[tuple[str, str]] = []
    prior = next((e for e in read_manifest(workspace)["imports"] if e["import_id"] == import_id), None)
    first = _next_partition(workspace)
    # The same files imported again (after a --strict rejection) replace their quarantine report, not add one.
    quarantine_partition = prior["quarantine_partition"] if prior is not None else first
    partitions: list[int] = []

    def put(target: Path, frame: pl.DataFrame) -> None:
        rel = target.relative_to(root).as_posix()
        staged = stage / rel
        staged.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(staged, compression="zstd", statistics=True)
        moves.append((staged.relative_to(root).as_posix(), rel))

    ids_assigned = dict.fromkeys(REF_FIELDS, 0)
    if identified is not None:
        for offset, chunk in enumerate(_customer_chunks(identified.rows, TARGET_LOANS_PER_PARTITION)):
            partitions.append(first + offset)
            put(workspace.partition_path(LOANS_TABLE, first + offset), book_loans(chunk))
            put(workspace.partition_path(POSITIONS_TABLE, first + offset), tape_positions(chunk, as_of=as_of))
        for kind, entries in identified.new_entries.items():
            ids_assigned[kind] = entries.height
            if entries.height:
                put(
                    _id_map_path(workspace, kind, import_id), entries.with_columns(pl.lit(import_id).alias("import_id"))
                )
    quarantine = [_quarantine(c, import_id) for c in checked if c.check.quarantined]
    if quarantine:
        put(workspace.partition_path(QUARANTINE_TABLE, quarantine_partition), pl.concat(quarantine))
    entry = {
        "import_id": import_id,
        "imported_at": imported_at.isoformat(),
        "as_of": as_of.isoformat() if as_of else None,
        "status": "rejected" if hold else "loaded",
        "files": [{k: v for k, v in asdict(o).items() if k != "already_imported"} for o in outcomes],
        "quarantine_partition": quarantine_partition,
        "partitions": partitions,
        "ids_assigned": ids_assigned,
        "parts": [t for _, t in moves],
    }
    plan = ImportPlan(
        workspace=workspace, import_id=import_id, moves=moves, entry=entry, ledger_needed=identified is not None
    )
    plan.write()
    return plan


def _quarantine(c: CheckedTape, import_id: str) -> pl.DataFrame:
    rows = quarantine_rows(c.raw, c.check.rejected)
    return rows.with_columns(
        pl.lit(import_id).alias("import_id"), pl.lit(str(c.path)).alias("file"), pl.lit(c.sha256).alias("file_sha256")
    ).select([pl.col(n).cast(t) for n, t in QUARANTINE_SCHEMA.items()])
