"""DuckDB as a source: DuckDB file -> DuckDB file through the engine and the installed registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from openfuse_connectors import ConfigError, PipelineSpec
from openfuse_connectors.builtin.duckdb import DuckDBConfig, DuckDBExtractor, DuckDBLoader
from openfuse_connectors.engine import StreamResult, run_pipeline
from openfuse_connectors.registry import get_registry
from openfuse_connectors.spec import StreamSpec

SOURCE_DDL = """
CREATE TABLE orders (
    id BIGINT PRIMARY KEY, name VARCHAR, amount DECIMAL(38,10), updated_at TIMESTAMPTZ NOT NULL,
    tags VARCHAR[], attrs STRUCT("k;ey" INTEGER, v VARCHAR), doc JSON, ref UUID, raw BLOB, day DATE
)
"""


def execute(path: Path, *sql: str) -> None:
    con = duckdb.connect(str(path))
    try:
        for s in sql:
            con.execute(s)
    finally:
        con.close()


def seed(path: Path, ids: range, ts: str) -> None:
    execute(
        path,
        f"""INSERT INTO orders SELECT g, 'name ' || g || ' 😀', g * 1.25, TIMESTAMPTZ '{ts}',
            ['a', g::VARCHAR], {{'k;ey': g, 'v': 'x'}}, json_object('g', g), uuid(), '\\x00\\xff'::BLOB,
            DATE '1900-01-01' + g::INTEGER FROM range({ids.start}, {ids.stop}) t(g)""",
    )


def spec(src: Path, dst: Path, **stream: Any) -> PipelineSpec:
    return PipelineSpec.model_validate(
        {
            "name": "copy",
            "source": {"connector": "duckdb", "config": {"path": str(src)}},
            "destination": {"connector": "duckdb", "config": {"path": str(dst), "schema": "analytics"}},
            "schema_drift": "freeze",
            "streams": [{"name": "orders", "mode": "full_refresh_overwrite", **stream}],
        }
    )


def run(s: PipelineSpec) -> StreamResult:
    [r] = run_pipeline(s, registry=get_registry())
    assert r.ok, r.error
    return r


def digest(path: Path, table: str) -> pa.Table:
    con = duckdb.connect(str(path))
    try:
        con.execute("SET TimeZone = 'UTC'")
        return con.sql(f"SELECT * FROM {table} ORDER BY id").to_arrow_table()
    finally:
        con.close()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "source.duckdb"
    execute(path, SOURCE_DDL)
    return path


def test_discover_lists_tables_with_keys_and_cursor_candidates_but_not_openfuse_tables(
    src: Path, tmp_path: Path
) -> None:
    execute(
        src,
        "CREATE TABLE _openfuse_state (x INTEGER)",
        "CREATE VIEW big AS SELECT * FROM orders WHERE id > 10",
    )
    infos = {i.name: i for i in DuckDBExtractor(DuckDBConfig(path=src)).discover()}
    assert set(infos) == {"orders", "big"}
    assert infos["orders"].primary_key == ("id",)
    assert infos["orders"].cursor_candidates == ("id", "updated_at", "day")
    assert infos["orders"].schema.field("updated_at").type == pa.timestamp("us", "UTC")


def test_a_copy_is_exact_and_keeps_native_types(src: Path, tmp_path: Path) -> None:
    seed(src, range(1, 2501), "1969-07-20 20:17:40.123456+00")
    dst = tmp_path / "dest.duckdb"
    r = run(spec(src, dst))
    assert r.rows_written == 2500
    assert digest(dst, "analytics.orders").equals(digest(src, "orders"))
    con = duckdb.connect(str(dst))
    try:
        types = dict(
            con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'orders'"
            ).fetchall()
        )
    finally:
        con.close()
    assert (types["doc"], types["ref"], types["amount"]) == ("JSON", "UUID", "DECIMAL(38,10)")


def test_incremental_reads_from_the_cursor_and_loads_each_row_once(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dest.duckdb"
    s = spec(src, dst, mode="incremental_append", cursor_field="updated_at", primary_key=["id"])
    seed(src, range(1, 4), "2040-01-01 00:00:00.000001+00")
    assert run(s).rows_written == 3
    seed(src, range(4, 6), "2040-01-01 00:00:00.000001+00")  # late rows at the same cursor value
    seed(src, range(6, 8), "2040-01-01 00:00:00.000002+00")
    r = run(s)
    assert r.rows_read == 7 and r.rows_written == 4  # read from the cursor (inclusive), wrote only new rows
    assert digest(dst, "analytics.orders").column("id").to_pylist() == list(range(1, 8))
    assert run(s).rows_written == 0


def test_a_missing_source_file_is_a_config_error(tmp_path: Path) -> None:
    ex = DuckDBExtractor(DuckDBConfig(path=tmp_path / "missing.duckdb"))
    with pytest.raises(ConfigError, match="does not exist"):
        ex.check()
    assert not (tmp_path / "missing.duckdb").exists()


def test_the_loader_reads_back_what_the_extractor_reads(src: Path) -> None:
    seed(src, range(1, 3), "2000-01-01 00:00:00+00")
    info = DuckDBExtractor(DuckDBConfig(path=src)).discover()[0]
    assert DuckDBLoader(DuckDBConfig(path=src)).table_schema("orders") == info.schema


def test_hugeint_is_read_exactly_as_decimal256(tmp_path: Path) -> None:
    # DuckDB exports HUGEINT as decimal128(38, 0), which cannot hold its 39-digit values (issue #3).
    src, dst = tmp_path / "src.duckdb", tmp_path / "dst.duckdb"
    values = [2**127 - 1, -(2**127), 10**37, None]
    execute(
        src,
        "CREATE TABLE big (id INTEGER, h HUGEINT, u UHUGEINT)",
        *[
            f"INSERT INTO big VALUES ({i}, {'NULL' if v is None else v}, {'NULL' if v is None else abs(v)})"
            for i, v in enumerate(values)
        ],
    )
    ex = DuckDBExtractor(DuckDBConfig(path=src))
    info = ex.stream_info(StreamSpec(name="big"))
    tab = pa.Table.from_batches(list(ex.read(StreamSpec(name="big"), None)), schema=info.schema)

    assert info.schema.field("h").type == info.schema.field("u").type == pa.decimal256(39, 0)
    assert tab.column("h").to_pylist() == values
    assert tab.column("u").to_pylist() == [None if v is None else abs(v) for v in values]
    # Loaded into DuckDB (no DECIMAL holds 39 digits): exact text.
    doc = spec(src, dst).model_dump(mode="json")
    run(PipelineSpec.model_validate({**doc, "streams": [{"name": "big", "mode": "full_refresh_overwrite"}]}))
    back = DuckDBLoader(DuckDBConfig(path=dst, schema="analytics")).read_table("big").sort_by("id")
    assert back.column("h").to_pylist() == [None if v is None else str(v) for v in values]
