"""Settings (pydantic-settings), read from ``RUNOFF_*`` variables and the workspace's runoff.toml.

Built on demand by the composition root (``runoff.app.context``), never at import.
"""

from __future__ import annotations

from pathlib import Path

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

    def ledger_url(self) -> str:
        """The ledger's SQLAlchemy URL: ``database_url`` or the workspace's SQLite file."""
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://") :]
            return url
        return f"sqlite:///{(self.workspace / 'ledger.db').resolve()}"
