"""The embedded default end to end on SQLite: `openfuse admin migrate`, a key, a connection
checked and discovered against a SQLite source, a pipeline, the audit log, readiness."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import typer
from api_support import Api, TestClient, bearer, cli_key
from typer.testing import CliRunner

from api.app import create_app
from api.cli import register
from api.settings import Settings


def test_embedded_sqlite_smoke(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cli = typer.Typer()
    register(cli)
    env = {"OPENFUSE_HOME": str(home), "OPENFUSE_DATABASE_URL": None, "OPENFUSE_SECRET_KEY": None}
    # Before the migration, making a key says what to do.
    result = CliRunner().invoke(cli, ["admin", "create-key", "--workspace", "w", "--name", "n"], env=env)
    assert result.exit_code == 2 and "openfuse admin migrate" in result.output
    result = CliRunner().invoke(cli, ["admin", "migrate"], env=env)
    assert result.exit_code == 0, result.output
    assert (home / "openfuse.db").exists()

    settings = Settings(home=home)  # dev: the key file is generated under $OPENFUSE_HOME
    key = cli_key(settings, "local", "me", "roles=admin")
    source = tmp_path / "source.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount REAL, updated_at TEXT)")
        conn.execute("INSERT INTO orders VALUES (1, 2.5, '2024-01-01')")

    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        c, h = api.client, bearer(key)
        # The database is ready; Dagster is not running in this test.
        assert c.get("/readyz").json()["checks"] == {"database": "ok", "dagster": "unreachable"}
        r = c.post(
            "/api/v1/connections",
            headers=h,
            json={"name": "lite", "connector": "sqlite", "config": {"path": str(source)}},
        )
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
        assert c.post(f"/api/v1/connections/{cid}/check", headers=h).json()["ok"] is True
        streams = c.post(f"/api/v1/connections/{cid}/discover", headers=h).json()["streams"]
        assert [s["name"] for s in streams] == ["orders"]
        body = {
            "name": "p",
            "source": {"connection": "lite"},
            "destination": {"connection": "lite"},
            "streams": [{"name": "orders"}],
        }
        assert c.post("/api/v1/pipelines", headers=h, json=body).status_code == 201
        # Exported for Dagster into OPENFUSE_PIPELINES_DIR, the SQLite path as written.
        (exported,) = settings.pipelines_dir.glob("api_p__*.yaml")
        assert str(source) in exported.read_text()
        for i in range(4):
            assert c.post("/api/v1/pipelines", headers=h, json={**body, "name": f"p{i}"}).status_code == 201
        first = c.get("/api/v1/pipelines", params={"limit": 3}, headers=h).json()
        second = c.get(
            "/api/v1/pipelines", params={"limit": 3, "cursor": first["next_cursor"]}, headers=h
        ).json()
        assert [p["name"] for p in first["items"] + second["items"]] == ["p", "p0", "p1", "p2", "p3"]
        assert second["next_cursor"] is None
        actions = [e["action"] for e in c.get("/api/v1/audit", headers=h).json()["items"]]
        assert actions.count("pipeline:create") == 5 and "connection:create" in actions
    assert (home / "secret.key").stat().st_mode & 0o777 == 0o600
