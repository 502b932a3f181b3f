"""Bad input gets a problem document naming what is wrong - never a 500, a stack trace or a secret."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from api_support import Api, TestClient, bearer, cli_key, decided

from api.errors import PROBLEM_JSON

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def h(module_api: Api) -> dict[str, str]:
    return bearer(cli_key(module_api.settings, "acme", "ann"))


def problem(r: Any, status: int, slug: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM_JSON
    doc = r.json()
    assert doc["type"] == f"https://openfuse.dev/problems/{slug}" and doc["status"] == status
    assert doc["title"] and doc["instance"].startswith("/")
    assert "Traceback" not in r.text
    return doc


def fields(doc: dict[str, Any]) -> list[str]:
    return [e["field"] for e in doc.get("errors", [])]


def test_unknown_fields_and_wrong_types_name_the_field(module_api: Api, h: dict[str, str]) -> None:
    c = module_api.client
    doc = problem(
        c.post("/api/v1/connections", headers=h, json={"name": "a", "connector": "sqlite", "surprise": 1}),
        422,
        "validation-error",
    )
    assert fields(doc) == ["surprise"]
    doc = problem(
        c.post("/api/v1/connections", headers=h, json={"name": 123, "connector": "sqlite"}),
        422,
        "validation-error",
    )
    assert fields(doc) == ["name"] and doc["errors"][0]["value"] == 123
    doc = problem(c.get("/api/v1/connections", params={"limit": "many"}, headers=h), 422, "validation-error")
    assert fields(doc) == ["limit"]
    doc = problem(c.get("/api/v1/connections", params={"limit": 1000}, headers=h), 422, "validation-error")
    assert fields(doc) == ["limit"]
    # The connector's config model forbids unknown keys too, and hides secret values.
    doc = problem(
        c.post(
            "/api/v1/connections",
            headers=h,
            json={"name": "pg", "connector": "postgres", "config": {"dsn": 5, "port": 1}},
        ),
        422,
        "validation-error",
    )
    assert fields(doc) == ["config.dsn", "config.port"]
    assert "value" not in doc["errors"][0]
    doc = problem(
        c.post("/api/v1/connections", headers=h, json={"name": "n", "connector": "nosuch"}),
        422,
        "validation-error",
    )
    assert fields(doc) == ["connector"] and "postgres" in doc["detail"]
    doc = problem(
        c.post("/api/v1/connections", headers=h, json={"name": "n", "connector": "hash"}),
        422,
        "validation-error",
    )
    assert "transform" in doc["detail"]


def test_malformed_json_oversized_and_non_json_bodies(module_api: Api, h: dict[str, str]) -> None:
    c = module_api.client
    json_h = {**h, "content-type": "application/json"}
    doc = problem(c.post("/api/v1/connections", headers=json_h, content=b'{"name": '), 400, "malformed-json")
    assert fields(doc) == ["body"]
    doc = problem(
        c.post("/api/v1/connections", headers={**h, "content-type": "text/plain"}, content=b"name=x"),
        415,
        "unsupported-media-type",
    )
    limit = module_api.settings.max_body_size
    big = {"name": "big", "connector": "sqlite", "config": {"path": "x" * (limit + 10)}}
    doc = problem(c.post("/api/v1/connections", headers=h, json=big), 413, "content-too-large")
    assert doc["limit"] == limit

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
        yield b'{"name": "big", "connector": "sqlite", "config": {"path": "'
        for _ in range(limit // 1024 + 2):
            yield b"x" * 1024
        yield b'"}}'

    problem(c.post("/api/v1/connections", headers=json_h, content=chunks()), 413, "content-too-large")
    # A missing body on a route that needs one.
    doc = problem(c.post("/api/v1/pipelines", headers=h), 422, "validation-error")
    assert fields(doc) == ["body"]
    # A failed write is audited as a failure, validation included.
    audit = c.get(
        "/api/v1/audit", params={"action": "pipeline:create", "outcome": "failure"}, headers=h
    ).json()["items"]
    # (with the policy decision that let the write through)
    assert audit and decided(audit[0]["detail"]) == {"status": 422, "type": "validation-error"}


def test_invalid_cursors_are_400_naming_cursor(module_api: Api, h: dict[str, str]) -> None:
    c = module_api.client
    for _ in range(3):
        c.post("/api/v1/pipelines", headers=h, json={})  # (fails; only to make audit entries)
    pipelines_cursor = (
        "eyJyIjoicGlwZWxpbmVzIiwiayI6WyIyMDI0LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwibm90LWEtdXVpZCJdfQ"
    )
    for path, cursor in [
        ("/api/v1/connections", "not-base64!!"),
        ("/api/v1/connections", "eyJ4IjoxfQ"),  # valid base64 JSON, wrong shape
        ("/api/v1/connections", pipelines_cursor),  # a cursor of another list
        ("/api/v1/pipelines", pipelines_cursor),  # right list, id not a UUID
        ("/api/v1/audit", "W10"),
        ("/api/v1/connectors", "eyJyIjoiY29ubmVjdG9ycyIsImsiOlsxXX0"),  # key of the wrong type
    ]:
        doc = problem(c.get(path, params={"cursor": cursor}, headers=h), 400, "bad-request")
        assert fields(doc) == ["cursor"], path


@pytest.mark.parametrize(
    "name",
    [
        "x'; DROP TABLE connection; --",
        'Robert"); DELETE FROM audit_log; --',
        "%_\\ 50% off_",
        "☃ ünïcødé \u200b",
        "1 OR 1=1",
        "$1 :name ?",
    ],
)
def test_sql_metacharacters_are_stored_and_returned_verbatim(
    module_api: Api, h: dict[str, str], name: str
) -> None:
    c = module_api.client
    r = c.post(
        "/api/v1/connections",
        headers=h,
        json={"name": name, "connector": "sqlite", "config": {"path": "/tmp/q.db"}},
    )
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert r.json()["name"] == name
    assert c.get(f"/api/v1/connections/{cid}", headers=h).json()["name"] == name
    assert c.get("/api/v1/connections", params={"connector": name}, headers=h).json()["items"] == []
    assert (
        c.get("/api/v1/audit", params={"actor": name, "resource_id": name}, headers=h).json()["items"] == []
    )
    problem(
        c.post(
            "/api/v1/connections",
            headers=h,
            json={"name": name, "connector": "sqlite", "config": {"path": "/tmp/q.db"}},
        ),
        409,
        "conflict",
    )
    assert c.delete(f"/api/v1/connections/{cid}", headers=h).status_code == 204


def test_pipeline_validation_points_at_the_field(module_api: Api, h: dict[str, str]) -> None:
    c = module_api.client
    c.post(
        "/api/v1/connections",
        headers=h,
        json={"name": "lite", "connector": "sqlite", "config": {"path": "/tmp/l.db"}},
    )
    c.post(
        "/api/v1/connections",
        headers=h,
        json={"name": "kafka_out", "connector": "files", "config": {"path": "/tmp/out"}},
    )
    base: dict[str, Any] = {
        "name": "p",
        "source": {"connection": "lite"},
        "destination": {"connection": "lite"},
        "streams": [{"name": "t"}],
    }
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"source": {"connection": "missing"}}, ["source.connection"]),
        ({"destination": {"connection": "00000000-0000-0000-0000-000000000000"}}, ["destination.connection"]),
        ({"streams": [{"name": "t", "mode": "incremental_append"}]}, ["streams[0]"]),
        ({"streams": [{"name": "t", "mode": "sideways"}]}, ["streams[0].mode"]),
        ({"streams": []}, ["streams"]),
        ({"streams": [{"name": "a.t"}, {"name": "b.t"}]}, ["streams"]),
        ({"streams": [{"name": "t", "transforms": [{"type": "nope"}]}]}, ["streams[0].transforms[0].type"]),
        (
            {"streams": [{"name": "t", "transforms": [{"type": "hash", "colums": ["x"]}]}]},
            ["streams[0].transforms[0].options.colums"],
        ),
        ({"schedule": "every tuesday"}, ["schedule"]),
        ({"name": "has space"}, ["name"]),
        ({"tags": {"a": 1}}, ["tags.a"]),
    ]
    for change, expected in cases:
        r = c.post("/api/v1/pipelines", headers=h, json={**base, **change})
        doc = problem(r, 422, "validation-error")
        assert set(expected) <= set(fields(doc)), (change, doc)
        assert all(f.startswith(expected[0].split(".")[0].split("[")[0]) for f in fields(doc)), (change, doc)
    r = c.post("/api/v1/pipelines", headers=h, json=base)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    doc = problem(
        c.patch(f"/api/v1/pipelines/{pid}", headers=h, json={"source": {"connection": "missing"}}),
        422,
        "validation-error",
    )
    assert fields(doc) == ["source.connection"]
    doc = problem(
        c.post(f"/api/v1/pipelines/{pid}/state/reset", headers=h, json={"streams": ["t", "nope"]}),
        422,
        "validation-error",
    )
    assert fields(doc) == ["streams[1]"]
    doc = problem(
        c.post(f"/api/v1/pipelines/{pid}/state/rollback", headers=h, json={"entry_id": 999999}),
        422,
        "validation-error",
    )
    assert fields(doc) == ["entry_id"]
    doc = problem(c.get("/api/v1/pipelines/not-a-uuid", headers=h), 422, "validation-error")
    assert fields(doc) == ["pipeline_id"]
    problem(c.get("/api/v1/pipelines/00000000-0000-0000-0000-000000000000", headers=h), 404, "not-found")


def test_framework_errors_are_problems_too(module_api: Api, h: dict[str, str]) -> None:
    c = module_api.client
    doc = problem(c.put("/api/v1/connections", headers=h, json={}), 405, "method-not-allowed")
    assert "PUT" in doc["detail"]
    problem(c.get("/api/v1/nothing-here", headers=h), 404, "not-found")
    problem(c.get("/api/v1/connectors/nosuch", headers=h), 404, "not-found")


def test_an_unexpected_error_is_a_500_problem_without_details(
    module_api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    app = module_api.client.app
    secret = "s3cr3t-in-an-exception-message"

    def boom() -> None:
        raise ValueError(f"cannot use {secret}")

    app.add_api_route("/test-only/boom", boom)  # type: ignore[attr-defined]
    with caplog.at_level(logging.ERROR), TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/test-only/boom")
    doc = problem(r, 500, "internal-error")
    assert secret not in r.text and "ValueError" not in r.text
    assert doc["error_id"] in caplog.text and "ValueError" in caplog.text
    assert secret not in caplog.text
