"""The workspace (工作区): a folder with runoff.toml, Parquet tables under data/, models/, runs/ and reports/.

Tables are stored as ``data/<table>/part-XXXXX.parquet``, one file per partition; a partition holds
whole customers, so per-customer work never crosses files. Writes go to a temporary file and are
renamed into place, so a crash never leaves half a partition behind. The ledger creates its own
``ledger.db`` here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from runoff.config import Settings
from runoff.errors import ConfigError, Conflict, NotFound
from runoff.portfolio.schemas import TABLES

MARKER = "runoff.toml"
FOLDERS = ("data", "models", "runs", "reports")
FORMAT_VERSION = 1
_PART = re.compile(r"^part-(\d{5})\.parquet$")


def locate_workspace(
    explicit: Path | str | None = None, *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Path:
    """The workspace folder: ``--workspace``, else ``RUNOFF_WORKSPACE``, else the current folder."""
    if explicit is not None and str(explicit) != "":
        return Path(explicit)
    settings = Settings.from_environ(env)
    if "workspace" in settings.model_fields_set:
        return settings.workspace
    return cwd if cwd is not None else Path.cwd()


@dataclass(frozen=True, slots=True)
class Workspace:
    """An initialised workspace folder and its partitioned Parquet tables."""

    root: Path

    # --- lifecycle -----------------------------------------------------------------------------

    @classmethod
    def init(cls, root: Path | str, *, name: str | None = None) -> Workspace:
        """Create (or complete) a workspace at ``root``; an existing runoff.toml is kept as it is."""
        path = Path(root)
        if path.exists() and not path.is_dir():
            raise ConfigError(f"`workspace`: {path} is a file; expected a folder (new or existing)", field="workspace")
        path.mkdir(parents=True, exist_ok=True)
        for folder in FOLDERS:
            (path / folder).mkdir(exist_ok=True)
        marker = path / MARKER
        if not marker.exists():
            title = name or path.resolve().name
            marker.write_text(
                "# runoff workspace (see docs/book.md)\n"
                "[workspace]\n"
                f"name = {json.dumps(title, ensure_ascii=False)}\n"
                f"format = {FORMAT_VERSION}\n",
                encoding="utf-8",
            )
        return cls(path)

    @classmethod
    def open(cls, root: Path | str) -> Workspace:
        """The workspace at ``root``; a clear error when the folder is not one."""
        path = Path(root)
        if not (path / MARKER).is_file():
            raise ConfigError(
                f"`workspace`: {path} has no {MARKER}; run `runoff init {path}` first or pass --workspace",
                field="workspace",
            )
        return cls(path)

    @property
    def settings(self) -> dict[str, Any]:
        """The parsed runoff.toml."""
        try:
            return tomllib.loads((self.root / MARKER).read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{self.root / MARKER}: not valid TOML ({exc})") from None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def ledger_path(self) -> Path:
        return self.root / "ledger.db"

    # --- partitioned tables ----------------------------------------------------------------------

    def table_dir(self, table: str) -> Path:
        return self.data_dir / table

    def partition_path(self, table: str, partition: int) -> Path:
        return self.table_dir(table) / f"part-{partition:05d}.parquet"

    def write_partition(self, table: str, partition: int, frame: pl.DataFrame) -> Path:
        """Write one partition atomically; book tables are conformed to their schema first."""
        if table in TABLES:
            frame = TABLES[table].conform(frame)
        target = self.partition_path(table, partition)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        frame.write_parquet(tmp, compression="zstd", statistics=True)
        os.replace(tmp, target)
        return target

    def partitions(self, table: str) -> list[int]:
        """The partition numbers of ``table`` present on disk, in order."""
        folder = self.table_dir(table)
        if not folder.is_dir():
            return []
        return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _PART.match(p.name)))

    def has_table(self, table: str) -> bool:
        return bool(self.partitions(table))

    def read_partition(self, table: str, partition: int) -> pl.DataFrame:
        path = self.partition_path(table, partition)
        if not path.is_file():
            raise NotFound(f"`{table}` partition {partition} is not in {self.data_dir}")
        return pl.read_parquet(path)

    def scan(self, table: str, partition: int | None = None) -> pl.LazyFrame:
        """A lazy scan of the whole table, or of one partition."""
        if partition is not None:
            path = self.partition_path(table, partition)
            if not path.is_file():
                raise NotFound(f"`{table}` partition {partition} is not in {self.data_dir}")
            return pl.scan_parquet(path)
        if not self.has_table(table):
            raise NotFound(f"table `{table}` is not in {self.data_dir}; run `runoff generate` or `runoff import` first")
        return pl.scan_parquet(self.table_dir(table) / "part-*.parquet")

    def clear_table(self, table: str) -> None:
        """Remove every partition of ``table`` (before a regeneration)."""
        folder = self.table_dir(table)
        if folder.is_dir():
            shutil.rmtree(folder)

    # --- small documents (book metadata, true parameters) ----------------------------------------

    @contextlib.contextmanager
    def exclusive(self, lock_file: Path, busy: Conflict) -> Iterator[None]:
        """Hold an advisory lock on ``lock_file`` (one writer at a time; the OS drops it if the process dies).

        ``busy`` is raised at once when another process holds it. No lock where the OS has none (Windows).
        """
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        with lock_file.open("a+") as fh:
            try:
                import fcntl
            except ImportError:  # pragma: no cover - Windows: no advisory lock
                yield
                return
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise busy from None
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def write_json(self, relative: str, data: Any) -> Path:
        target = self.data_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, target)
        return target

    def read_json(self, relative: str) -> Any:
        path = self.data_dir / relative
        if not path.is_file():
            raise NotFound(f"{path} does not exist")
        return json.loads(path.read_text(encoding="utf-8"))

    def write_frame(self, relative: str, frame: pl.DataFrame) -> Path:
        """A single (unpartitioned) Parquet file under data/, e.g. ``truth/macro.parquet``."""
        target = self.data_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        frame.write_parquet(tmp, compression="zstd", statistics=True)
        os.replace(tmp, target)
        return target
