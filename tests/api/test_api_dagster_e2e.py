"""The API and Dagster for real (the session's ``dagster_stack``: a PostgreSQL metadata DB,
PostgreSQL source and destination databases, and a ``dagster-webserver`` subprocess loading
``-m openfuse_dagster.definitions`` from the folder the API exports pipelines to).

The stack's connections are created through the API before the webserver starts: the Dagster
processes get their secrets as environment variables when they start
(``OPENFUSE_SECRET_<CONNECTION>_<FIELD>``, from ``api.pipeline_export.secret_environment``), as a
production deployment gives them from its secret store. Here: discover, create a pipeline, the
API exports it and reloads the code location, a run is launched through the API, Dagster runs
it, the API reports SUCCESS with the row counts of the materializations, and the rows are in
the destination. The DSN's password (ignored by the server's trust auth) is hunted for
everywhere: responses, the exported files, Dagster's storage.
"""

from __future__ import annotations

import hashlib
import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from api_support import bearer, cli_key, decided
from dagster_stack import LOCATION, MASKING_SALT, PASSWORD, REPOSITORY, STACK_ROWS, Stack, wait_for
from parity_support import RUN_OPERATIONS, GqlCall, Parity, RestCall

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ORDERS, CUSTOMERS, EVENTS = STACK_ROWS
FINISHED = {"success", "failure", "canceled"}


@pytest.fixture(scope="module")
def stack(dagster_stack: Stack) -> Stack:
    return dagster_stack


@pytest.fixture(scope="module")
def orders_pipeline(stack: Stack) -> tuple[str, str]:
    """The pipeline of the main flow, created through the API: (id, Dagster job name)."""
    r = stack.c.post(
        "/api/v1/pipelines",
        headers=bearer(stack.key_a),
        json={
            "name": "orders_to_wh",
            "source": {"connection": "src"},
            "destination": {"connection": "warehouse"},
            "streams": [
                {
                    "name": "public.orders",
                    "mode": "incremental_dedupe",
                    "cursor_field": "updated_at",
                    "primary_key": ["id"],
                },
                {"name": "public.customers"},
            ],
            "tags": {"team": "data", "retries": "0"},
        },
    )
    assert r.status_code == 201, r.text
    (path,) = stack.api.settings.pipelines_dir.glob("api_orders_to_wh__*.yaml")
    return r.json()["id"], path.stem.removeprefix("api_")


def test_readiness_checks_dagster_too(stack: Stack) -> None:
    r = stack.c.get("/readyz")
    assert r.status_code == 200 and r.json() == {
        "status": "ready",
        "checks": {"database": "ok", "dagster": "ok"},
    }


