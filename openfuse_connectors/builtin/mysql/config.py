"""MySQL / MariaDB connection settings."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from openfuse_connectors.config import ConnectorConfig


class MySQLSSL(BaseModel):
    """TLS for the connection. Paths are files on the machine that runs the sync."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["required", "verify_ca", "verify_identity"] = Field(
        default="verify_identity",
        description="required: encrypt only; verify_ca: also check the server certificate against `ca`; "
        "verify_identity: also check that the certificate names `host`.",
    )
    ca: str | None = Field(default=None, description="CA certificate file (PEM).")
    cert: str | None = Field(default=None, description="Client certificate file (PEM), for X.509 logins.")
    key: str | None = Field(default=None, description="Client private key file (PEM), with `cert`.")


class MySQLConfig(ConnectorConfig):
    """Where the MySQL or MariaDB database is, and how long to wait for it."""

    host: str = Field(
        min_length=1, description="Server host name or address (`localhost` means the local socket)."
    )
    port: int = Field(default=3306, ge=1, le=65535)
    user: str = Field(min_length=1)
    password: SecretStr = Field(description="Password of `user` (may be empty).")
    database: str = Field(
        min_length=1,
        description="Database (schema) whose tables are the streams; `other_db.table` reaches another one.",
    )
    connect_timeout: int = Field(
        default=10, ge=1, le=300, description="Seconds to wait for a connection (and for `check`)."
    )
    read_timeout: int = Field(
        default=600,
        ge=1,
        le=86_400,
        description="Seconds to wait for the server to answer, and for the server to wait while OpenFuse "
        "loads a batch before it takes the next rows of a stream.",
    )
    ssl: MySQLSSL | None = Field(default=None, description="TLS settings; unset: no TLS.")
    tinyint1_as_bool: bool = Field(
        default=True,
        description="Read TINYINT(1) / BOOL columns as booleans (values other than 0 and 1 are then "
        "quarantined); false reads them as int8.",
    )

    def where(self) -> dict[str, Any]:
        """host, port and database - never the password - for messages."""
        return {"host": self.host, "port": self.port, "database": self.database}
