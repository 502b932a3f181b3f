"""Schemathesis against the API's own contracts, in-process (ASGI), wired to the live Dagster
webserver of the session's ``dagster_stack`` so the run routes answer for real.

* REST: every operation of ``/openapi.json``, with valid (positive) and invalid (negative) data,
  half of the cases on resources that exist (a connection, a pipeline, a run, a connector) and
  half on random ids. No 5xx, and every response conforms to the document (status code, content
  type, body schema).
* GraphQL: every root field of the schema, with generated queries and arguments. No 5xx, and
  every error is either a GraphQL validation error or a problem below 500 (no masked internal
  error).

Seeded (derandomized) and bounded: a handful of examples per operation. Launching a run is
fuzzed on random pipeline ids only (a real launch would start a Dagster run worker per case);
GraphQL arguments are always generated (ids are random).
"""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

import graphql
import pytest
import schemathesis
from api_support import bearer
from dagster_stack import Stack
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.graphql import nodes
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

EXAMPLES = 6
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,  # seeded: the same cases on every run
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
NO_FIXED_IDS = {"POST /api/v1/pipelines/{pipeline_id}/runs"}


def _node(value: Any) -> graphql.ValueNode:
    if isinstance(value, dict):
        return nodes.Object(
            [
                graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=_node(v))
                for k, v in value.items()
            ]
        )
    if isinstance(value, list):
        return nodes.List([_node(v) for v in value])
    if value is None:
        return nodes.Null
    if isinstance(value, bool):
        return nodes.Boolean(value)
    if isinstance(value, int):
        return nodes.Int(value)
    if isinstance(value, float):
        return nodes.Float(value)
    return nodes.String(value)


_names = st.from_regex(r"\A[a-z_][a-z0-9_]{0,8}\Z")
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_names, inner, max_size=3),
    max_leaves=6,
)
schemathesis.graphql.scalar("JSON", st.dictionaries(_names, _json, max_size=4).map(_node))
schemathesis.graphql.scalar("Long", st.integers(-(2**63), 2**63 - 1).map(nodes.Int))


@pytest.fixture(scope="module")
def fixed_ids(dagster_stack: Stack) -> dict[str, str]:
    """Resources of their own for the fuzzer (it may rename or delete them), and a real run."""
    c, h = dagster_stack.c, bearer(dagster_stack.key_a)
    db = dagster_stack.tmp / "fuzz.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY)")
    conn_id = c.post(
        "/api/v1/connections",
        headers=h,
        json={"name": f"fuzz_{uuid.uuid4().hex[:6]}", "connector": "sqlite", "config": {"path": str(db)}},
    ).json()["id"]
    pipe = c.post(
        "/api/v1/pipelines",
        headers=h,
        json={
            "name": f"fuzz_{uuid.uuid4().hex[:6]}",
            "source": {"connection": conn_id},
            "destination": {"connection": conn_id},
            "streams": [{"name": "t"}],
        },
    ).json()
    runs = c.get("/api/v1/runs", headers=h).json()["items"]
    return {
        "connection_id": conn_id,
        "pipeline_id": pipe["id"],
        "run_id": runs[0]["id"] if runs else str(uuid.uuid4()),
        "name": "sqlite",
    }


def test_rest_operations_answer_as_documented(dagster_stack: Stack, fixed_ids: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", dagster_stack.c.app)
    headers = bearer(dagster_stack.key_a)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        op = result.ok()
        operations += 1
        params = {p.name for p in op.path_parameters}
        strategies = []
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategies.append(op.as_strategy(mode))
            if params and op.label not in NO_FIXED_IDS:
                strategies.append(op.as_strategy(mode, path_parameters={k: fixed_ids[k] for k in params}))

        @FUZZ
        @given(case=st.one_of(strategies))
        def check(case: Any) -> None:
            response = case.call(headers=headers)
            case.validate_response(response, checks=CHECKS, headers=headers)

        try:
            check()
        except BaseException as e:  # schemathesis raises exception groups
            if not params and "Unable to satisfy assumptions" in str(e):
                continue  # an operation without inputs has no invalid (negative) case to make
            failures.append(f"{op.label}: {e}")
    documented = dagster_stack.c.get("/openapi.json").json()["paths"]
    assert operations == sum(len(item) for item in documented.values()) >= 29
    assert not failures, "\n\n".join(failures)


def test_graphql_fields_never_fail_with_a_server_error(dagster_stack: Stack) -> None:
    schema = schemathesis.graphql.from_asgi("/graphql", dagster_stack.c.app)
    headers = bearer(dagster_stack.key_a)
    failures: list[str] = []
    fields = 0
    for result in schema.get_all_operations():
        op = result.ok()
        fields += 1

        @FUZZ
        @given(case=op.as_strategy())
        def check(case: Any) -> None:
            response = case.call(headers=headers)
            assert response.status_code == 200, response.text
            for error in response.json().get("errors") or ():
                ext = error.get("extensions") or {}
                assert error["message"] != "Unexpected error.", error  # a masked bug
                if "status" in ext:
                    assert ext["status"] < 500, error
                else:  # a GraphQL validation error of the generated query
                    assert "path" not in error, error

        try:
            check()
        except BaseException as e:
            failures.append(f"{op.label}: {e}")
    assert fields >= 26
    assert not failures, "\n\n".join(failures)