def test_a_pipeline_created_through_the_api_runs_on_dagster(
    stack: Stack, orders_pipeline: tuple[str, str]
) -> None:
    c, h, hb = stack.c, bearer(stack.key_a), bearer(stack.key_b)
    pid, job = orders_pipeline
    src = stack.ids["src"]
    assert c.post(f"/api/v1/connections/{src}/check", headers=h).json()["ok"] is True
    discovered = {
        s["name"] for s in c.post(f"/api/v1/connections/{src}/discover", headers=h).json()["streams"]
    }
    assert {"public.orders", "public.customers", "public.events"} <= discovered

    # Exported with the secrets as environment references, and loaded by Dagster (the API asked
    # for the reload in the background).
    text = (stack.api.settings.pipelines_dir / f"api_{job}.yaml").read_text()
    assert f"${{OPENFUSE_SECRET_{uuid.UUID(src).hex.upper()}_DSN}}" in text
    assert PASSWORD not in text and stack.source.rsplit("/", 1)[1] not in text
    wait_for(f"Dagster to load job {job}", lambda: job in stack.dagster.jobs(), 60)

    # Launch with an idempotency key; the same key and body again is the same run.
    key = f"launch-{uuid.uuid4()}"
    r = c.post(f"/api/v1/pipelines/{pid}/runs", headers={**h, "Idempotency-Key": key}, json={})
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["job_name"] == job and run["pipeline_id"] == pid
    assert run["streams"] == ["public.orders", "public.customers"]
    assert [s["key"] for s in run["steps"]] == [f"{job}__orders", f"{job}__customers"]
    me = c.get("/api/v1/me", headers=h).json()
    assert run["launched_by"] == me["id"] and run["tags"]["openfuse/workspace"] == me["workspace"]["id"]
    again = c.post(f"/api/v1/pipelines/{pid}/runs", headers={**h, "Idempotency-Key": key}, json={})
    assert again.status_code == 201 and again.json()["id"] == run["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = c.post(
        f"/api/v1/pipelines/{pid}/runs",
        headers={**h, "Idempotency-Key": key},
        json={"streams": ["public.orders"]},
    )
    assert other.status_code == 409 and other.json()["type"].endswith("/idempotency-key-reused")

    final = stack.wait_run(run["id"])
    assert final["status"] == "success", final
    steps = {s["stream"]: s for s in final["steps"]}
    assert (
        steps["public.orders"]["rows_written"] == ORDERS
        and steps["public.customers"]["rows_written"] == CUSTOMERS
    )
    assert final["rows_written"] == ORDERS + CUSTOMERS
    assert all(s["status"] == "success" and s["attempts"] == 1 for s in final["steps"])
    (mat,) = steps["public.orders"]["materializations"]
    # API pipelines' assets are namespaced by workspace, so two tenants' tables never collide.
    ws = job.rpartition("__")[2]
    assert mat["asset_key"] == [f"ws_{ws}", "postgres", "analytics", "orders"]
    assert mat["metadata"]["rows_read"] == ORDERS and mat["metadata"]["cursor_field"] == "updated_at"

    # The data is in the destination.
    with psycopg.connect(stack.destination) as conn:
        assert conn.execute("SELECT count(*), sum(amount) FROM analytics.orders").fetchone() == (
            ORDERS,
            Decimal("1.25") * ORDERS * (ORDERS + 1) / 2,
        )
        assert conn.execute("SELECT count(*) FROM analytics.customers").fetchone() == (CUSTOMERS,)

    # GraphQL's polling field says the same.
    g = stack.gql(
        "query($id: UUID!) { run(id: $id) { status steps { key status rowsWritten } } }", {"id": run["id"]}
    )
    assert g["run"] == {
        "status": "SUCCESS",
        "steps": [
            {"key": f"{job}__orders", "status": "SUCCESS", "rowsWritten": ORDERS},
            {"key": f"{job}__customers", "status": "SUCCESS", "rowsWritten": CUSTOMERS},
        ],
    }

    # The event log, the lists, and nothing for another workspace.
    events = c.get(f"/api/v1/runs/{run['id']}/events", params={"limit": 200}, headers=h).json()
    types = {e["type"] for e in events["items"]}
    assert {"RUN_START", "STEP_SUCCESS", "ASSET_MATERIALIZATION", "RUN_SUCCESS"} <= types, types
    tail = c.get(f"/api/v1/runs/{run['id']}/events", params={"cursor": events["cursor"]}, headers=h).json()
    assert tail["items"] == [] and tail["has_more"] is False
    listed = c.get("/api/v1/runs", params={"pipeline_id": pid}, headers=h).json()["items"]
    assert run["id"] in [x["id"] for x in listed]
    assert run["id"] in [
        x["id"] for x in c.get("/api/v1/runs", params={"status": "success"}, headers=h).json()["items"]
    ]
    assert c.get("/api/v1/runs", params={"status": "failure"}, headers=h).json()["items"] == []
    assert c.get(f"/api/v1/runs/{run['id']}", headers=hb).status_code == 404
    assert c.get("/api/v1/runs", headers=hb).json()["items"] == []
    assert c.get("/api/v1/runs", params={"pipeline_id": pid}, headers=hb).json()["items"] == []

    # The launch and the replay are audited; the secret is nowhere.
    audit = c.get("/api/v1/audit", params={"action": "pipeline:run"}, headers=h).json()["items"]
    assert [(e["outcome"], e["detail"].get("replayed", False)) for e in audit[:3]] == [
        ("failure", False),  # the key reused with another body
        ("success", True),
        ("success", False),
    ]
    assert decided(audit[0]["detail"]) == {"status": 409, "type": "idempotency-key-reused"}
    assert PASSWORD not in "\n".join(stack.api.seen)
    for folder in (stack.dagster.home, stack.api.settings.pipelines_dir):
        for f in folder.rglob("*"):
            if f.is_file():
                assert PASSWORD.encode() not in f.read_bytes(), f"the secret is in {f}"


