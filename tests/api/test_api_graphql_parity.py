"""REST and GraphQL are one API: every REST operation has a GraphQL twin that gives the same data
and the same authorization outcome.

Both sides are enumerated from the app and the schema (a REST route without a GraphQL twin, or
without a case here, fails). Each operation is then called both ways as four callers: nobody
(401), another workspace (404 for its resources, its own data for its collections), a member of
the workspace whom the authorizer denies (403, with reasons naming the action and the resource
- the same for both, so both asked the same question), and the owner (the same data). The run
operations need a live Dagster: their cases are in test_api_dagster_e2e.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from api_support import Api, TestClient, bearer, cli_key, licensed, make_settings, pg_database
from dagster_stack import DenyInWorkspace
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parity_support import (
    RUN_OPERATIONS,
    CaseFn,
    GqlCall,
    Parity,
    RestCall,
    graphql_operations,
    rest_operations,
)

from api.app import create_app
from api.auth.authorizer import is_write
from api.graphql.types import INPUTS
from api.migrate import upgrade

pytestmark = pytest.mark.postgres


@dataclass
class World:
    api: Api
    deny: TestClient
    key_a: str
    key_b: str
    source: Path
    ids: dict[str, Any] = field(default_factory=dict)
    n: int = 0

    def fresh(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}_{self.n}"

    def connection(self) -> str:
        r = self.api.client.post(
            "/api/v1/connections",
            headers=bearer(self.key_a),
            json={"name": self.fresh("c"), "connector": "sqlite", "config": {"path": str(self.source)}},
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def pipeline(self) -> str:
        r = self.api.client.post(
            "/api/v1/pipelines",
            headers=bearer(self.key_a),
            json={
                "name": self.fresh("p"),
                "source": {"connection": "src"},
                "destination": {"connection": "src"},
                "streams": [{"name": "orders"}],
            },
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


@pytest.fixture(scope="module")
def world(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("parity")
    source = tmp / "source.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount REAL)")
        conn.execute("INSERT INTO orders VALUES (1, 2.5), (2, 4.0)")
    for url in pg_database(pg_server):
        # Licensed (every feature), so the enterprise operations (audit export) are reachable too.
        settings = licensed(make_settings(url, tmp / "home"), tmp)
        upgrade(settings.db_url)
        key_a = cli_key(settings, "acme", "ann", "team=data")
        key_b = cli_key(settings, "globex", "bob")
        with (
            TestClient(create_app(settings)) as client,
            TestClient(create_app(settings, authorizer=DenyInWorkspace())) as deny,
        ):
            w = World(Api(client, settings), deny, key_a, key_b, source)
            h = bearer(key_a)
            src = client.post(
                "/api/v1/connections",
                headers=h,
                json={"name": "src", "connector": "sqlite", "config": {"path": str(source)}},
            ).json()
            pid = w.pipeline()
            entry = client.post(
                f"/api/v1/pipelines/{pid}/state",
                headers=h,
                json={"stream": "orders", "state": {"extra": {"n": 1}}, "run_id": "r1"},
            ).json()
            w.ids = {"connection": src["id"], "pipeline": pid, "entry": entry["id"]}
            yield w


def _cases(w: World) -> dict[str, tuple[CaseFn, frozenset[str]]]:
    """operation -> (a function making its REST and GraphQL calls, keys to ignore)."""
    c, p, e = w.ids["connection"], w.ids["pipeline"], w.ids["entry"]
    new_ids = frozenset({"id", "name", "createdat", "updatedat", "committedat"})
    stream = {"name": "orders", "mode": "incremental_append", "cursor_field": "id"}
    gql_stream = {"name": "orders", "mode": "INCREMENTAL_APPEND", "cursorField": "id"}

    def same(rest: RestCall, gql: GqlCall) -> CaseFn:
        return lambda _w: (rest, gql)

    def new_pipeline(_w: World) -> tuple[RestCall, GqlCall]:
        body = {"source": {"connection": "src"}, "destination": {"connection": c}, "tags": {"team": "data"}}
        return RestCall(
            "POST", "/api/v1/pipelines", json={**body, "name": w.fresh("np"), "streams": [stream]}
        ), GqlCall({"input": {**body, "name": w.fresh("np"), "streams": [gql_stream]}})

    def new_connection(_w: World) -> tuple[RestCall, GqlCall]:
        body = {"connector": "sqlite", "config": {"path": str(w.source)}}
        return RestCall("POST", "/api/v1/connections", json={**body, "name": w.fresh("nc")}), GqlCall(
            {"input": {**body, "name": w.fresh("nc")}}
        )

    def on_fresh_connection(method: str, suffix: str, body: Any, gbody: Any | None) -> CaseFn:
        def make(_w: World) -> tuple[RestCall, GqlCall]:
            cid = w.connection()
            args: dict[str, Any] = {"id": cid}
            if gbody is not None:
                args["input"] = gbody
            return RestCall(method, f"/api/v1/connections/{cid}{suffix}", json=body), GqlCall(args)

        return make

    def on_fresh_pipeline(method: str, body: Any, gbody: Any | None) -> CaseFn:
        def make(_w: World) -> tuple[RestCall, GqlCall]:
            pid = w.pipeline()
            args: dict[str, Any] = {"id": pid}
            if gbody is not None:
                args["input"] = gbody
            return RestCall(method, f"/api/v1/pipelines/{pid}", json=body), GqlCall(args)

        return make

    nothing: frozenset[str] = frozenset()
    explain = {
        "principal": {"id": "someone", "roles": ["viewer"]},
        "action": "pipeline:read",
        "resource": {"type": "Pipeline", "id": p},
    }
    return {
        "me": (same(RestCall("GET", "/api/v1/me"), GqlCall()), nothing),
        "list_connectors": (
            same(RestCall("GET", "/api/v1/connectors", {"limit": 3}), GqlCall({"limit": 3})),
            nothing,
        ),
        "get_connector": (
            same(RestCall("GET", "/api/v1/connectors/sqlite"), GqlCall({"name": "sqlite"})),
            nothing,
        ),
        "list_connections": (
            same(
                RestCall("GET", "/api/v1/connections", {"connector": "sqlite"}),
                GqlCall({"connector": "sqlite"}),
            ),
            nothing,
        ),
        "get_connection": (same(RestCall("GET", f"/api/v1/connections/{c}"), GqlCall({"id": c})), nothing),
        "create_connection": (new_connection, new_ids),
        "update_connection": (
            on_fresh_connection(
                "PATCH", "", {"config": {"path": "/tmp/other.db"}}, {"config": {"path": "/tmp/other.db"}}
            ),
            new_ids,
        ),
        "delete_connection": (on_fresh_connection("DELETE", "", None, None), nothing),
        "check_connection": (
            same(RestCall("POST", f"/api/v1/connections/{c}/check"), GqlCall({"id": c})),
            frozenset({"seconds"}),
        ),
        "discover_connection": (
            same(RestCall("POST", f"/api/v1/connections/{c}/discover"), GqlCall({"id": c})),
            nothing,
        ),
        "list_pipelines": (
            same(RestCall("GET", "/api/v1/pipelines", {"limit": 200}), GqlCall({"limit": 200})),
            nothing,
        ),
        "get_pipeline": (same(RestCall("GET", f"/api/v1/pipelines/{p}"), GqlCall({"id": p})), nothing),
        "pipeline_status": (
            same(RestCall("GET", f"/api/v1/pipelines/{p}/status"), GqlCall({"id": p})),
            nothing,
        ),
        "create_pipeline": (new_pipeline, new_ids),
        "update_pipeline": (
            on_fresh_pipeline(
                "PATCH", {"schedule": "@daily", "batch_size": 500}, {"schedule": "@daily", "batchSize": 500}
            ),
            new_ids,
        ),
        "delete_pipeline": (on_fresh_pipeline("DELETE", None, None), nothing),
        "current_state": (
            same(RestCall("GET", f"/api/v1/pipelines/{p}/state"), GqlCall({"pipelineId": p})),
            nothing,
        ),
        "state_history": (
            same(
                RestCall("GET", f"/api/v1/pipelines/{p}/state/history", {"stream": "orders"}),
                GqlCall({"pipelineId": p, "stream": "orders"}),
            ),
            nothing,
        ),
        "record_state": (
            same(
                RestCall(
                    "POST",
                    f"/api/v1/pipelines/{p}/state",
                    json={"stream": "orders", "state": {"extra": {"n": 2}}},
                ),
                GqlCall({"pipelineId": p, "input": {"stream": "orders", "state": {"extra": {"n": 2}}}}),
            ),
            new_ids,
        ),
        "reset_state": (
            same(
                RestCall("POST", f"/api/v1/pipelines/{p}/state/reset", json={"streams": ["orders"]}),
                GqlCall({"pipelineId": p, "input": {"streams": ["orders"]}}),
            ),
            new_ids,
        ),
        "rollback_state": (
            same(
                RestCall("POST", f"/api/v1/pipelines/{p}/state/rollback", json={"entry_id": e}),
                GqlCall({"pipelineId": p, "input": {"entryId": e}}),
            ),
            new_ids,
        ),
        "get_license": (same(RestCall("GET", "/api/v1/license"), GqlCall()), nothing),
        "get_features": (same(RestCall("GET", "/api/v1/features"), GqlCall()), nothing),
        "get_policies": (same(RestCall("GET", "/api/v1/policies"), GqlCall()), nothing),
        "list_policy_versions": (
            same(RestCall("GET", "/api/v1/policies/versions", {"limit": 5}), GqlCall({"limit": 5})),
            nothing,
        ),
        # Without a license only the empty set can be stored (custom permits need `abac`).
        "update_policies": (
            same(
                RestCall("PUT", "/api/v1/policies", json={"text": "", "comment": "none yet"}),
                GqlCall({"input": {"text": "", "comment": "none yet"}}),
            ),
            frozenset({"version", "createdat"}),
        ),
        "explain_decision": (
            same(
                RestCall("POST", "/api/v1/policies/explain", json=explain),
                GqlCall({"input": explain}),
            ),
            frozenset({"decisionid", "text"}),
        ),
        "export_audit": (
            same(RestCall("GET", "/api/v1/audit/export"), GqlCall()),
            frozenset({"entries", "ndjson"}),  # the first export is in the second one's log
        ),
        "list_audit": (
            same(
                RestCall("GET", "/api/v1/audit", {"action": "pipeline:create", "limit": 5}),
                GqlCall({"action": "pipeline:create", "limit": 5}),
            ),
            nothing,
        ),
    }


def test_every_rest_operation_has_exactly_one_graphql_twin_and_a_case(world: World) -> None:
    rest = rest_operations(world.api.client.app)
    gql = graphql_operations()
    assert len(rest) >= 25  # the enumeration found the API
    assert set(rest) == set(gql), (
        f"REST without GraphQL: {sorted(set(rest) - set(gql))}; GraphQL without REST: {sorted(set(gql) - set(rest))}"
    )
    for name, r in rest.items():
        assert r.authorize.operation is gql[name][2], (
            f"{name}: REST and GraphQL authorize different operations"
        )
        assert r.authorize.action == gql[name][2].action
    covered = set(_cases(world)) | RUN_OPERATIONS
    assert covered == set(rest), f"operations without a parity case: {sorted(set(rest) - covered)}"


def test_graphql_inputs_mirror_the_rest_bodies() -> None:
    for gql_input, model in INPUTS.items():
        fields = set(gql_input.__dataclass_fields__)  # type: ignore[attr-defined]
        assert fields == set(model.model_fields), f"{gql_input.__name__} vs {model.__name__}"


#: The operations with a case above (the first test checks this is all of them but the runs).
CASES = (
    "me",
    "list_connectors",
    "get_connector",
    "list_connections",
    "get_connection",
    "create_connection",
    "update_connection",
    "delete_connection",
    "check_connection",
    "discover_connection",
    "list_pipelines",
    "get_pipeline",
    "create_pipeline",
    "update_pipeline",
    "delete_pipeline",
    "current_state",
    "state_history",
    "record_state",
    "reset_state",
    "rollback_state",
    "pipeline_status",
    "export_audit",
    "get_license",
    "get_features",
    "get_policies",
    "list_policy_versions",
    "update_policies",
    "explain_decision",
    "list_audit",
)


def test_the_case_list_is_complete(world: World) -> None:
    assert set(CASES) == set(_cases(world))


@pytest.mark.parametrize("op", CASES)
def test_same_data_and_same_authorization_outcome(world: World, op: str) -> None:
    parity, deny = Parity(world.api.client), Parity(world.deny)
    make, ignore = _cases(world)[op]
    ha, hb = bearer(world.key_a), bearer(world.key_b)
    # Nobody: 401 both ways.
    rest_call, gql_call = make(world)
    parity.compare(op, parity.rest(rest_call, {}), parity.gql(op, gql_call, {}))
    # Another workspace: 404 on the resource, or the same view of its own collection.
    rest_call, gql_call = make(world)
    parity.compare(op, parity.rest(rest_call, hb), parity.gql(op, gql_call, hb), ignore=ignore)
    # Denied inside the workspace: 403 with the same reasons (same action, same resource).
    rest_call, gql_call = make(world)
    r, g = deny.rest(rest_call, ha), deny.gql(op, gql_call, ha)
    assert r.status == 403, (op, r)
    deny.compare(op, r, g)
    # The owner: the same data (a write gets a fresh target for each side).
    rest_call, _ = make(world)
    _, gql_call = make(world)
    r = parity.rest(rest_call, ha)
    assert r.ok, (op, r)
    parity.compare(op, r, parity.gql(op, gql_call, ha), ignore=ignore)
    if is_write(rest_operations(world.api.client.app)[op].authorize.action):
        # both writes left the same trace in the audit log
        log = world.api.client.get("/api/v1/audit", params={"limit": 2}, headers=ha).json()["items"]
        assert [(x["action"], x["outcome"]) for x in log] == [(log[0]["action"], "success")] * 2, (op, log)
        assert log[0]["action"] == rest_operations(world.api.client.app)[op].authorize.action


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    op=st.sampled_from(CASES),
    roles=st.sets(st.sampled_from(["viewer", "editor", "admin", "auditor"])),
    team=st.sampled_from(["data", "finance"]),
)
def test_rest_and_graphql_give_the_same_decision_for_any_principal(
    world: World, op: str, roles: set[str], team: str
) -> None:
    """Property: whatever the principal's attributes, an operation is allowed or denied the same
    way over REST and GraphQL - same status, problem type and reasons, or the same data - under the
    real policy engine (community roles)."""
    name = world.fresh("p")
    key = cli_key(world.api.settings, "acme", name, f"team={team}", "roles=" + ",".join(sorted(roles)))
    parity = Parity(world.api.client)
    make, ignore = _cases(world)[op]
    rest_call, _ = make(world)
    _, gql_call = make(world)
    h = bearer(key)
    parity.compare(op, parity.rest(rest_call, h), parity.gql(op, gql_call, h), ignore=ignore)
