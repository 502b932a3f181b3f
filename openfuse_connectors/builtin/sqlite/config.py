"""Where the SQLite database file is."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from openfuse_connectors.config import ConnectorConfig


class SQLiteConfig(ConnectorConfig):
    """A SQLite database file (created, with its parent folders, on the first load)."""

    path: Path = Field(description="Database file, e.g. local.sqlite. Created if missing.")
    timeout: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="Seconds to wait for another writer to finish before failing.",
    )

    @field_validator("path")
    @classmethod
    def _on_disk(cls, v: Path) -> Path:
        # Every load opens its own connection, so an in-memory database would vanish between them.
        if str(v).startswith(":memory:") or str(v).startswith("file:"):
            raise ValueError("path must be a database file; in-memory and URI databases are not supported")
        return v.expanduser()