def test_a_run_started_in_dagster_shows_up_in_the_api(stack: Stack, orders_pipeline: tuple[str, str]) -> None:
    pid, job = orders_pipeline
    h = bearer(stack.key_a)
    data = stack.dagster.graphql(  # as the Dagster UI launches: no OpenFuse tags
        "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename "
        "... on LaunchRunSuccess { run { runId } } } }",
        {
            "p": {
                "selector": {
                    "repositoryLocationName": LOCATION,
                    "repositoryName": REPOSITORY,
                    "jobName": job,
                    "solidSelection": [f"{job}__customers"],
                },
                "runConfigData": {},
            }
        },
    )
    run_id = data["launchRun"]["run"]["runId"]
    final = stack.wait_run(run_id)
    assert final["status"] == "success" and final["pipeline_id"] == pid and final["launched_by"] is None
    assert final["streams"] == ["public.customers"] and final["rows_written"] == CUSTOMERS
    assert run_id in [
        x["id"] for x in stack.c.get("/api/v1/runs", params={"pipeline_id": pid}, headers=h).json()["items"]
    ]
    assert stack.c.get(f"/api/v1/runs/{run_id}", headers=bearer(stack.key_b)).status_code == 404


def _slow_pipeline(stack: Stack) -> str:
    r = stack.c.post(
        "/api/v1/pipelines",
        headers=bearer(stack.key_a),
        json={
            "name": "slow_events",
            "source": {"connection": "src"},
            "destination": {"connection": "warehouse"},
            "batch_size": 5,
            "tags": {"retries": "0"},
            "streams": [
                {
                    "name": "public.events",
                    "transforms": [{"type": "python", "callable": "dagster_transforms:hold"}],
                }
            ],
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _events(stack: Stack, run_id: str) -> str:
    """A run's Dagster events, one per line, for an assertion's message."""
    page = stack.c.get(
        f"/api/v1/runs/{run_id}/events", params={"limit": 200}, headers=bearer(stack.key_a)
    ).json()
    return "\n".join(f"{e['type']} {e.get('step_key') or ''} {e['message'][:200]}" for e in page["items"])


def test_cancel_a_running_run_both_ways(stack: Stack) -> None:
    pid = _slow_pipeline(stack)
    c, h = stack.c, bearer(stack.key_a)
    parity = Parity(c)
    for old in stack.hold.parent.glob(f"{stack.hold.name}.reached.*"):
        old.unlink()
    stack.hold.touch()  # the runs wait in their transform until this file is gone
    try:
        launched = [c.post(f"/api/v1/pipelines/{pid}/runs", headers=h).json() for _ in range(2)]
        assert all(r["status"] not in FINISHED for r in launched), launched
        # The runs load the same stream, so one step waits in the transform and the other for
        # the first one's load lock (in PostgreSQL): cancelled when the first is in the transform.
        wait_for(
            "a run's step to reach the held transform",
            lambda: any(stack.hold.parent.glob(f"{stack.hold.name}.reached.*")),
            120,
        )
        for r in launched:  # (a cancel waits up to 15 s for a starting run; a loaded host may need more)
            wait_for(
                f"run {r['id']} to start",
                lambda r=r: c.get(f"/api/v1/runs/{r['id']}", headers=h).json()["status"] == "started",
                120,
            )
        rest = parity.rest(RestCall("POST", f"/api/v1/runs/{launched[0]['id']}/cancel"), h)
        gql = parity.gql("cancel_run", GqlCall({"id": launched[1]["id"]}), h)
        parity.compare(
            "cancel_run", rest, gql, ignore=frozenset({"id", "createdat", "startedat", "endedat", "status"})
        )
        assert rest.ok, rest
        assert rest.data["status"] in ("canceling", "canceled")
        for r in launched:
            final = stack.wait_run(r["id"])
            assert final["status"] == "canceled", _events(stack, r["id"])
    finally:
        stack.hold.unlink(missing_ok=True)
    # Cancelled mid-load: nothing of it was committed.
    with psycopg.connect(stack.destination) as conn:
        (table,) = conn.execute("SELECT to_regclass('analytics.events')").fetchone()  # type: ignore[misc]
        if table is not None:
            assert conn.execute("SELECT count(*) FROM analytics.events").fetchone() == (0,)
    # Cancelling a finished run is a conflict.
    again = c.post(f"/api/v1/runs/{launched[0]['id']}/cancel", headers=h)
    assert again.status_code == 409 and "already finished (canceled)" in again.json()["detail"]


def test_run_operations_give_the_same_answers_over_rest_and_graphql(
    stack: Stack, orders_pipeline: tuple[str, str]
) -> None:
    pid, _ = orders_pipeline
    c, ha, hb = stack.c, bearer(stack.key_a), bearer(stack.key_b)
    parity, deny = Parity(c), Parity(stack.deny)
    launched: dict[str, str] = {}

    def launch() -> tuple[RestCall, GqlCall]:
        return (
            RestCall("POST", f"/api/v1/pipelines/{pid}/runs", json={"streams": ["public.customers"]}),
            GqlCall({"pipelineId": pid, "input": {"streams": ["public.customers"]}}),
        )

    def finished_run() -> str:
        if "run" not in launched:
            launched["run"] = c.get(
                "/api/v1/runs", params={"pipeline_id": pid, "status": "success"}, headers=ha
            ).json()["items"][0]["id"]
        return launched["run"]

    cases = {
        "launch_run": (launch, frozenset({"id", "createdat", "startedat", "endedat", "status"})),
        "list_runs": (
            lambda: (RestCall("GET", "/api/v1/runs", {"pipeline_id": pid}), GqlCall({"pipelineId": pid})),
            frozenset(),
        ),
        "get_run": (
            lambda: (RestCall("GET", f"/api/v1/runs/{finished_run()}"), GqlCall({"id": finished_run()})),
            frozenset(),
        ),
        "list_run_events": (
            lambda: (
                RestCall("GET", f"/api/v1/runs/{finished_run()}/events", {"limit": 20}),
                GqlCall({"id": finished_run(), "limit": 20}),
            ),
            frozenset(),
        ),
        # Finished: a 409 both ways (a live cancel is test_cancel_a_running_run_both_ways).
        "cancel_run": (
            lambda: (
                RestCall("POST", f"/api/v1/runs/{finished_run()}/cancel"),
                GqlCall({"id": finished_run()}),
            ),
            frozenset(),
        ),
    }
    assert set(cases) == RUN_OPERATIONS
    for op, (make, ignore) in cases.items():
        rest_call, gql_call = make()
        parity.compare(op, parity.rest(rest_call, {}), parity.gql(op, gql_call, {}))
        parity.compare(op, parity.rest(rest_call, hb), parity.gql(op, gql_call, hb), ignore=ignore)
        r, g = deny.rest(rest_call, ha), deny.gql(op, gql_call, ha)
        assert r.status == 403, (op, r)
        deny.compare(op, r, g)
        r, g = parity.rest(rest_call, ha), parity.gql(op, gql_call, ha)
        parity.compare(op, r, g, ignore=ignore)
        if op == "launch_run":  # let both runs finish, so the reads below compare settled data
            for side in (r, g):
                assert side.ok, side
                stack.wait_run(side.data["id"])


def test_a_pipeline_dagster_cannot_load_is_409_with_dagsters_reason(stack: Stack) -> None:
    """A connection made after the Dagster processes started: its secret is not in their
    environment, so the code location reports the pipeline broken - and the launch says why."""
    c, h = stack.c, bearer(stack.key_a)
    r = c.post(
        "/api/v1/connections",
        headers=h,
        json={
            "name": "late",
            "connector": "postgres",
            "config": {"dsn": "postgresql://u:pw-late@127.0.0.1/x"},
        },
    )
    assert r.status_code == 201, r.text
    late = r.json()["id"]
    r = c.post(
        "/api/v1/pipelines",
        headers=h,
        json={
            "name": "too_late",
            "source": {"connection": "late"},
            "destination": {"connection": "warehouse"},
            "streams": [{"name": "public.orders", "destination_table": "late_orders"}],
        },
    )
    assert r.status_code == 201, r.text
    r = c.post(f"/api/v1/pipelines/{r.json()['id']}/runs", headers=h)
    assert r.status_code == 409 and r.json()["type"].endswith("/pipeline-not-loaded"), r.text
    (reason,) = r.json()["reasons"]
    assert f"OPENFUSE_SECRET_{uuid.UUID(late).hex.upper()}_DSN" in reason and "pw-late" not in r.text


def test_a_masking_obligation_stored_through_the_api_hashes_pii_in_the_destination(stack: Stack) -> None:
    """Governance end to end: a policy stored through the API obliges hashing `pii` columns for the
    data team without clearance; a run launched through the API for ann's pipeline lands the
    column hashed, the same run for cleo (cleared for pii) lands it plain, and each sync step's
    decision is in the materialization metadata and in the API's audit log under one id."""
    c, h = stack.c, bearer(stack.key_a)
    cleo = bearer(cli_key(stack.api.settings, "acme", "cleo", "team=data", "roles=editor", "clearance=pii"))
    policy = (
        '@id("data-team-sees-pii-hashed")\n@obligation("hash:pii")\n'
        'permit (principal, action == Action::"dataset:read", resource is Dataset)\n'
        'when { principal.team == "data" && !principal.clearance.contains("pii") && '
        'resource.column_tags.contains("pii") };\n'
    )
    r = c.put("/api/v1/policies", headers=h, json={"text": policy, "comment": "pii hashed for the data team"})
    assert r.status_code == 200 and r.json()["active"] is True, r.text

    def launch(headers: dict[str, str], table: str) -> dict[str, Any]:
        r = c.post("/api/v1/pipelines", headers=headers, json={
            "name": f"customers_{table}", "source": {"connection": "src"}, "destination": {"connection": "warehouse"},
            "streams": [{"name": "public.customers", "destination_table": table, "column_tags": {"name": ["pii"]}}],
        })  # fmt: skip
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        (path,) = stack.api.settings.pipelines_dir.glob(f"api_customers_{table}__*.yaml")
        job = path.stem.removeprefix("api_")
        wait_for(f"Dagster to load job {job}", lambda: job in stack.dagster.jobs(), 60)
        run = c.post(f"/api/v1/pipelines/{pid}/runs", headers=headers, json={})
        assert run.status_code == 201, run.text
        final = stack.wait_run(run.json()["id"])
        assert final["status"] == "success", final
        (step,) = final["steps"]
        (mat,) = step["materializations"]
        return dict(mat["metadata"])

    masked, plain = launch(h, "customers_masked"), launch(cleo, "customers_plain")
    with psycopg.connect(stack.destination) as conn:
        hashed = dict(conn.execute("SELECT id, name FROM analytics.customers_masked").fetchall())
        clear = dict(conn.execute("SELECT id, name FROM analytics.customers_plain").fetchall())
    assert clear == {i: f"c{i}" for i in range(1, CUSTOMERS + 1)}
    assert hashed == {i: hashlib.sha256(f"{MASKING_SALT}c{i}".encode()).hexdigest() for i in clear}
    assert masked["policy_columns"] == {"name": "hash"} and plain["policy_columns"] == {}
    assert "data-team-sees-pii-hashed" in masked["policy_allowed_by"]
    # The decisions of both steps are in the audit log, under the ids the metadata shows.
    audit = c.get("/api/v1/audit", headers=h, params={"action": "dataset:read", "limit": 50}).json()["items"]
    by_id = {e["detail"]["decision_id"]: e for e in audit}
    entry = by_id[masked["policy_decision_read"]]
    assert entry["outcome"] == "success" and entry["detail"]["obligations"] == ["hash:pii"]
    assert entry["detail"]["stream"] == "public.customers" and entry["resource_type"] == "dataset"
    assert by_id[plain["policy_decision_read"]]["detail"]["obligations"] == []
    assert MASKING_SALT not in str(masked) + str(audit)
    # Put the workspace back as the other tests expect it.
    assert c.put("/api/v1/policies", headers=h, json={"text": ""}).status_code == 200
