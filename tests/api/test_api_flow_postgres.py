"""The main flow on PostgreSQL, as a user drives it: a key from the CLI, connections with their
secrets encrypted at rest, check/discover against a real source database, pipelines, cursor
pagination, stream state, and an audit log that has every write - with no secret anywhere in
a response or a log line."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from api_support import Api, TestClient, bearer, cli_key, decided, make_settings

from api.app import create_app
from api.migrate import upgrade

pytestmark = pytest.mark.postgres

PASSWORD = f"pw-{uuid.uuid4().hex}"  # trust auth ignores it; it is the secret we hunt for
BAD_PASSWORD = f"bad-{uuid.uuid4().hex}"


@pytest.fixture
def flow(pg_pair: tuple[str, str], tmp_path: Path) -> Iterator[tuple[Api, str]]:
    meta_url, source_url = pg_pair
    settings = make_settings(meta_url, tmp_path / "home")
    upgrade(settings.db_url)
    with psycopg.connect(source_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE public.orders (id int PRIMARY KEY, amount numeric(10,2), updated_at timestamptz NOT NULL)"
        )
        conn.execute("INSERT INTO public.orders VALUES (1, 1.50, now()), (2, 2.00, now()), (3, 9.99, now())")
        conn.execute("CREATE TABLE public.customers (id bigint PRIMARY KEY, name text)")
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings), source_url


def _dsn(source_url: str, password: str, port: int = 5432) -> str:
    db = source_url.rsplit("/", 1)[1]
    return f"postgresql://postgres:{password}@127.0.0.1:{port}/{db}"


def _all(api: Api, path: str, key: str, limit: int = 10) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        r = api.client.get(path, params=params, headers=bearer(key))
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= limit
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def test_main_flow(flow: tuple[Api, str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api, source_url = flow
    c = api.client
    key = cli_key(api.settings, "acme", "ann", "team=data", "roles=admin,editor")
    h = bearer(key)

    me = c.get("/api/v1/me", headers=h).json()
    assert me["name"] == "ann" and me["workspace"]["name"] == "acme"
    assert me["attributes"] == {"team": "data", "roles": ["admin", "editor"]}

    # -- connections: create, secrets encrypted at rest and never shown
    r = c.post(
        "/api/v1/connections",
        headers=h,
        json={"name": "src", "connector": "postgres", "config": {"dsn": _dsn(source_url, PASSWORD)}},
    )
    assert r.status_code == 201, r.text
    src = r.json()
    assert src["config"] == {"dsn": {"set": True}}
    r = c.post(
        "/api/v1/connections",
        headers=h,
        json={
            "name": "warehouse",
            "connector": "postgres",
            "config": {"dsn": _dsn(source_url, PASSWORD), "schema": "analytics"},
        },
    )
    assert r.status_code == 201, r.text
    warehouse = r.json()
    assert warehouse["config"] == {"dsn": {"set": True}, "schema": "analytics"}

    with psycopg.connect(api.settings.database_url) as conn:
        (raw,) = conn.execute("SELECT config FROM connection WHERE id = %s", (src["id"],)).fetchone()  # type: ignore[misc]
    ciphertext = raw["dsn"]["$encrypted"]
    assert ciphertext.startswith("v1.") and ciphertext != _dsn(source_url, PASSWORD)
    assert PASSWORD not in json.dumps(raw)

    got = c.get(f"/api/v1/connections/{src['id']}", headers=h).json()
    assert got["config"] == {"dsn": {"set": True}} and got["name"] == "src"

    # A partial update keeps the secret (sent back as {"set": true} or not at all).
    r = c.patch(
        f"/api/v1/connections/{src['id']}",
        headers=h,
        json={"config": {"connect_timeout": 5, "dsn": {"set": True}}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["config"] == {"dsn": {"set": True}, "connect_timeout": 5}

    # -- check and discover against the real source database, with the decrypted config
    r = c.post(f"/api/v1/connections/{src['id']}/check", headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True and r.json()["role"] == "source"
    r = c.post(f"/api/v1/connections/{src['id']}/discover", headers=h)
    assert r.status_code == 200, r.text
    streams = {s["name"]: s for s in r.json()["streams"]}
    assert set(streams) == {"public.orders", "public.customers"}
    orders = streams["public.orders"]
    assert [col["name"] for col in orders["columns"]] == ["id", "amount", "updated_at"]
    assert orders["primary_key"] == ["id"]
    assert {"id", "updated_at"} <= set(orders["cursor_candidates"])

    # A failing check is a problem document with the connector's message, not the secret.
    r = c.post(
        "/api/v1/connections",
        headers=h,
        json={
            "name": "broken",
            "connector": "postgres",
            "config": {"dsn": _dsn(source_url, BAD_PASSWORD, port=1)},
        },
    )
    broken = r.json()
    r = c.post(f"/api/v1/connections/{broken['id']}/check", headers=h)
    assert r.status_code == 502, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["type"] == "https://openfuse.dev/problems/connector-unreachable"
    assert "cannot connect" in problem["detail"] and "port=1" in problem["detail"]

    # -- pipelines: by connection name or id; unknown streams are fine until discover
    body = {
        "name": "orders_to_warehouse",
        "source": {"connection": "src"},
        "destination": {"connection": warehouse["id"]},
        "streams": [
            {
                "name": "public.orders",
                "mode": "incremental_dedupe",
                "cursor_field": "updated_at",
                "primary_key": ["id"],
            },
            {"name": "public.not_there_yet"},
        ],
        "schedule": "0 * * * *",
        "tags": {"team": "data"},
    }
    r = c.post("/api/v1/pipelines", headers=h, json=body)
    assert r.status_code == 201, r.text
    pipeline = r.json()
    assert pipeline["source"] == {
        "connection_id": src["id"],
        "connection_name": "src",
        "connector": "postgres",
    }
    assert pipeline["destination"]["connection_name"] == "warehouse"
    assert pipeline["owner_id"] == me["id"] and pipeline["tags"] == {"team": "data"}
    assert pipeline["streams"][0]["primary_key"] == ["id"]

    r = c.post(
        "/api/v1/pipelines", headers=h, json={**body, "name": "p_missing", "source": {"connection": "nope"}}
    )
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["source.connection"]

    # -- cursor pagination: 25 more pipelines, pages of 10
    for i in range(25):
        r = c.post("/api/v1/pipelines", headers=h, json={**body, "name": f"p_{i:02d}", "schedule": None})
        assert r.status_code == 201, r.text
    pages = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 10} | ({"cursor": cursor} if cursor else {})
        page = c.get("/api/v1/pipelines", params=params, headers=h).json()
        pages.append([p["name"] for p in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [10, 10, 6]
    names = [n for p in pages for n in p]
    assert names == ["orders_to_warehouse"] + [f"p_{i:02d}" for i in range(25)]
    assert len(_all(api, "/api/v1/connections", key, limit=2)) == 3

    # -- stream state: history, reset, rollback
    sp = f"/api/v1/pipelines/{pipeline['id']}/state"
    committed = []
    for run, value in (("run-1", "2024-01-01 00:00:00+00"), ("run-2", "2024-02-01 00:00:00+00")):
        state = {"cursor": {"field": "updated_at", "type": "timestamp[us, tz=UTC]", "value": value}}
        r = c.post(sp, headers=h, json={"stream": "public.orders", "state": state, "run_id": run})
        assert r.status_code == 201, r.text
        committed.append(r.json())
    r = c.post(f"{sp}/reset", headers=h, json={"streams": ["public.orders"]})
    assert r.status_code == 200 and r.json()[0]["state"] is None
    current = {s["stream"]: s["entry"] for s in c.get(sp, headers=h).json()}
    assert current["public.orders"]["kind"] == "reset" and current["public.not_there_yet"] is None
    r = c.post(f"{sp}/rollback", headers=h, json={"entry_id": committed[0]["id"]})
    assert r.status_code == 200, r.text
    current = {s["stream"]: s["entry"] for s in c.get(sp, headers=h).json()}
    assert current["public.orders"]["kind"] == "rollback"
    assert current["public.orders"]["state"] == committed[0]["state"]
    assert current["public.orders"]["rolled_back_to"] == committed[0]["id"]
    history = _all(api, f"{sp}/history", key, limit=2)
    assert [e["kind"] for e in history] == ["rollback", "reset", "commit", "commit"]

    # -- deletes: a connection in use is refused, a pipeline goes with its history
    r = c.delete(f"/api/v1/connections/{src['id']}", headers=h)
    assert r.status_code == 409 and "orders_to_warehouse" in r.json()["detail"]
    assert c.delete(f"/api/v1/pipelines/{pipeline['id']}", headers=h).status_code == 204
    assert c.get(f"/api/v1/pipelines/{pipeline['id']}", headers=h).status_code == 404
    assert c.delete(f"/api/v1/connections/{broken['id']}", headers=h).status_code == 204

    # -- the audit log has every write, with its outcome
    entries = _all(api, "/api/v1/audit", key, limit=50)
    seen = {(e["action"], e["outcome"], e["resource_id"]) for e in entries}
    expected = {
        ("connection:create", "success", src["id"]),
        ("connection:create", "success", warehouse["id"]),
        ("connection:update", "success", src["id"]),
        ("connection:check", "success", src["id"]),
        ("connection:check", "failure", broken["id"]),
        ("connection:discover", "success", src["id"]),
        ("pipeline:create", "success", pipeline["id"]),
        ("pipeline:create", "failure", None),
        ("pipeline:state_write", "success", pipeline["id"]),
        ("pipeline:state_reset", "success", pipeline["id"]),
        ("pipeline:state_rollback", "success", pipeline["id"]),
        ("connection:delete", "failure", src["id"]),
        ("pipeline:delete", "success", pipeline["id"]),
        ("connection:delete", "success", broken["id"]),
    }
    assert expected <= seen, expected - seen
    assert sum(e["action"] == "pipeline:create" and e["outcome"] == "success" for e in entries) == 26
    assert any(e["action"] == "api_key:create" and e["actor_name"].startswith("cli:") for e in entries)
    failed_check = next(e for e in entries if e["action"] == "connection:check" and e["outcome"] == "failure")
    assert decided(failed_check["detail"]) == {"status": 502, "type": "connector-unreachable"}
    assert all(e["actor_name"] == "ann" for e in entries if e["action"] != "api_key:create")
    # Reads are not audited.
    assert not any(e["action"].endswith((":read", ":list")) for e in entries)

    # Filters: action + outcome, resource, actor, time.
    r = c.get("/api/v1/audit", params={"action": "pipeline:create", "outcome": "failure"}, headers=h).json()
    assert len(r["items"]) == 1 and r["items"][0]["detail"]["status"] == 422
    r = c.get(
        "/api/v1/audit", params={"resource_type": "connection", "resource_id": src["id"]}, headers=h
    ).json()
    assert {e["action"] for e in r["items"]} == {
        "connection:create",
        "connection:update",
        "connection:check",
        "connection:discover",
        "connection:delete",
    }
    assert (
        len(c.get("/api/v1/audit", params={"actor": me["id"], "limit": 200}, headers=h).json()["items"])
        == len(entries) - 1
    )
    future = "2999-01-01T00:00:00Z"
    assert c.get("/api/v1/audit", params={"since": future}, headers=h).json()["items"] == []
    assert len(
        c.get("/api/v1/audit", params={"until": future, "limit": 200}, headers=h).json()["items"]
    ) == len(entries)

    # The database itself refuses to rewrite the audit log.
    with psycopg.connect(api.settings.database_url) as conn:
        for sql in (
            "UPDATE audit_log SET outcome = 'success'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
            conn.rollback()

    # -- no secret in any response or log line
    texts = "\n".join(api.seen)
    assert len(api.seen) > 50
    for secret in (PASSWORD, BAD_PASSWORD, api.settings.secret_key.get_secret_value()):  # type: ignore[union-attr]
        assert secret not in texts
        assert secret not in caplog.text
    assert "Traceback" not in texts
