"""The transform library: each transform on Arrow batches, and through the engine end to end."""

from __future__ import annotations

import datetime as dt
import hashlib
import sys
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from openfuse_connectors import ConfigError, parse_pipeline
from openfuse_connectors.engine import run_pipeline
from openfuse_connectors.registry import get_registry
from openfuse_connectors.testing import MemorySource, _registry, sample_rows
from openfuse_connectors.transformer import TransformContext, Transformer

sys.path.insert(0, str(Path(__file__).parent))

BATCH = pa.RecordBatch.from_pylist(
    [
        {"id": 1, "email": "ann@example.com", "card": "4111111111111111", "amount": 10, "status": "paid"},
        {"id": 2, "email": None, "card": "55", "amount": None, "status": "void"},
        {"id": 3, "email": "bob@example.com", "card": "", "amount": 30, "status": "paid"},
        {"id": 1, "email": "ann2@example.com", "card": "1234", "amount": 40, "status": "paid"},
    ]
)


def make(type_: str, **options: Any) -> Transformer:
    t = get_registry().transformer(type_, options)
    t.setup(TransformContext("p", "s", "run-1", dt.datetime(2025, 1, 2, tzinfo=dt.UTC)))
    return t


def apply(t: Transformer, batch: pa.RecordBatch = BATCH) -> pa.RecordBatch:
    schema = t.transform_schema(batch.schema)
    out = t.transform(batch)
    assert out.schema.equals(schema), "transform_schema must describe what transform returns"
    return out


def test_select_drop_rename() -> None:
    assert apply(make("select", columns=["status", "id"])).schema.names == ["status", "id"]
    assert apply(make("drop", columns=["card"])).schema.names == ["id", "email", "amount", "status"]
    assert apply(make("rename", columns={"email": "mail"})).schema.names == [
        "id",
        "mail",
        "card",
        "amount",
        "status",
    ]
    with pytest.raises(ConfigError, match="column 'nope' is not in the stream"):
        make("select", columns=["nope"]).transform_schema(BATCH.schema)
    with pytest.raises(ConfigError, match="two columns would be named"):
        make("rename", columns={"email": "id"}).transform_schema(BATCH.schema)


def test_hash_is_salted_sha256_and_keeps_nulls() -> None:
    out = apply(make("hash", columns=["email"], salt="s3cr3t"))
    emails = out.column("email").to_pylist()
    assert emails[0] == hashlib.sha256(b"s3cr3t" + b"ann@example.com").hexdigest()
    assert emails[1] is None
    other = apply(make("hash", columns=["email"], salt="other")).column("email").to_pylist()
    assert other[0] != emails[0]
    with pytest.raises(ConfigError, match="salt") as ei:
        make("hash", columns=["email"])
    assert ei.value.field == "transforms[hash].salt"


def test_mask_keeps_the_last_characters() -> None:
    out = apply(make("mask", columns=["card"], keep_last=4))
    assert out.column("card").to_pylist() == ["************1111", "55", "", "1234"]
    assert apply(make("mask", columns=["email"], char="#")).column("email").to_pylist()[0] == "#" * 15


def test_filter_expression() -> None:
    out = apply(make("filter", expr="status == 'paid' and amount >= 30"))
    assert out.column("id").to_pylist() == [3, 1]
    assert apply(make("filter", expr="email is None")).column("id").to_pylist() == [2]
    assert apply(make("filter", expr="status not in ('void',)")).num_rows == 3
    with pytest.raises(ConfigError, match="does not parse") as ei:
        make("filter", expr="amount >").transform_schema(BATCH.schema)
    assert ei.value.field == "transforms[filter].expr" and ei.value.value == "amount >"
    with pytest.raises(ConfigError, match="unknown column 'amt'"):
        make("filter", expr="amt > 1").transform_schema(BATCH.schema)
    with pytest.raises(ConfigError, match="not allowed"):
        make("filter", expr="amount.__class__").transform_schema(BATCH.schema)


def test_add_metadata_and_dedupe() -> None:
    out = apply(make("add_metadata"))
    assert out.column("_openfuse_run_id").to_pylist() == ["run-1"] * 4
    assert out.column("_openfuse_synced_at")[0].as_py() == dt.datetime(2025, 1, 2, tzinfo=dt.UTC)
    d = make("dedupe", key=["id"])
    assert apply(d).column("email").to_pylist() == ["ann@example.com", None, "bob@example.com"]
    # Within one run the memory spans batches.
    assert apply(d, BATCH.slice(0, 1)).num_rows == 0


