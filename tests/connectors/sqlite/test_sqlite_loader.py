"""The SQLite destination through the engine, on real SQLite files in tmp_path."""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
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
from openfuse_connectors.builtin.sqlite import CONNECTOR, SQLiteConfig, SQLiteLoader
from openfuse_connectors.engine import StreamResult, run_pipeline, run_stream
from openfuse_connectors.loader import Disposition, WriteJob
from openfuse_connectors.registry import Registry
from openfuse_connectors.spec import SchemaDrift, SyncMode


def registry_for(source: Source) -> Registry:
    return _registry_for(source, CONNECTOR)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "local.sqlite"


@pytest.fixture
def source() -> Source:
    return Source()


def pipeline(db: Path, drift: str = "evolve", timeout: float = 30, **stream: Any) -> PipelineSpec:
    s = {"name": "orders", "mode": "full_refresh_overwrite", **stream}
    return PipelineSpec.model_validate(
        {
            "name": "p",
            "source": {"connector": "mem"},
            "destination": {"connector": "sqlite", "config": {"path": str(db), "timeout": timeout}},
            "schema_drift": drift,
            "streams": [s],
        }
    )


def run(source: Source, spec: PipelineSpec) -> StreamResult:
    [r] = run_pipeline(spec, registry=registry_for(source))
    return r


def rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def loader(db: Path) -> SQLiteLoader:
    return SQLiteLoader(SQLiteConfig(path=db))


def table(db: Path, name: str = "orders") -> list[dict[str, Any]]:
    return loader(db).read_table(name).sort_by("id").to_pylist()


