"""Helpers of the API tests (imported by tests/api/conftest.py and the test modules)."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

with warnings.catch_warnings():
    # Starlette prefers httpx2 for its test client; httpx is what this environment has.
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

from api.cli import register
from api.settings import Settings

__all__ = [
    "NO_DAGSTER",
    "SECRET_KEY",
    "Api",
    "TestClient",
    "bearer",
    "cli_key",
    "decided",
    "licensed",
    "make_license",
    "make_settings",
    "pg_database",
]

SECRET_KEY = "test-key-" + "k" * 40
#: A Dagster URL nothing listens on (port 9, discard): tests without a webserver never reach a
#: Dagster someone happens to run on this machine.
NO_DAGSTER = "http://127.0.0.1:9/graphql"


def decided(detail: dict[str, Any], *policies: str) -> dict[str, Any]:
    """An audit entry's detail without the policy decision, after checking the decision is there
    (its id a UUID, and the determining policies, by default the editor role)."""
    rest = dict(detail)
    uuid.UUID(rest.pop("decision_id"))
    assert rest.pop("policies") == list(policies or ("community.role.editor",)), detail
    return rest


@dataclass
class Api:
    """A test client that remembers every response body (for the secret scan)."""

    client: TestClient
    settings: Settings
    seen: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        def keep(response):  # type: ignore[no-untyped-def]
            response.read()
            self.seen.append(f"{response.status_code} {dict(response.headers)} {response.text}")

        self.client.event_hooks = {"request": [], "response": [keep]}


def cli_key(settings: Settings, workspace: str, name: str, *attrs: str) -> str:
    """Make a key exactly as `openfuse admin create-key` does, and return what it printed."""
    app = typer.Typer()
    register(app)
    args = ["admin", "create-key", "--workspace", workspace, "--name", name]
    for a in attrs:
        args += ["--attr", a]
    env = {
        "OPENFUSE_DATABASE_URL": settings.database_url,
        "OPENFUSE_SECRET_KEY": SECRET_KEY,
        "OPENFUSE_HOME": str(settings.home),
        "OPENFUSE_PIPELINES_DIR": str(settings.pipelines_dir),
    }
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert key.startswith("of_") and "\n" not in key
    return key


def pg_database(server: str) -> Iterator[str]:
    """A fresh PostgreSQL database (like tests/conftest.py's pg_db, for wider scopes)."""
    import psycopg

    name = f"of_test_{uuid.uuid4().hex[:10]}"
    base = server.rpartition("/")[0]
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_settings(url: str, home: Path, **kw: object) -> Settings:
    kw.setdefault("pipelines_dir", home / "pipelines")
    kw.setdefault("dagster_graphql_url", NO_DAGSTER)
    return Settings(database_url=url, secret_key=SECRET_KEY, home=home, **kw)  # type: ignore[arg-type]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def make_license(tmp: Path, *features: str) -> dict[str, str]:
    """``OPENFUSE_LICENSE`` and ``OPENFUSE_LICENSE_PUBLIC_KEYS`` for a license signed by a key pair
    made here (the private key never leaves this function); every feature by default."""
    import json

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from openfuse_policy import issue_license
    from openfuse_policy.license import public_key_jwk

    key = Ed25519PrivateKey.generate()
    jwks = tmp / f"license-keys-{uuid.uuid4().hex[:8]}.json"
    jwks.write_text(json.dumps({"keys": [public_key_jwk(key.public_key(), "tests")]}))
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    token = issue_license(pem, "tests", "Tests", features=features or ("abac", "masking", "audit_export"))
    return {"OPENFUSE_LICENSE": token, "OPENFUSE_LICENSE_PUBLIC_KEYS": str(jwks)}


def licensed(settings: Settings, tmp: Path, *features: str) -> Settings:
    """``settings`` with a test license (see :func:`make_license`)."""
    from pydantic import SecretStr

    env = make_license(tmp, *features)
    return settings.model_copy(
        update={
            "license": SecretStr(env["OPENFUSE_LICENSE"]),
            "license_public_keys": Path(env["OPENFUSE_LICENSE_PUBLIC_KEYS"]),
        }
    )
