"""PostgreSQL connection settings."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, SecretStr

from openfuse_connectors.config import ConnectorConfig


class PostgresConfig(ConnectorConfig):
    """Where the PostgreSQL database is and which schema to write into."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    dsn: SecretStr = Field(description="libpq URI, e.g. postgresql://user:password@host:5432/db")
    schema_name: str = Field(
        default="public", alias="schema", description="Destination schema (created if missing)."
    )
    connect_timeout: int = Field(default=10, ge=1, le=300, description="Seconds to wait for a connection.")
    statement_timeout_ms: int | None = Field(default=None, ge=0, description="Server-side statement timeout.")

    def uri(self) -> str:
        dsn = self.dsn.get_secret_value()
        if "connect_timeout" in dsn:
            return dsn
        return dsn + ("&" if "?" in dsn else "?") + f"connect_timeout={self.connect_timeout}"

    def where(self) -> dict[str, Any]:
        """host, port and database - never the password - for messages."""
        from psycopg.conninfo import conninfo_to_dict

        try:
            info = conninfo_to_dict(self.dsn.get_secret_value())
        except Exception:  # an unparsable DSN: say nothing that could be secret
            return {"host": None, "port": None, "database": None}
        port = info.get("port")
        return {
            "host": info.get("host") or "localhost",
            "port": int(port) if isinstance(port, str | int) and str(port).isdigit() else 5432,
            "database": info.get("dbname"),
        }
