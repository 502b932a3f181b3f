"""No route is unguarded and no workspace sees another's resources.

Routes are enumerated from the app itself, so a route added later without ``Authorize`` fails
here: every non-public route answers 401 without a key, carries the ``Authorize`` dependency,
and answers 404 when another workspace's key names a resource that is not theirs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from api_support import Api, TestClient, bearer, cli_key, make_settings
from fastapi.routing import APIRoute, iter_route_contexts

from api.app import PUBLIC_PATHS, create_app
from api.auth.authorizer import Decision, Resource, Subject
from api.auth.dependencies import AuthorizeDependency
from api.migrate import upgrade

pytestmark = pytest.mark.postgres


@dataclass
class World:
    api: Api
    key_a: str
    key_b: str
    ids: dict[str, str]


@pytest.fixture(scope="module")
def world(module_api: Api) -> World:
    c = module_api.client
    key_a = cli_key(module_api.settings, "acme", "ann", "roles=admin")
    key_b = cli_key(module_api.settings, "globex", "bob", "roles=admin")
    h = bearer(key_a)
    conn = c.post(
        "/api/v1/connections",
        headers=h,
        json={"name": "a_src", "connector": "sqlite", "config": {"path": "/tmp/a.db"}},
    ).json()
    pipe = c.post(
        "/api/v1/pipelines",
        headers=h,
        json={
            "name": "a_pipe",
            "source": {"connection": "a_src"},
            "destination": {"connection": "a_src"},
            "streams": [{"name": "t"}],
        },
    ).json()
    state = c.post(
        f"/api/v1/pipelines/{pipe['id']}/state",
        headers=h,
        json={"stream": "t", "state": {"extra": {"n": 1}}, "run_id": "r1"},
    ).json()
    return World(
        module_api,
        key_a,
        key_b,
        {"connection_id": conn["id"], "pipeline_id": pipe["id"], "entry": state["id"]},
    )


def guarded_routes(app: Any) -> list[tuple[str, str, APIRoute]]:
    out = []
    for ctx in iter_route_contexts(app.routes):
        route = ctx.original_route
        if not isinstance(route, APIRoute) or ctx.path_format in PUBLIC_PATHS:
            continue
        for method in sorted(ctx.methods or ()):
            out.append((method, str(ctx.path_format), route))
    return out


def _fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), "postgres"), path)


def _body(method: str) -> dict[str, Any] | None:
    return {} if method in ("POST", "PATCH", "PUT") else None


def test_every_route_but_the_public_ones_requires_a_key(world: World) -> None:
    c = world.api.client
    routes = guarded_routes(c.app)
    assert len(routes) >= 20  # the enumeration found the API, not an empty list
    for method, path, _ in routes:
        url = _fill(path, world.ids)
        for headers in (
            {},
            {"Authorization": "Bearer of_000000000000_" + "x" * 43},
            {"Authorization": "Basic Zm9vOmJhcg=="},
        ):
            r = c.request(method, url, headers=headers, json=_body(method))
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert r.headers["www-authenticate"].startswith("Bearer")
    # The public ones answer without one (readiness: 503 here, as no Dagster runs in this test).
    for path in ("/healthz", "/metrics", "/openapi.json", "/docs", "/graphql"):
        assert c.get(path).status_code == 200, path
    assert c.get("/readyz").json()["checks"]["database"] == "ok"


def _has_authorize(dependant: Any) -> bool:
    return any(isinstance(d.call, AuthorizeDependency) or _has_authorize(d) for d in dependant.dependencies)


def test_every_guarded_route_goes_through_authorize(world: World) -> None:
    missing = [
        f"{m} {p}"
        for m, p, route in guarded_routes(world.api.client.app)
        if not _has_authorize(route.dependant)
    ]
    assert not missing, f"routes without Authorize(...): {missing}"


def test_another_workspace_gets_404_for_every_resource_route(world: World) -> None:
    c = world.api.client
    hb = bearer(world.key_b)
    with_ids = [(m, p) for m, p, _ in guarded_routes(c.app) if "{connection_id}" in p or "{pipeline_id}" in p]
    assert len(with_ids) >= 12
    bodies: dict[str, dict[str, Any]] = {
        "/state/rollback": {"entry_id": int(world.ids["entry"])},
        "/state/reset": {},
        "/state": {"stream": "t", "state": {}},
    }
    for method, path in with_ids:
        body = (
            next((b for suffix, b in bodies.items() if path.endswith(suffix)), {})
            if method in ("POST", "PATCH")
            else None
        )
        r = c.request(method, _fill(path, world.ids), headers=hb, json=body)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["type"] == "https://openfuse.dev/problems/not-found"
    # Nothing of A's moved.
    ha = bearer(world.key_a)
    assert c.get(f"/api/v1/connections/{world.ids['connection_id']}", headers=ha).json()["name"] == "a_src"
    history = c.get(f"/api/v1/pipelines/{world.ids['pipeline_id']}/state/history", headers=ha).json()["items"]
    assert [e["kind"] for e in history] == ["commit"]


def test_lists_and_references_stay_inside_the_workspace(world: World) -> None:
    c = world.api.client
    hb = bearer(world.key_b)
    assert c.get("/api/v1/connections", headers=hb).json()["items"] == []
    assert c.get("/api/v1/pipelines", headers=hb).json()["items"] == []
    # A's connection, by id or by name, does not exist for B.
    for ref in (world.ids["connection_id"], "a_src"):
        r = c.post(
            "/api/v1/pipelines",
            headers=hb,
            json={
                "name": "steal",
                "source": {"connection": ref},
                "destination": {"connection": ref},
                "streams": [{"name": "t"}],
            },
        )
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "source.connection"
    # B's denied attempts are in B's audit log as denied, and not in A's.
    b_audit = c.get("/api/v1/audit", params={"outcome": "denied", "limit": 200}, headers=hb).json()["items"]
    assert {e["resource_id"] for e in b_audit} >= {world.ids["connection_id"], world.ids["pipeline_id"]}
    a_audit = c.get("/api/v1/audit", params={"limit": 200}, headers=bearer(world.key_a)).json()["items"]
    assert all(e["actor_name"] != "bob" for e in a_audit)


def test_a_revoked_key_is_refused(world: World) -> None:
    c = world.api.client
    key = cli_key(world.api.settings, "acme", "temp")
    assert c.get("/api/v1/me", headers=bearer(key)).status_code == 200
    prefix = key.split("_")[1]
    with psycopg.connect(world.api.settings.database_url, autocommit=True) as conn:
        conn.execute("UPDATE api_key SET revoked_at = now() WHERE prefix = %s", (prefix,))
    r = c.get("/api/v1/me", headers=bearer(key))
    assert r.status_code == 401 and "not valid" in r.json()["detail"]
    # The stored hash is not the secret.
    with psycopg.connect(world.api.settings.database_url) as conn:
        (stored,) = conn.execute("SELECT secret_hash FROM api_key WHERE prefix = %s", (prefix,)).fetchone()  # type: ignore[misc]
    assert key.split("_", 2)[2] not in stored and stored.startswith("hmac-sha256$")


class DenyDeletes:
    """An authorizer (as the policy engine will be) that forbids deletes inside the workspace."""

    def decide(self, principal: Subject, action: str, resource: Resource) -> Decision:
        if resource.workspace_id != principal.workspace_id:
            return Decision(False, ("other workspace",))
        if action.endswith(":delete"):
            return Decision(False, ("policy no-deletes forbids it",))
        return Decision(True, ("policy allow-all",))


@pytest.fixture
def deny_deletes_api(pg_db: str, tmp_path: Path) -> Iterator[Api]:
    settings = make_settings(pg_db, tmp_path / "home")
    upgrade(settings.db_url)
    with TestClient(create_app(settings, authorizer=DenyDeletes())) as client:
        yield Api(client, settings)


def test_a_denial_inside_the_workspace_is_403_with_reasons_and_audited(deny_deletes_api: Api) -> None:
    c = deny_deletes_api.client
    h = bearer(cli_key(deny_deletes_api.settings, "acme", "ann"))
    conn = c.post(
        "/api/v1/connections",
        headers=h,
        json={"name": "x", "connector": "sqlite", "config": {"path": "/tmp/x.db"}},
    ).json()
    r = c.delete(f"/api/v1/connections/{conn['id']}", headers=h)
    assert r.status_code == 403
    assert r.json()["type"] == "https://openfuse.dev/problems/forbidden"
    assert r.json()["reasons"] == ["policy no-deletes forbids it"]
    assert c.get(f"/api/v1/connections/{conn['id']}", headers=h).status_code == 200
    denied = c.get("/api/v1/audit", params={"outcome": "denied"}, headers=h).json()["items"]
    assert [(e["action"], e["resource_id"], e["detail"]) for e in denied] == [
        ("connection:delete", conn["id"], {"reasons": ["policy no-deletes forbids it"]})
    ]
