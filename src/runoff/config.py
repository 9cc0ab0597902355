"""Settings (pydantic-settings): the one declared table of what runoff reads from ``RUNOFF_*`` variables.

Built on demand by the composition root (``runoff.app.context``) and the CLI, never at import;
command-line flags (``--workspace``, ``--scheduler``) override them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting runoff reads, with its environment variable."""

    model_config = SettingsConfigDict(env_prefix="RUNOFF_", extra="ignore")

    workspace: Path = Field(default=Path("."), description="workspace folder (RUNOFF_WORKSPACE)")
    database_url: str | None = Field(
        default=None,
        description="ledger database URL (RUNOFF_DATABASE_URL); default: SQLite ledger.db in the workspace",
    )
    dask_scheduler: str | None = Field(default=None, description="Dask scheduler address (RUNOFF_DASK_SCHEDULER)")

    @classmethod
    def from_environ(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from the process environment, or from ``env`` alone when given (tests, subprocesses)."""
        if env is None:
            return cls()
        prefix = str(cls.model_config.get("env_prefix", ""))
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            value = env.get(f"{prefix}{name}".upper())
            if value:
                values[name] = value
        return cls.model_validate(values)  # validation only: the process environment is not read

    def ledger_url(self) -> str:
        """The ledger's SQLAlchemy URL: ``database_url`` or the workspace's SQLite file."""
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://") :]
            return url
        return f"sqlite:///{(self.workspace / 'ledger.db').resolve()}"
