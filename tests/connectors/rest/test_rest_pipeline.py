"""REST -> DuckDB through the real engine (`run_pipeline`): incremental runs, quarantine of rows
without a primary key or with values that do not fit, parent/child resources, discover."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from rest_server import BEARER, Api

from openfuse_connectors.builtin.rest import RestConfig, RestExtractor
from openfuse_connectors.engine import StreamResult, run_pipeline
from openfuse_connectors.loader import QUARANTINE_TABLE
from openfuse_connectors.registry import Registry
from openfuse_connectors.spec import PipelineSpec, load_pipeline, parse_pipeline

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

ITEMS = {
    "name": "items",
    "path": "/items",
    "record_selector": "$.data[*]",
    "primary_key": ["id"],
    "cursor_field": "updated_at",
    "incremental": {"param": "updated_since"},
    "paginator": {"type": "page_number", "page_size": 3},
}
USERS = {
    "name": "users",
    "path": "/users",
    "record_selector": "users",
    "primary_key": ["id"],
    "paginator": {"type": "page_number"},
}
ORDERS = {
    "name": "orders",
    "path": "/users/{user_id}/orders",
    "parent": {"resource": "users", "fields": {"user_id": "id"}},
    "record_selector": "$.orders[*]",
    "primary_key": ["user_id", "id"],
}


def item(i: int | None, minute: int, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {} if i is None else {"id": i}
    row.update(
        name=f"item {i}", updated_at=(T0 + dt.timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")
    )
    row.update(extra)
    return row


def pipeline(api: Api, tmp_path: Path, resources: list[dict[str, Any]], **stream: Any) -> PipelineSpec:
    return parse_pipeline(
        {
            "name": "rest_test",
            "source": {"connector": "rest", "config": {"base_url": api.base_url, "resources": resources}},
            "destination": {"connector": "duckdb", "config": {"path": str(tmp_path / "w.duckdb")}},
            "streams": [stream],
        }
    )


def run(registry: Registry, spec: PipelineSpec) -> StreamResult:
    [result] = run_pipeline(spec, registry=registry)
    assert result.ok, result.error
    return result


def table(registry: Registry, tmp_path: Path, name: str) -> list[dict[str, Any]]:
    loader = registry.loader("duckdb", {"path": str(tmp_path / "w.duckdb")})
    try:
        rows: list[dict[str, Any]] = loader.read_table(name).to_pylist()
        return rows
    finally:
        loader.close()


def test_incremental_runs_send_the_cursor_and_load_only_new_rows(
    api: Api, tmp_path: Path, registry: Registry
) -> None:
    api.state.items = [item(i, i, tags=["a", "b"], meta={"v": i}) for i in range(1, 5)] + [item(5, 4)]
    spec = pipeline(
        api,
        tmp_path,
        [ITEMS],
        name="items",
        mode="incremental_append",
        cursor_field="updated_at",
        primary_key=["id"],
    )
    first = run(registry, spec)
    assert (first.rows_written, first.rows_quarantined) == (5, 0)
    assert first.cursor_after == "2024-01-01 00:04:00.000000Z"

    # Committed late at the boundary minute, plus a newer one.
    api.state.items += [item(6, 4), item(7, 9)]
    api.state.queries.clear()
    second = run(registry, spec)
    assert second.rows_written == 2 and second.rows_read == 4  # 4, 5, 6 at the boundary + 7
    sent = [q.get("updated_since") for q in api.state.queries["/items"]]
    assert sent == [None, "2024-01-01T00:04:00Z", "2024-01-01T00:04:00Z"]  # schema sample, two pages

    third = run(registry, spec)
    assert third.rows_written == 0

    rows = table(registry, tmp_path, "items")
    assert sorted(r["id"] for r in rows) == list(range(1, 8))  # none lost, none duplicated
    one = next(r for r in rows if r["id"] == 1)
    assert one["updated_at"] == T0 + dt.timedelta(minutes=1)
    assert (one["tags"], one["meta"]) == ('["a","b"]', '{"v":1}')  # nested values as JSON text


def test_rows_without_primary_key_or_with_misfit_values_are_quarantined_and_counted(
    api: Api, tmp_path: Path, registry: Registry
) -> None:
    api.state.items = [
        item(1, 1, amount=10),
        item(None, 2, amount=20),  # no primary key
        item(3, 3, amount=30),
        item(4, 4, amount=40),
        item(5, 5, amount="lots"),  # on page 2: not a number, the schema (from page 1) says int64
        item(6, 6, amount=60),
    ]
    spec = pipeline(
        api,
        tmp_path,
        [ITEMS],
        name="items",
        mode="incremental_dedupe",
        cursor_field="updated_at",
        primary_key=["id"],
    )
    result = run(registry, spec)
    assert (result.rows_read, result.rows_written, result.rows_quarantined) == (6, 4, 2)
    assert sorted(r["id"] for r in table(registry, tmp_path, "items")) == [1, 3, 4, 6]
    quarantined = sorted(table(registry, tmp_path, QUARANTINE_TABLE), key=lambda q: q["position"])
    # The misfit is handed over after the rest of its page (in a batch of its own): position 5.
    assert [(q["position"], q["field"]) for q in quarantined] == [(1, "id"), (5, "amount")]
    assert "primary key value is missing" in quarantined[0]["reason"]
    assert "item None" in quarantined[0]["record"]
    assert (
        "does not fit destination type int64" in quarantined[1]["reason"]
        and quarantined[1]["value"] == "lots"
    )
    assert "page=2" in quarantined[1]["reason"]  # the page the row came from

    # A second run re-reads the boundary row only and quarantines nothing again.
    again = run(registry, spec)
    assert (again.rows_written, again.rows_quarantined) == (0, 0)


def test_parent_child_resource_reads_each_parents_children_with_the_parent_key(
    api: Api, tmp_path: Path, registry: Registry
) -> None:
    api.state.extra_users = [{"name": "ghost"}]  # a parent without its id: reported, not skipped silently
    spec = pipeline(api, tmp_path, [USERS, ORDERS], name="orders", primary_key=["user_id", "id"])
    result = run(registry, spec)
    assert (result.rows_written, result.rows_quarantined) == (3, 1)
    rows = sorted((r["user_id"], r["id"], r["total"]) for r in table(registry, tmp_path, "orders"))
    assert rows == [(1, 101, 5), (1, 102, 7), (3, 301, 1)]
    [q] = table(registry, tmp_path, QUARANTINE_TABLE)
    assert (
        q["field"] == "id" and "parent record of resource 'users'" in q["reason"] and "ghost" in q["record"]
    )
    assert [k for k in api.state.hits if k.startswith("/users/")] == [
        "/users/1/orders",
        "/users/2/orders",
        "/users/3/orders",
    ]


def test_discover_lists_resources_with_schema_keys_and_cursor_candidates(api: Api) -> None:
    api.state.items = [item(1, 1, amount=1.5), item(2, 2, amount=2)]
    explicit = {
        "name": "typed",
        "path": "/never-called",
        "primary_key": ["id"],
        "schema": {"id": "int64", "day": "date32"},
    }
    ex = RestExtractor(
        RestConfig.model_validate({"base_url": api.base_url, "resources": [ITEMS, USERS, ORDERS, explicit]})
    )
    infos = {i.name: i for i in ex.discover()}
    assert list(infos) == ["items", "users", "orders", "typed"]
    items = infos["items"]
    assert items.schema == pa.schema(
        [
            ("id", pa.int64()),
            ("name", pa.string()),
            ("updated_at", pa.timestamp("us", tz="UTC")),
            ("amount", pa.float64()),
        ]
    )
    assert items.primary_key == ("id",) and items.cursor_candidates[:2] == ("updated_at", "id")
    assert infos["orders"].schema.names == ["id", "total", "user_id"]
    assert infos["typed"].schema == pa.schema([("id", pa.int64()), ("day", pa.date32())])
    assert infos["typed"].cursor_candidates == ("id", "day")
    assert "/never-called" not in api.state.hits  # an explicit schema needs no request


def test_a_pipeline_file_configures_everything_with_secrets_from_the_environment(
    api: Api, tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REST_TEST_TOKEN", BEARER)
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        f"""
name: rest_yaml
source:
  connector: rest
  config:
    base_url: {api.base_url}
    auth: {{type: bearer, token: "${{REST_TEST_TOKEN}}"}}
    rate_limit: 50
    resources:
      - name: things
        path: /auth/bearer
        record_selector: $.data[*]
        primary_key: [id]
destination: {{connector: duckdb, config: {{path: "{tmp_path / "w.duckdb"}"}}}}
streams:
  - {{name: things, mode: full_refresh_overwrite}}
"""
    )
    result = run(registry, load_pipeline(path))
    assert result.rows_written == 2
    assert table(registry, tmp_path, "things") == [{"id": 1, "name": "n1"}, {"id": 2, "name": "n2"}]
