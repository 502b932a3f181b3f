"""The DuckDB destination through the engine, on real DuckDB files in tmp_path."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from support import Source
from support import registry_for as _registry_for

from openfuse_connectors import (
    ConfigError,
    PipelineSpec,
    SchemaDriftError,
    StreamSpec,
    StreamState,
)
from openfuse_connectors.builtin.duckdb import CONNECTOR, DuckDBConfig, DuckDBLoader
from openfuse_connectors.catalog import NATIVE_TYPE
from openfuse_connectors.engine import StreamResult, run_pipeline, run_stream
from openfuse_connectors.loader import Disposition, WriteJob
from openfuse_connectors.registry import Registry
from openfuse_connectors.spec import SchemaDrift, SyncMode


def registry_for(source: Source) -> Registry:
    return _registry_for(source, CONNECTOR)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "warehouse.duckdb"


@pytest.fixture
def source() -> Source:
    return Source()


def pipeline(db: Path, drift: str = "evolve", schema: str = "main", **stream: Any) -> PipelineSpec:
    s = {"name": "orders", "mode": "full_refresh_overwrite", **stream}
    return PipelineSpec.model_validate(
        {
            "name": "p",
            "source": {"connector": "mem"},
            "destination": {"connector": "duckdb", "config": {"path": str(db), "schema": schema}},
            "schema_drift": drift,
            "streams": [s],
        }
    )


def run(source: Source, spec: PipelineSpec) -> StreamResult:
    [r] = run_pipeline(spec, registry=registry_for(source))
    return r


def rows(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db))
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def table(db: Path, name: str = "orders", schema: str = "main", order: str = "id") -> list[dict[str, Any]]:
    con = duckdb.connect(str(db))
    try:
        con.execute("SET TimeZone = 'UTC'")
        q = f'SELECT * FROM "{schema}"."{name}"' + (f" ORDER BY {order}" if order else "")
        return con.sql(q).to_arrow_table().to_pylist()
    finally:
        con.close()


def tables(db: Path) -> set[str]:
    return {r[0] for r in rows(db, "SELECT table_name FROM duckdb_tables()")}


def loader(db: Path, schema: str = "main") -> DuckDBLoader:
    return DuckDBLoader(DuckDBConfig(path=db, schema=schema))


# -- sync modes --------------------------------------------------------------------------------


def test_overwrite_creates_the_file_replaces_the_table_and_saves_state(db: Path, source: Source) -> None:
    source.set("orders", {"id": [1, 2, 3], "v": ["a", "b", "c"]})
    r = run(source, pipeline(db))
    assert r.ok, r.error
    assert db.exists()
    assert [x["v"] for x in table(db)] == ["a", "b", "c"]

    source.set("orders", {"id": [7, 8], "v": ["x", "y"]})
    r = run(source, pipeline(db))
    assert r.ok, r.error
    assert r.rows_written == 2
    assert table(db) == [{"id": 7, "v": "x"}, {"id": 8, "v": "y"}]
    # The staging table was swapped in, not left behind.
    assert tables(db) == {"orders", "_openfuse_state"}
    [(pipeline_name, stream, state, run_id)] = rows(
        db, "SELECT pipeline, stream, state, run_id FROM _openfuse_state"
    )
    assert (pipeline_name, stream) == ("p", "orders")
    assert StreamState.from_json(state) == loader(db).read_state("p", "orders")
    assert run_id


def test_full_refresh_append_adds_every_run(db: Path, source: Source) -> None:
    source.set("orders", {"id": [1, 2], "v": ["a", "b"]})
    for _ in range(3):
        r = run(source, pipeline(db, mode="full_refresh_append"))
        assert r.ok, r.error
    assert rows(db, "SELECT id, count(*) FROM orders GROUP BY id ORDER BY id") == [(1, 3), (2, 3)]


def test_incremental_append_loads_only_new_rows_and_keeps_the_boundary_exact(
    db: Path, source: Source
) -> None:
    spec = pipeline(db, mode="incremental_append", cursor_field="ts", primary_key=["id"])
    source.set("orders", {"id": [1, 2, 3], "ts": [10, 20, 30]})
    r = run(source, spec)
    assert r.ok, r.error
    assert r.cursor_after == "30"

    # Next run: the source serves everything from the cursor on (inclusive), including row 3 again
    # and row 4, committed later with the same cursor value 30.
    source.set("orders", {"id": [1, 2, 3, 4, 5], "ts": [10, 20, 30, 30, 40]})
    r = run(source, spec)
    assert r.ok, r.error
    assert r.cursor_before == "30"
    assert r.rows_written == 2
    assert rows(db, "SELECT id FROM orders ORDER BY id") == [(1,), (2,), (3,), (4,), (5,)]

    r = run(source, spec)  # nothing new
    assert r.ok, r.error
    assert r.rows_written == 0
    assert rows(db, "SELECT count(*) FROM orders") == [(5,)]
    assert loader(db).read_state("p", "orders").cursor.value == "40"  # type: ignore[union-attr]


def test_incremental_dedupe_keeps_the_newest_cursor_per_key(db: Path, source: Source) -> None:
    spec = pipeline(db, mode="incremental_dedupe", cursor_field="ts", primary_key=["id"])
    source.set("orders", {"id": [1, 2, 2], "v": ["a", "b-old", "b"], "ts": [1, 4, 5]})
    r = run(source, spec)
    assert r.ok, r.error
    assert [(x["id"], x["v"]) for x in table(db)] == [(1, "a"), (2, "b")]

    # A late source resends stale rows: the newer destination row must win over them.
    source.ignore_state = True
    source.set(
        "orders",
        {
            "id": [1, 1, 2, 3, 4, 4],
            "v": ["A", "A-older", "stale", "c", "first", "second"],
            "ts": [3, 2, 4, 6, 7, 7],
        },
    )
    r = run(source, spec)
    assert r.ok, r.error
    assert [(x["id"], x["v"], x["ts"]) for x in table(db)] == [
        (1, "A", 3),  # newer cursor replaced the row; the older duplicate in the same load lost
        (2, "b", 5),  # incoming ts=4 is older than the stored ts=5: skipped
        (3, "c", 6),
        (4, "second", 7),  # same cursor within one load: the later row wins
    ]


def test_full_refresh_of_a_dedupe_stream_still_keeps_one_row_per_key(db: Path, source: Source) -> None:
    source.set("orders", {"id": [1, 1, 2], "v": ["old", "new", "b"], "ts": [1, 2, 1]})
    spec = pipeline(db, mode="incremental_dedupe", cursor_field="ts", primary_key=["id"])
    [r] = run_pipeline(spec, registry=registry_for(source), full_refresh=True)
    assert r.ok, r.error
    assert [(x["id"], x["v"]) for x in table(db)] == [(1, "new"), (2, "b")]


# -- atomicity ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mode", ["full_refresh_overwrite", "full_refresh_append", "incremental_append", "incremental_dedupe"]
)
def test_a_failing_source_leaves_table_and_state_exactly_as_before(
    db: Path, source: Source, mode: str
) -> None:
    extra = {} if mode.startswith("full") else {"cursor_field": "ts", "primary_key": ["id"]}
    spec = pipeline(db, mode=mode, **extra)
    source.set("orders", {"id": [1, 2], "ts": [1, 2], "v": ["a", "b"]})
    assert run(source, spec).ok
    before_rows, before_state = table(db), loader(db).read_state("p", "orders")
    before_tables = tables(db)

    source.set(
        "orders",
        {"id": [3, 4], "ts": [3, 4], "v": ["c", "d"]},
        {"id": [1, 5], "ts": [5, 5], "v": ["A", "e"]},
        {"id": [6], "ts": [6], "v": ["f"]},
    )
    source.fail_after = 2
    r = run(source, spec)
    assert not r.ok
    assert "source connection lost mid-stream" in (r.error or "")
    assert table(db) == before_rows
    assert loader(db).read_state("p", "orders") == before_state
    assert tables(db) == before_tables  # no staging or temporary tables left


def test_a_failed_first_run_creates_nothing(db: Path, source: Source) -> None:
    source.set("orders", {"id": [1], "v": ["a"]}, {"id": [2], "v": ["b"]})
    source.fail_after = 1
    r = run(source, pipeline(db))
    assert not r.ok
    assert tables(db) == set()


# -- schema drift ------------------------------------------------------------------------------


def test_evolve_adds_columns_and_widens_types(db: Path, source: Source) -> None:
    spec = pipeline(db, mode="full_refresh_append")
    source.set("orders", {"id": pa.array([1], pa.int32()), "v": ["a"]})
    assert run(source, spec).ok

    source.set("orders", {"id": pa.array([2**40], pa.int64()), "v": ["b"], "extra": [1.5]})
    r = run(source, spec)
    assert r.ok, r.error
    assert "+ extra: double (new column in source)" in r.schema_changes
    assert any(c.startswith("~ id") for c in r.schema_changes)
    got = loader(db).table_schema("orders")
    assert got is not None
    assert got.field("id").type == pa.int64()
    assert got.field("extra").type == pa.float64()
    assert [(x["id"], x["extra"]) for x in table(db)] == [(1, None), (2**40, 1.5)]


def test_freeze_refuses_a_changed_source_with_the_diff(db: Path, source: Source) -> None:
    source.set("orders", {"id": [1], "v": ["a"]})
    spec = pipeline(db, drift="freeze", mode="full_refresh_append")
    assert run(source, spec).ok

    source.set("orders", {"id": [2], "v": ["b"], "extra": ["x"]})
    reg = registry_for(source)
    ex = reg.extractor("mem", {})
    ld = reg.loader("duckdb", {"path": str(db)})
    with pytest.raises(SchemaDriftError) as e:
        run_stream(spec, spec.streams[0], ex, ld, registry=reg)
    assert e.value.diff == ["+ extra: string (new column in source)"]
    assert table(db) == [{"id": 1, "v": "a"}]


def test_quarantine_diverts_rows_that_do_not_fit_and_counts_them(db: Path, source: Source) -> None:
    source.set("orders", {"id": [1], "amount": pa.array([5], pa.int64())})
    assert run(source, pipeline(db, mode="full_refresh_append")).ok

    source.set("orders", {"id": [2, 3, 4], "amount": ["10", "ten", "30"]})
    r = run(source, pipeline(db, drift="quarantine", mode="full_refresh_append"))
    assert r.ok, r.error
    assert (r.rows_written, r.rows_quarantined) == (2, 1)
    assert rows(db, "SELECT id, amount FROM orders ORDER BY id") == [(1, 5), (2, 10), (4, 30)]
    [(stream, position, fld, value, reason, record)] = rows(
        db, "SELECT stream, position, field, value, reason, record FROM _openfuse_quarantine"
    )
    assert (stream, position, fld, value) == ("orders", 1, "amount", "ten")
    assert "int64" in reason
    assert '"id": 3' in record


def test_reruns_of_every_supported_type_report_no_drift(db: Path, source: Source) -> None:
    """storage_type() must predict what DuckDB reads back, or every run would look like drift."""
    batch = pa.record_batch(
        {
            "i8": pa.array([1], pa.int8()),
            "u64": pa.array([2**64 - 1], pa.uint64()),
            "f16": pa.array([1.5], pa.float16()),
            "f32": pa.array([1.5], pa.float32()),
            "dec": pa.array([Decimal("1.25")], pa.decimal128(10, 2)),
            "big_dec": pa.array([Decimal("1.25")], pa.decimal256(50, 2)),
            "ls": pa.array(["x"], pa.large_string()),
            "dict": pa.array(["x"]).dictionary_encode(),
            "bin": pa.array([b"\x00\x01"], pa.binary(2)),
            "flag": [True],
            "d64": pa.array([dt.date(2020, 1, 2)], pa.date64()),
            "t32": pa.array([dt.time(1, 2, 3)], pa.time32("s")),
            "tns": pa.array([1], pa.time64("ns")),
            "ts_ms": pa.array([1], pa.timestamp("ms")),
            "ts_paris": pa.array([1], pa.timestamp("us", "Europe/Paris")),
            "ts_ns_tz": pa.array([1000], pa.timestamp("ns", "UTC")),
            "mdn": pa.array([(1, 2, 3000)], pa.month_day_nano_interval()),
            "lst": pa.array([[1, None]], pa.list_(pa.int32())),
            "fsl": pa.array([[1, 2]], pa.list_(pa.int16(), 2)),
            "st": pa.array([{"a b": 1, 'q"': "x"}], pa.struct([("a b", pa.int32()), ('q"', pa.string())])),
            "mp": pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int64())),
            "nul": pa.nulls(1),
        }
    )
    source.set("orders", batch)
    spec = pipeline(db, drift="freeze", mode="full_refresh_append")
    first = run(source, spec)
    assert first.ok, first.error
    second = run(source, spec)
    assert second.ok, second.error
    assert second.schema_changes == []
    got = loader(db).table_schema("orders")
    assert got is not None
    ld = loader(db)
    assert {f.name: ld.storage_type(f.type) for f in batch.schema} == {f.name: f.type for f in got}
    back = ld.read_table("orders")
    assert back.num_rows == 2 and back.slice(0, 1).equals(back.slice(1, 1))
    first_row = back.slice(0, 1).drop_columns(["tns"]).to_pylist()[0]
    assert first_row["u64"] == 2**64 - 1 and first_row["big_dec"] == "1.25"
    assert first_row["st"] == {"a b": 1, 'q"': "x"} and first_row["f16"] == 1.5
    assert back.column("tns").cast(pa.int64()).to_pylist() == [1, 1]


# -- names and values --------------------------------------------------------------------------


def test_column_names_with_quotes_and_semicolons_work_through_the_engine(db: Path, source: Source) -> None:
    odd = 'we"ird; DROP TABLE orders; --'
    source.set("orders", {"id": [1, 2], odd: ["x", None]})
    spec = pipeline(db, schema='sch"ema;', mode="incremental_dedupe", cursor_field="id", primary_key=["id"])
    r = run(source, spec)
    assert r.ok, r.error
    assert table(db, schema='sch""ema;') == [{"id": 1, odd: "x"}, {"id": 2, odd: None}]
    assert loader(db, 'sch"ema;').read_state("p", "orders") is not None


def test_table_names_with_quotes_and_semicolons_work(db: Path) -> None:
    """Pipeline files only allow plain table names, so this drives the loader API directly."""
    name = 'odd"table; DROP TABLE x; --'
    ld = loader(db)
    stream = StreamSpec(name="orders", mode=SyncMode.FULL_REFRESH_OVERWRITE)
    for disposition in (Disposition.OVERWRITE, Disposition.APPEND):
        job = WriteJob("p", stream, name, disposition, SchemaDrift.EVOLVE, run_id="r1")
        batch = pa.record_batch({'c"ol;': [1, 2]})
        with ld.open(job) as tx:
            tx.prepare(batch.schema)
            tx.write(batch)
            tx.commit(StreamState())
    assert ld.count_rows(name) == 4
    schema = ld.table_schema(name)
    assert schema is not None and schema.names == ['c"ol;']
    assert ld.read_table(name).column('c"ol;').to_pylist() == [1, 2, 1, 2]


EXTREMES = pa.record_batch(
    {
        "id": pa.array([1, 2, 3, 4], pa.int64()),
        "i64": pa.array([-(2**63), 2**63 - 1, 0, None], pa.int64()),
        "text": ["héllo wörld", "😀👩‍👩‍👧 emoji", "", None],
        "dec": pa.array(
            [Decimal("9999999999999999999999999999.9999999999"), Decimal("-0.0000000001"), Decimal(0), None],
            pa.decimal128(38, 10),
        ),
        "ts": pa.array(
            [
                dt.datetime(1900, 1, 1, 0, 0, 0, 1),
                dt.datetime(1969, 12, 31, 23, 59, 59, 999999),
                dt.datetime(2100, 6, 15, 12, 34, 56, 789012),
                None,
            ],
            pa.timestamp("us"),
        ),
        "tstz": pa.array(
            [
                dt.datetime(1850, 3, 1, 1, 2, 3, 4, tzinfo=dt.UTC),
                dt.datetime(1969, 7, 20, 20, 17, 40, 1, tzinfo=dt.UTC),
                dt.datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=dt.UTC),
                None,
            ],
            pa.timestamp("us", "UTC"),
        ),
        "day": pa.array([dt.date(1, 1, 1), dt.date(1969, 12, 31), dt.date(9999, 12, 31), None], pa.date32()),
        "raw": [b"\x00\xff", b"", b"bytes", None],
        "flag": [True, False, None, True],
        "f64": [float("inf"), -0.0, 1e-300, None],
    }
)


def test_extreme_values_round_trip_exactly(db: Path, source: Source) -> None:
    source.set("orders", EXTREMES)
    r = run(source, pipeline(db))
    assert r.ok, r.error
    got = loader(db).read_table("orders").sort_by("id")
    assert got.to_pylist() == EXTREMES.to_pylist()
    assert got.schema.equals(EXTREMES.schema)


def test_json_and_uuid_columns_from_postgres_get_native_types(db: Path, source: Source) -> None:
    md = lambda native: {NATIVE_TYPE: native.encode()}  # noqa: E731
    schema = pa.schema(
        [
            pa.field("id", pa.int64()),
            pa.field("doc", pa.string(), metadata=md("postgres:jsonb")),
            pa.field("ref", pa.string(), metadata=md("postgres:uuid")),
        ]
    )
    source.set(
        "orders",
        pa.record_batch([[1], ['{"a": [1, "é"]}'], ["9b2c1f5e-64c4-4a4e-9a4b-1f0d6a7c9e21"]], schema=schema),
    )
    spec = pipeline(db, drift="freeze", mode="full_refresh_append")
    assert run(source, spec).ok
    types = dict(rows(db, "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'orders'"))
    assert types == {"id": "BIGINT", "doc": "JSON", "ref": "UUID"}
    r = run(source, spec)  # and they read back as strings: no drift
    assert r.ok, r.error
    assert rows(db, "SELECT doc->>'$.a[1]', ref::VARCHAR FROM orders LIMIT 1") == [
        ("é", "9b2c1f5e-64c4-4a4e-9a4b-1f0d6a7c9e21")
    ]


def test_nanoseconds_that_timestamptz_cannot_hold_fail_the_load_instead_of_truncating(
    db: Path, source: Source
) -> None:
    source.set("orders", {"id": [1], "ts": pa.array([1_000_000_001], pa.timestamp("ns", "UTC"))})
    r = run(source, pipeline(db))
    assert not r.ok
    assert "LossyValueError" in (r.error or "") and "'ts'" in (r.error or "")
    assert tables(db) == set()


def test_state_is_keyed_by_the_state_key_of_a_renamed_table(db: Path, source: Source) -> None:
    source.set("orders", {"id": [1, 2]})
    r = run(
        source, pipeline(db, mode="incremental_append", cursor_field="id", destination_table="orders_copy")
    )
    assert r.ok, r.error
    assert rows(db, "SELECT stream FROM _openfuse_state") == [("orders->orders_copy",)]
    assert loader(db).read_state("p", "orders->orders_copy") is not None
    assert loader(db).read_state("p", "orders") is None


def test_reading_state_and_schema_of_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "absent.duckdb"
    ld = loader(path)
    assert ld.read_state("p", "orders") is None
    assert ld.table_schema("orders") is None
    assert not path.exists()


def test_in_memory_paths_are_refused() -> None:
    with pytest.raises(ValueError, match="in-memory"):
        DuckDBConfig(path=Path(":memory:"))


def test_a_file_that_is_not_duckdb_is_a_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database, just text " * 100)
    with pytest.raises(ConfigError, match="cannot open DuckDB database") as e:
        loader(path).check()
    assert e.value.value == str(path)
