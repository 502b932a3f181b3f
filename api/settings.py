"""The API service's settings: one pydantic-settings object, read from ``OPENFUSE_*`` variables.

Nothing here runs at import time: build a :class:`Settings` where it is needed (``create_app``,
the CLI commands), so tests never need a ``.env`` file. Every variable is documented in
``api/README.md``.
"""

from __future__ import annotations

import os
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["PLACEHOLDER_SECRETS", "Environment", "Settings"]

#: Values refused as secrets outside development (the FastAPI template's "changethis" guard).
PLACEHOLDER_SECRETS = frozenset(
    {
        "",
        "changethis",
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "password",
        "openfuse",
        "dev",
        "development",
        "test",
        "example",
        "xxx",
    }
)
#: A production secret key shorter than this is refused.
MIN_SECRET_KEY_LENGTH = 32


class Environment(StrEnum):
    DEV = "dev"
    PROD = "prod"


class Settings(BaseSettings):
    """Settings of the API service (and the ``openfuse api`` / ``openfuse admin`` commands)."""

    # hide_input_in_errors: a validation error must not quote the key or a URL with its password.
    model_config = SettingsConfigDict(
        env_prefix="OPENFUSE_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    environment: Environment = Field(
        default=Environment.DEV,
        description="`dev` allows the embedded defaults (a generated secret key file); `prod` requires "
        "an explicit, non-placeholder secret key.",
    )
    home: Path = Field(
        default=Path(".openfuse"),
        description="Folder for local state: the SQLite metadata DB and, in dev, the generated key file.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata DB. Default: SQLite at `$OPENFUSE_HOME/openfuse.db`. "
        "PostgreSQL: `postgresql+psycopg://user:password@host:5432/db` (`postgresql://` is accepted "
        "and uses psycopg 3).",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Key that encrypts connection secrets at rest (any string of 32+ characters; "
        "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`). Required in prod.",
    )
    dagster_graphql_url: str = Field(
        default="http://127.0.0.1:3000/graphql", description="Dagster webserver's GraphQL endpoint."
    )
    dagster_location: str = Field(
        default="openfuse_dagster.definitions",
        min_length=1,
        description="Dagster code location that loads `OPENFUSE_PIPELINES_DIR` (the module name for "
        "`-m openfuse_dagster.definitions`).",
    )
    dagster_repository: str = Field(
        default="__repository__", min_length=1, description="Repository of that location (`Definitions`)."
    )
    dagster_timeout: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Seconds to wait for one Dagster GraphQL call (a code "
        "location reload gets ten times as long).",
    )
    pipelines_dir: Path = Field(
        default=Path("pipelines"),
        description="Folder the Dagster code location loads pipeline YAML files from; the API writes "
        "one `api_<job>.yaml` per pipeline there (secrets as `${OPENFUSE_SECRET_...}` references).",
    )
    api_host: str = Field(default="127.0.0.1", description="Address `openfuse api` binds to.")
    api_port: int = Field(default=8000, ge=1, le=65535, description="Port `openfuse api` listens on.")
    api_workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes.")
    max_body_size: int = Field(
        default=1_048_576, ge=1024, description="Largest request body in bytes; larger requests get 413."
    )
    db_pool_size: int = Field(default=5, ge=1, le=100, description="PostgreSQL connection pool size.")
    license: SecretStr | None = Field(
        default=None,
        description="The enterprise license token (an Ed25519-signed JWT). Unset: the community edition.",
    )
    license_file: Path | None = Field(
        default=None, description="A file holding the license token (used when `OPENFUSE_LICENSE` is unset)."
    )
    license_public_keys: Path | None = Field(
        default=None,
        description="A JWKS file of trusted license keys. Default: the keys shipped with OpenFuse.",
    )
    license_grace_days: int = Field(
        default=14,
        ge=0,
        le=365,
        description="Days an expired license keeps applying (with a warning) before the community edition.",
    )

    @field_validator("database_url")
    @classmethod
    def _valid_url(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        try:
            make_url(v)
        except ArgumentError:
            # Never echo the value: a URL usually carries a password.
            raise ValueError("OPENFUSE_DATABASE_URL is not a valid SQLAlchemy URL") from None
        return v

    @model_validator(mode="after")
    def _production_secrets(self) -> Self:
        if self.environment is not Environment.PROD:
            return self
        if self.secret_key is None:
            raise ValueError("OPENFUSE_SECRET_KEY must be set when OPENFUSE_ENVIRONMENT=prod")
        key = self.secret_key.get_secret_value()
        if key.strip().lower() in PLACEHOLDER_SECRETS:
            raise ValueError("OPENFUSE_SECRET_KEY is a placeholder value; set a random key for prod")
        if len(key) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(
                f"OPENFUSE_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters in prod "
                f"(got {len(key)})"
            )
        password = make_url(self.db_url).password
        if isinstance(password, str) and password.strip().lower() in PLACEHOLDER_SECRETS - {""}:
            raise ValueError(
                "the password in OPENFUSE_DATABASE_URL is a placeholder value; change it for prod"
            )
        return self

    @property
    def db_url(self) -> str:
        """The metadata DB URL with the driver made explicit (psycopg 3 for PostgreSQL)."""
        if self.database_url is None:
            return f"sqlite:///{(self.home.expanduser().resolve() / 'openfuse.db').as_posix()}"
        url = self.database_url
        for plain in ("postgres://", "postgresql://"):
            if url.startswith(plain):
                return "postgresql+psycopg://" + url[len(plain) :]
        return url

    def license_token(self) -> str | None:
        """The license token: ``license``, else the contents of ``license_file``."""
        if self.license is not None and self.license.get_secret_value().strip():
            return self.license.get_secret_value().strip()
        if self.license_file is not None:
            try:
                return self.license_file.expanduser().read_text(encoding="utf-8").strip()
            except OSError as e:
                raise ValueError(f"OPENFUSE_LICENSE_FILE {self.license_file}: {e.strerror or e}") from None
        return None

    @property
    def is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite")

    def encryption_secret(self) -> str:
        """The secret the encryption key is derived from.

        In dev without ``OPENFUSE_SECRET_KEY`` a random key is generated once into
        ``$OPENFUSE_HOME/secret.key`` (mode 0600), so the embedded default needs no setup and
        restarts can still read what was stored. Prod never gets here without a key.
        """
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.home.expanduser().resolve() / "secret.key"
        if path.exists():
            return path.read_text(encoding="utf-8").strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return path.read_text(encoding="utf-8").strip()
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(key + "\n")
        return key