def test_cast_declares_the_type_and_leaves_bad_values_for_quarantine() -> None:
    t = make("cast", columns={"card": "int64", "amount": "decimal(10,2)"})
    schema = t.transform_schema(BATCH.schema)
    assert schema.field("card").type == pa.int64() and schema.field("amount").type == pa.decimal128(10, 2)
    out = t.transform(BATCH)
    assert out.column("amount").type == pa.decimal128(10, 2)
    assert out.column("card").type == pa.string()  # "" does not convert: the engine quarantines that row
    with pytest.raises(ConfigError, match="unknown type 'int65'"):
        make("cast", columns={"card": "int65"}).transform_schema(BATCH.schema)


def test_python_callable_runs_inside_the_plugin_boundary() -> None:
    out = apply(make("python", callable="helpers_udf:double_amount"))
    assert out.column("amount").to_pylist() == [20, None, 60, 80]
    with pytest.raises(ConfigError, match="cannot load callable"):
        make("python", callable="helpers_udf:nope")


def run(dataset: str, dest: dict[str, Any], transforms: list[dict[str, Any]], **stream: Any) -> Any:
    spec = parse_pipeline(
        {
            "name": "tx",
            "source": {"connector": "memory", "config": {"dataset": dataset}},
            "destination": {"connector": "duckdb", "config": dest},
            "streams": [{"name": "items", "transforms": transforms, **stream}],
        }
    )
    [r] = run_pipeline(spec, registry=_registry())
    return r


def test_engine_applies_transforms_and_quarantines_failed_casts(tmp_path: Path) -> None:
    import duckdb

    ds = uuid.uuid4().hex
    rows = sample_rows(range(1, 7))
    rows[2]["name"] = "not-a-number"
    for r in rows:
        if r["name"] is not None and r["id"] != 3:
            r["name"] = str(r["id"] * 100)
    MemorySource.put(ds, "items", rows)
    dest = {"path": str(tmp_path / "w.duckdb")}
    r = run(
        ds,
        dest,
        [
            {"type": "filter", "expr": "id != 6"},
            {"type": "cast", "columns": {"name": "int64"}},
            {"type": "rename", "columns": {"name": "code"}},
            {"type": "hash", "columns": ["active"], "salt": "pepper"},
            {"type": "add_metadata"},
        ],
    )
    assert r.ok, r.error
    # 6 read; id 6 filtered out; id 3's "not-a-number" does not fit int64 -> quarantined.
    assert (r.rows_read, r.rows_written, r.rows_quarantined) == (6, 4, 1)
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as db:
        got = db.sql(
            "SELECT id, code, active, _openfuse_run_id IS NOT NULL FROM items ORDER BY id"
        ).fetchall()
        [(field, value)] = db.sql("SELECT field, value FROM _openfuse_quarantine").fetchall()
    assert [g[0] for g in got] == [1, 2, 4, 5]
    assert got[0][1] == 100 and got[3][1] is None  # id 5 had NULL name
    assert got[0][2] == hashlib.sha256(b"pepper" + b"false").hexdigest()
    assert all(g[3] for g in got)
    assert (field, value) == ("code", "not-a-number")


def test_failing_user_function_names_it_and_loads_nothing(tmp_path: Path) -> None:
    ds = uuid.uuid4().hex
    MemorySource.put(ds, "items", sample_rows(range(1, 4)))
    dest = {"path": str(tmp_path / "w.duckdb")}
    r = run(ds, dest, [{"type": "python", "callable": "helpers_udf:explode"}])
    assert not r.ok
    assert "python:helpers_udf:explode" in (r.error or "") and "boom in user code" in (r.error or "")
    r = run(ds, dest, [{"type": "python", "callable": "helpers_udf:not_a_batch"}])
    assert not r.ok and "expected a pyarrow.RecordBatch" in (r.error or "")
    assert get_registry().loader("duckdb", dest).table_schema("items") is None


def test_user_function_errors_surface_unchanged_outside_the_engine() -> None:
    t = make("python", callable="helpers_udf:explode")
    t.transform_schema(BATCH.schema)
    # Direct calls see the user's own error; the engine wraps it (see the test above).
    with pytest.raises(ValueError, match="boom in user code"):
        t.transform(BATCH)