def tables(db: Path) -> set[str]:
    return {r[0] for r in rows(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}


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
    # The staging table was swapped in, not left behind, and so were its recorded column types.
    assert tables(db) == {"orders", "_openfuse_state", "_openfuse_columns"}
    assert {r[0] for r in rows(db, "SELECT table_name FROM _openfuse_columns")} == {"orders"}
    [(pipeline_name, stream, state, run_id)] = rows(
        db, "SELECT pipeline, stream, state, run_id FROM _openfuse_state"
    )
    assert (pipeline_name, stream) == ("p", "orders")
    assert StreamState.from_json(state) == loader(db).read_state("p", "orders")
    assert run_id


def test_full_refresh_append_adds_every_run(db: Path, source: Source) -> None:
    source.set("orders", {"id": [1, 2], "v": ["a", "b"]})
    for _ in range(3):
        r = run(source, pipeline(db, mode="full_refresh_append", primary_key=["id"]))
        assert r.ok, r.error
    assert rows(db, "SELECT id, count(*) FROM orders GROUP BY id ORDER BY id") == [(1, 3), (2, 3)]


def test_incremental_append_loads_only_new_rows_and_keeps_the_boundary_exact(
    db: Path, source: Source
) -> None:
    spec = pipeline(db, mode="incremental_append", cursor_field="ts", primary_key=["id"])
    ts = [dt.datetime(2024, 1, 1, 0, 0, s) for s in range(6)]
    source.set("orders", {"id": [1, 2, 3], "ts": ts[:3]})
    r = run(source, spec)
    assert r.ok, r.error

    # Next run: the source serves everything from the cursor on (inclusive), including row 3 again
    # and row 4, committed later with the same cursor value.
    source.set("orders", {"id": [1, 2, 3, 4, 5], "ts": [ts[0], ts[1], ts[2], ts[2], ts[5]]})
    r = run(source, spec)
    assert r.ok, r.error
    assert r.rows_written == 2
    assert rows(db, "SELECT id FROM orders ORDER BY id") == [(1,), (2,), (3,), (4,), (5,)]

    r = run(source, spec)  # nothing new
    assert r.ok, r.error
    assert r.rows_written == 0
    assert rows(db, "SELECT count(*) FROM orders") == [(5,)]
    state = loader(db).read_state("p", "orders")
    assert state is not None and state.cursor is not None
    assert state.cursor.as_py() == ts[5]


def test_incremental_dedupe_keeps_the_newest_cursor_per_key(db: Path, source: Source) -> None:
    spec = pipeline(db, mode="incremental_dedupe", cursor_field="ts", primary_key=["id"])
    source.set("orders", {"id": [1, 2, 2], "v": ["a", "b-old", "b"], "ts": [1, 4, 5]})
    r = run(source, spec)
    assert r.ok, r.error
    assert [(x["id"], x["v"]) for x in table(db)] == [(1, "a"), (2, "b")]
    assert rows(db, "SELECT name FROM pragma_table_info('orders') WHERE pk > 0") == [("id",)]

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


def test_dedupe_compares_decimal_cursors_as_numbers(db: Path, source: Source) -> None:
    spec = pipeline(db, mode="incremental_dedupe", cursor_field="version", primary_key=["id"])
    dec = pa.decimal128(10, 1)
    source.set("orders", {"id": [1], "v": ["ten"], "version": pa.array([Decimal("10.0")], dec)})
    assert run(source, spec).ok
    source.ignore_state = True
    source.set("orders", {"id": [1], "v": ["nine"], "version": pa.array([Decimal("9.0")], dec)})
    assert run(source, spec).ok
    assert [x["v"] for x in table(db)] == ["ten"]  # as text, '9.0' > '10.0'


def test_full_refresh_of_a_dedupe_stream_still_keeps_one_row_per_key(db: Path, source: Source) -> None:
    source.set("orders", {"id": [1, 1, 2], "v": ["old", "new", "b"], "ts": [1, 2, 1]})
    spec = pipeline(db, mode="incremental_dedupe", cursor_field="ts", primary_key=["id"])
    [r] = run_pipeline(spec, registry=registry_for(source), full_refresh=True)
    assert r.ok, r.error
    assert [(x["id"], x["v"]) for x in table(db)] == [(1, "new"), (2, "b")]


def test_dedupe_into_a_table_created_by_append_adds_a_unique_key_or_says_why_not(
    db: Path, source: Source
) -> None:
    source.set("orders", {"id": [1, 2], "v": ["a", "b"], "ts": [1, 1]})
    assert run(source, pipeline(db, mode="full_refresh_append")).ok
    dedupe = pipeline(db, mode="incremental_dedupe", cursor_field="ts", primary_key=["id"])
    source.set("orders", {"id": [2, 3], "v": ["B", "c"], "ts": [2, 2]})
    r = run(source, dedupe)
    assert r.ok, r.error
    assert [(x["id"], x["v"]) for x in table(db)] == [(1, "a"), (2, "B"), (3, "c")]

    source.set("orders", {"id": [1], "v": ["a"], "ts": [1]})
    assert run(source, pipeline(db, mode="full_refresh_append", destination_table="dupes")).ok
    assert run(source, pipeline(db, mode="full_refresh_append", destination_table="dupes")).ok
    r = run(
        source,
        pipeline(
            db, mode="incremental_dedupe", cursor_field="ts", primary_key=["id"], destination_table="dupes"
        ),
    )
    assert not r.ok
    assert "several rows per primary key" in (r.error or "")
    assert rows(db, "SELECT count(*) FROM dupes") == [(2,)]


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
    before_columns = rows(db, "SELECT * FROM _openfuse_columns ORDER BY 1, 2")

    source.set(
        "orders",
        {"id": [3, 4], "ts": [3, 4], "v": ["c", "d"], "new_col": [1, 2]},
        {"id": [1, 5], "ts": [5, 5], "v": ["A", "e"], "new_col": [3, 4]},
        {"id": [6], "ts": [6], "v": ["f"], "new_col": [5]},
    )
    source.fail_after = 2
    r = run(source, spec)
    assert not r.ok
    assert "source connection lost mid-stream" in (r.error or "")
    assert table(db) == before_rows
    assert loader(db).read_state("p", "orders") == before_state
    assert tables(db) == before_tables  # no staging table left
    assert rows(db, "SELECT * FROM _openfuse_columns ORDER BY 1, 2") == before_columns  # nor the new column


def test_a_failed_first_run_creates_no_table(db: Path, source: Source) -> None:
    source.set("orders", {"id": [1], "v": ["a"]}, {"id": [2], "v": ["b"]})
    source.fail_after = 1
    r = run(source, pipeline(db))
    assert not r.ok
    assert tables(db) == set()


def test_a_second_writer_waits_for_the_lock_then_fails_retriably(db: Path, source: Source) -> None:
    source.set("orders", {"id": [1]})
    assert run(source, pipeline(db)).ok
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        source.set("orders", {"id": [2]})
        r = run(source, pipeline(db, timeout=0.2))
    finally:
        holder.close()
    assert not r.ok
    assert (r.error or "").startswith("RetriableError: sqlite:") and "locked" in (r.error or "")
    assert table(db) == [{"id": 1}]


# -- schema drift ------------------------------------------------------------------------------


def test_evolve_adds_columns_and_rebuilds_when_the_affinity_must_change(db: Path, source: Source) -> None:
    spec = pipeline(db, mode="incremental_dedupe", cursor_field="id", primary_key=["id"])
    source.set("orders", {"id": [1, 2], "code": pa.array([7, 42], pa.int64())})
    assert run(source, spec).ok

    source.set("orders", {"id": [3], "code": ["007"], "extra": [1.5]})
    r = run(source, spec)
    assert r.ok, r.error
    assert "+ extra: double (new column in source)" in r.schema_changes
    assert "~ code: int64 in destination, string in source" in r.schema_changes
    got = loader(db).table_schema("orders")
    assert got is not None
    assert (got.field("code").type, got.field("extra").type) == (pa.string(), pa.float64())
    # Rebuilt as TEXT: '007' keeps its leading zeros (an INTEGER column would make it 7) ...
    assert table(db) == [
        {"id": 1, "code": "7", "extra": None},
        {"id": 2, "code": "42", "extra": None},
        {"id": 3, "code": "007", "extra": 1.5},
    ]
    assert rows(db, "SELECT typeof(code) FROM orders WHERE id = 3") == [("text",)]
    # ... and the rebuilt table kept its primary key.
    assert rows(db, "SELECT name FROM pragma_table_info('orders') WHERE pk > 0") == [("id",)]


def test_int32_reading_back_as_int64_is_not_drift(db: Path, source: Source) -> None:
    spec = pipeline(db, drift="freeze", mode="full_refresh_append")
    source.set("orders", {"id": pa.array([1], pa.int32()), "f": pa.array([0.5], pa.float32())})
    assert run(source, spec).ok
    r = run(source, spec)
    assert r.ok, r.error
    assert r.schema_changes == []
    assert loader(db).storage_type(pa.int32()) == pa.int64()


def test_freeze_refuses_a_changed_source_with_the_diff(db: Path, source: Source) -> None:
    source.set("orders", {"id": [1], "v": ["a"]})
    spec = pipeline(db, drift="freeze", mode="full_refresh_append")
    assert run(source, spec).ok

    source.set("orders", {"id": [2], "v": ["b"], "extra": ["x"]})
    reg = registry_for(source)
    ex = reg.extractor("mem", {})
    ld = reg.loader("sqlite", {"path": str(db)})
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
    """storage_type() must match what table_schema() reads back, or every run would look like drift."""
    batch = pa.record_batch(
        {
            "i8": pa.array([1], pa.int8()),
            "u64": pa.array([2**64 - 1], pa.uint64()),
            "f16": pa.array([1.5], pa.float16()),
            "f32": pa.array([1.5], pa.float32()),
            "dec": pa.array([Decimal("1.25")], pa.decimal128(10, 2)),
            "big_dec": pa.array([Decimal("-1.25")], pa.decimal256(50, 2)),
            "ls": pa.array(["x"], pa.large_string()),
            "dict": pa.array(["x"]).dictionary_encode(),
            "bin": pa.array([b"\x00\x01"], pa.binary(2)),
            "flag": [True],
            "d64": pa.array([dt.date(2020, 1, 2)], pa.date64()),
            "t32": pa.array([dt.time(1, 2, 3)], pa.time32("s")),
            "tns": pa.array([1], pa.time64("ns")),
            "dur": pa.array([-5], pa.duration("ms")),
            "ts_ms": pa.array([1], pa.timestamp("ms")),
            "ts_paris": pa.array([1], pa.timestamp("us", "Europe/Paris")),
            "ts_ns_tz": pa.array([1], pa.timestamp("ns", "UTC")),
            "mdn": pa.array([(1, 2, 3)], pa.month_day_nano_interval()),
            "uuid": pa.array([bytes(range(16))], pa.uuid()),
            "lst": pa.array([[1, None]], pa.list_(pa.int32())),
            "fsl": pa.array([[1, 2]], pa.list_(pa.int16(), 2)),
            "st": pa.array(
                [{"a b": 1, 'q"': "x", "d": Decimal("0.10"), "when": dt.datetime(1901, 2, 3, 4, 5, 6, 7)}],
                pa.struct(
                    [
                        ("a b", pa.int32()),
                        ('q"', pa.string()),
                        ("d", pa.decimal128(5, 2)),
                        ("when", pa.timestamp("us")),
                    ]
                ),
            ),
            "mp": pa.array([[("k", b"\xff")]], pa.map_(pa.string(), pa.binary())),
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
    ld = loader(db)
    got = ld.table_schema("orders")
    assert got is not None
    assert {f.name: ld.storage_type(f.type) for f in batch.schema} == {f.name: f.type for f in got}
    back = ld.read_table("orders")
    assert back.num_rows == 2 and back.slice(0, 1).equals(back.slice(1, 1))
    # Every value reads back equal to the source value cast to its storage type.
    expected = pa.table(
        [pc.cast(c, ld.storage_type(c.type)) for c in batch.columns], names=batch.schema.names
    )
    assert back.slice(0, 1).equals(expected)


# -- names and values --------------------------------------------------------------------------


def test_column_names_with_quotes_and_semicolons_work_through_the_engine(db: Path, source: Source) -> None:
    odd = 'we"ird; DROP TABLE orders; --'
    source.set("orders", {"id": [1, 2], odd: ["x", None]})
    spec = pipeline(db, mode="incremental_dedupe", cursor_field="id", primary_key=["id"])
    r = run(source, spec)
    assert r.ok, r.error
    assert table(db) == [{"id": 1, odd: "x"}, {"id": 2, odd: None}]


def test_table_names_with_quotes_and_semicolons_work(db: Path) -> None:
    """Pipeline files only allow plain table names, so this drives the loader API directly."""
    name = 'odd"table; DROP TABLE x; --'
    ld = loader(db)
    stream = StreamSpec(
        name="orders", mode=SyncMode.INCREMENTAL_DEDUPE, cursor_field='c"ol;', primary_key=('c"ol;',)
    )
    for disposition in (Disposition.OVERWRITE, Disposition.MERGE, Disposition.APPEND):
        job = WriteJob(
            "p",
            stream,
            name,
            disposition,
            SchemaDrift.EVOLVE,
            run_id="r1",
            primary_key=('c"ol;',),
            cursor_field='c"ol;',
        )
        batch = pa.record_batch({'c"ol;': [1, 2], "v": ["a", "b"]})
        with ld.open(job) as tx:
            tx.prepare(batch.schema)
            tx.write(batch if disposition is not Disposition.APPEND else batch.slice(0, 0))
            tx.commit(StreamState())
    assert ld.count_rows(name) == 2
    schema = ld.table_schema(name)
    assert schema is not None and schema.names == ['c"ol;', "v"]
    assert ld.read_table(name).column('c"ol;').to_pylist() == [1, 2]


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


def test_values_are_stored_as_documented(db: Path, source: Source) -> None:
    source.set("orders", EXTREMES)
    assert run(source, pipeline(db)).ok
    declared = dict(rows(db, "SELECT name, type FROM pragma_table_info('orders')"))
    assert declared == {
        "id": "INTEGER",
        "i64": "INTEGER",
        "text": "TEXT",
        "dec": "DECIMAL_TEXT(38,10)",
        "ts": "TIMESTAMP",
        "tstz": "TIMESTAMPTZ",
        "day": "DATE",
        "raw": "BLOB",
        "flag": "BOOLEAN",
        "f64": "REAL",
    }
    assert rows(db, "SELECT typeof(dec), dec, typeof(ts), ts, tstz, day, flag FROM orders WHERE id = 2") == [
        (
            "text",
            "-0.0000000001",
            "text",
            "1969-12-31 23:59:59.999999",
            "1969-07-20 20:17:40.000001Z",
            "1969-12-31",
            0,
        )
    ]
    # ISO-8601 text that SQLite's own date functions understand.
    assert rows(db, "SELECT strftime('%Y', ts), julianday(tstz) > 0 FROM orders WHERE id = 3") == [
        ("2100", 1)
    ]


def test_lossy_values_fail_the_load_instead_of_being_cut(db: Path, source: Source) -> None:
    a_date64_with_a_time_part = pa.array([86_400_000 + 1], pa.date64())
    source.set("orders", {"id": [1], "day": a_date64_with_a_time_part})
    r = run(source, pipeline(db))
    assert not r.ok
    assert "LossyValueError" in (r.error or "") and "'day'" in (r.error or "")
    assert "orders" not in tables(db)


def test_state_is_keyed_by_the_state_key_of_a_renamed_table(db: Path, source: Source) -> None:
    source.set("orders", {"id": [1, 2]})
    r = run(
        source, pipeline(db, mode="incremental_append", cursor_field="id", destination_table="orders_copy")
    )
    assert r.ok, r.error
    assert rows(db, "SELECT stream FROM _openfuse_state") == [("orders->orders_copy",)]
    assert loader(db).read_state("p", "orders->orders_copy") is not None
    assert loader(db).read_state("p", "orders") is None


def test_tables_created_elsewhere_are_read_by_affinity(db: Path) -> None:
    db.parent.mkdir(parents=True)
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE legacy (a INT, b VARCHAR(10), c DOUBLE, d BLOB, e NUMERIC, f)")
    con.execute("INSERT INTO legacy VALUES (1, 'x', 1.5, x'00', 2.5, 'free')")
    con.commit()
    con.close()
    got = loader(db).read_table("legacy")
    assert [f.type for f in got.schema] == [
        pa.int64(),
        pa.string(),
        pa.float64(),
        pa.binary(),
        pa.string(),
        pa.string(),
    ]
    assert got.to_pylist() == [{"a": 1, "b": "x", "c": 1.5, "d": b"\x00", "e": "2.5", "f": "free"}]


def test_reading_state_and_schema_of_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "absent.sqlite"
    ld = loader(path)
    assert ld.read_state("p", "orders") is None
    assert ld.table_schema("orders") is None
    assert not path.exists()


def test_a_file_that_is_not_sqlite_is_a_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database, just text " * 100)
    with pytest.raises(ConfigError, match="cannot open SQLite database") as e:
        loader(path).check()
    assert e.value.value == str(path)


def test_timestamps_beyond_year_9999_are_quarantined_not_stored_as_text(db: Path, source: Source) -> None:
    # A DuckDB `infinity` arrives as the largest int64; SQLite keeps dates as ISO text, which has no
    # year beyond 9999: the engine quarantines those rows with the loader's reason (issue #3).
    at = pa.array([0, 253402300799999999, 2**63 - 1, -(2**63 - 1)], pa.int64()).cast(pa.timestamp("us"))
    day = pa.array([0, 2932896, 0, 0], pa.int32()).cast(pa.date32())
    source.set("orders", {"id": [1, 2, 3, 4], "at": at, "day": day})

    r = run(source, pipeline(db))

    assert r.ok, r.error
    assert (r.rows_written, r.rows_quarantined) == (2, 2)
    assert rows(db, "SELECT id, at, day FROM orders ORDER BY id") == [
        (1, "1970-01-01 00:00:00.000000", "1970-01-01"),
        (2, "9999-12-31 23:59:59.999999", "9999-12-31"),
    ]
    q = rows(db, "SELECT position, field, value, reason, record FROM _openfuse_quarantine ORDER BY position")
    assert [(p, f, v.split()[0]) for p, f, v, _, _ in q] == [
        (2, "at", "9223372036854775807"),
        (3, "at", "-9223372036854775807"),
    ]
    assert all("does not fit destination type timestamp[us]" in reason for _, _, _, reason, _ in q)
    assert '"id": 3' in q[0][4]
