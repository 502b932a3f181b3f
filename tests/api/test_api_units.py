"""Settings, encryption, API keys, cursors, config sealing and metrics - no server needed."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import typer
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError
from typer.testing import CliRunner

from api.admin import parse_attributes
from api.auth.apikeys import hash_secret, new_key, parse_key, verify_secret
from api.cli import register
from api.connection_config import apply_patch, public_config, redact, seal, secret_values, unseal
from api.crypto import SecretBox, SecretDecryptionError
from api.errors import Problem
from api.metrics import Metrics
from api.pagination import decode_cursor, encode_cursor
from api.settings import Environment, Settings
from openfuse_connectors.config import ConnectorConfig

GOOD_KEY = "q" * 20 + uuid.uuid4().hex


# -- settings


def test_settings_read_the_environment_with_the_openfuse_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENFUSE_API_PORT", "9001")
    monkeypatch.setenv("OPENFUSE_DATABASE_URL", "postgresql://u:p@db:5432/meta")
    monkeypatch.setenv("OPENFUSE_MAX_BODY_SIZE", "2048")
    s = Settings()
    assert s.api_port == 9001 and s.max_body_size == 2048
    assert s.db_url == "postgresql+psycopg://u:p@db:5432/meta" and not s.is_sqlite
    assert "p@db" not in repr(s.secret_key)


@pytest.mark.parametrize("key", [None, "changethis", "ChangeMe", "secret", "short-but-random"])
def test_prod_refuses_missing_placeholder_or_short_keys(key: str | None) -> None:
    with pytest.raises(ValidationError, match="OPENFUSE_SECRET_KEY") as e:
        Settings(environment=Environment.PROD, secret_key=key)  # type: ignore[arg-type]
    if key:
        assert key not in str(e.value).replace("input_value", "")


def test_prod_refuses_a_placeholder_database_password_and_accepts_real_settings() -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(environment="prod", secret_key=GOOD_KEY, database_url="postgresql://app:changethis@db/meta")  # type: ignore[arg-type]
    s = Settings(environment="prod", secret_key=GOOD_KEY, database_url="postgresql://app:Xk29vq@db/meta")  # type: ignore[arg-type]
    assert s.environment is Environment.PROD


def test_dev_generates_one_key_file_and_reuses_it(tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    first = s.encryption_secret()
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    assert Settings(home=tmp_path).encryption_secret() == first
    assert Settings(home=tmp_path, secret_key=GOOD_KEY).encryption_secret() == GOOD_KEY  # type: ignore[arg-type]


# -- encryption and keys


def test_secret_box_round_trip_and_binding() -> None:
    box = SecretBox(GOOD_KEY)
    a = box.encrypt("hunter2", context="connection:1:dsn")
    assert a != box.encrypt("hunter2", context="connection:1:dsn")  # random nonce
    assert "hunter2" not in a and a.startswith(f"v1.{box.key_id}.")
    assert box.decrypt(a, context="connection:1:dsn") == "hunter2"
    with pytest.raises(SecretDecryptionError, match="context"):
        box.decrypt(a, context="connection:2:dsn")  # moved to another row
    with pytest.raises(SecretDecryptionError, match="another key"):
        SecretBox(GOOD_KEY + "x").decrypt(a, context="connection:1:dsn")


def test_api_keys_are_shown_once_and_stored_hashed() -> None:
    k = new_key()
    prefix, secret = parse_key(k.token)  # type: ignore[misc]
    assert prefix == k.prefix and k.token == f"of_{prefix}_{secret}"
    assert secret not in k.secret_hash and verify_secret(secret, k.secret_hash)
    assert not verify_secret(secret[:-1] + ("A" if secret[-1] != "A" else "B"), k.secret_hash)
    assert hash_secret(secret) != hash_secret(secret)  # salted
    for bad in ("of_abc", "sk_" + k.token[3:], k.token + "x", "of_ZZZZZZZZZZZZ_" + secret):
        assert parse_key(bad) is None


def test_attributes_from_the_command_line() -> None:
    assert parse_attributes(["team=data", "roles=admin,editor", "region=eu", "groups=ops"]) == {
        "team": "data",
        "roles": ["admin", "editor"],
        "region": "eu",
        "groups": ["ops"],
    }
    with pytest.raises(ValueError, match="key=value"):
        parse_attributes(["team"])


# -- connector configs: secrets found at any depth


class _Auth(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str
    token: SecretStr


class _Cfg(ConnectorConfig):
    url: str
    password: SecretStr | None = None
    auth: _Auth
    retries: int = 3


def test_seal_encrypts_every_secret_and_public_view_hides_them() -> None:
    box, cid = SecretBox(GOOD_KEY), uuid.uuid4()
    cfg = _Cfg.model_validate({"url": "https://api", "auth": {"user": "u", "token": "tok-123456"}})
    stored = seal(cfg, box, cid)
    assert "tok-123456" not in json.dumps(stored)
    assert stored["url"] == "https://api" and "retries" not in stored  # only what was set
    assert public_config(stored, _Cfg) == {
        "url": "https://api",
        "auth": {"user": "u", "token": {"set": True}},
        "password": {"set": False},
    }
    plain = unseal(stored, box, cid)
    assert plain == {"url": "https://api", "auth": {"user": "u", "token": "tok-123456"}}
    with pytest.raises(SecretDecryptionError):
        unseal(stored, box, uuid.uuid4())
    assert apply_patch(plain, {"retries": 5, "auth": {"set": True}, "url": None}) == {
        "auth": plain["auth"],
        "retries": 5,
    }


def test_redaction_covers_known_secrets_and_url_passwords() -> None:
    cfg = _Cfg.model_validate(
        {"url": "x", "password": "postgresql://u:pa%24s@h/db", "auth": {"user": "u", "token": "tok-9"}}
    )
    values = secret_values(cfg)
    assert {"tok-9", "pa%24s", "pa$s"} <= set(values)
    msg = "failed for postgresql://u:pa%24s@h/db and pa$s and tok-9 and mysql://x:other@host"
    assert redact(msg, values) == "failed for *** and *** and *** and mysql://x:***@host"


# -- cursors and metrics


def test_cursors_round_trip_and_reject_garbage() -> None:
    from datetime import UTC, datetime

    t, i = datetime(2024, 5, 1, 12, tzinfo=UTC), uuid.uuid4()
    token = encode_cursor("pipelines", [t, i])
    assert decode_cursor(token, "pipelines", [datetime, uuid.UUID]) == [t, i]
    for bad, kind in ((token, "connections"), ("@@@", "pipelines"), (token[:-3], "pipelines")):
        with pytest.raises(Problem) as e:
            decode_cursor(bad, kind, [datetime, uuid.UUID])
        assert e.value.status == 400 and e.value.errors[0].field == "cursor"


def test_metrics_exposition() -> None:
    m = Metrics()
    m.observe("GET", "/api/v1/connections", 200, 0.003)
    m.observe("GET", "/api/v1/connections", 200, 0.2)
    m.observe("BREW", 'a"b', 418, 99)
    text = m.render()
    assert 'openfuse_api_requests_total{method="GET",route="/api/v1/connections",status="200"} 2' in text
    assert 'le="0.005"} 1' in text and 'le="0.25"} 2' in text and 'le="+Inf"} 2' in text
    assert 'method="other",route="a\\"b",status="418"' in text
    assert "# TYPE openfuse_api_request_duration_seconds histogram" in text


# -- the CLI plugin


def test_importing_the_cli_plugin_loads_no_web_stack() -> None:
    code = "import sys, api.cli; print(sorted(m for m in ('fastapi', 'uvicorn', 'sqlalchemy', 'starlette') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_register_adds_api_and_admin_commands() -> None:
    app = typer.Typer()
    register(app)
    out = CliRunner().invoke(app, ["--help"]).output
    assert "api" in out and "admin" in out
    out = CliRunner().invoke(app, ["admin", "--help"]).output
    assert "create-key" in out and "migrate" in out
    out = CliRunner().invoke(app, ["api", "--help"]).output
    assert "--host" in out and "--port" in out and "--workers" in out


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "api" / "README.md").read_text(encoding="utf-8")
    missing = [
        f"OPENFUSE_{n.upper()}" for n in Settings.model_fields if f"`OPENFUSE_{n.upper()}`" not in readme
    ]
    assert not missing, f"settings missing from api/README.md: {missing}"
