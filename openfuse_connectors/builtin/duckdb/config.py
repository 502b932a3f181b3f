"""Where the DuckDB database file is and which schema to use."""

from __future__ import annotations

from pathlib import Path

from pydantic import ConfigDict, Field, field_validator

from openfuse_connectors.config import ConnectorConfig


class DuckDBConfig(ConnectorConfig):
    """A DuckDB database file (created, with its parent folders, on the first load)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    path: Path = Field(description="Database file, e.g. warehouse.duckdb. Created if missing.")
    schema_name: str = Field(
        default="main",
        alias="schema",
        min_length=1,
        description="Schema to read from / write into (created if missing).",
    )

    @field_validator("path")
    @classmethod
    def _on_disk(cls, v: Path) -> Path:
        # Every load opens its own connection, so an in-memory database would vanish between them.
        if str(v) in ("", ":memory:") or str(v).startswith(":memory:"):
            raise ValueError("path must be a database file; in-memory DuckDB databases are not supported")
        return v.expanduser()
