"""SQLite as a source: SQLite file -> SQLite file through the engine and the installed registry."""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from openfuse_connectors import ConfigError, PipelineSpec, StreamSpec, StreamState
from openfuse_connectors.builtin.sqlite import SQLiteConfig, SQLiteExtractor, SQLiteLoader
from openfuse_connectors.engine import StreamResult, run_pipeline
from openfuse_connectors.loader import Disposition, WriteJob
from openfuse_connectors.registry import get_registry
from openfuse_connectors.spec import SchemaDrift, SyncMode

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64()),
        pa.field("name", pa.string()),
        pa.field("amount", pa.decimal128(38, 10)),
        pa.field("updated_at", pa.timestamp("us", "UTC")),
        pa.field("tags", pa.list_(pa.string())),
    ]
)


def load(path: Path, ids: range, ts: dt.datetime) -> None:
    """Write rows into the source with the SQLite loader itself, as a previous pipeline would."""
    batch = pa.record_batch(
        [
            pa.array(list(ids), pa.int64()),
            pa.array([f"name {i} 😀" for i in ids]),
            pa.array([Decimal(i) / 8 for i in ids], pa.decimal128(38, 10)),
            pa.array([ts] * len(ids), pa.timestamp("us", "UTC")),
            pa.array([["a", str(i)] for i in ids], pa.list_(pa.string())),
        ],
        schema=SCHEMA,
    )
    ld = SQLiteLoader(SQLiteConfig(path=path))
    stream = StreamSpec(name="orders", mode=SyncMode.FULL_REFRESH_APPEND)
    with ld.open(
        WriteJob("seed", stream, "orders", Disposition.APPEND, SchemaDrift.EVOLVE, run_id="seed")
    ) as tx:
        tx.prepare(SCHEMA)
        tx.write(batch)
        tx.commit(StreamState())


def spec(src: Path, dst: Path, **stream: Any) -> PipelineSpec:
    return PipelineSpec.model_validate(
        {
            "name": "copy",
            "source": {"connector": "sqlite", "config": {"path": str(src)}},
            "destination": {"connector": "sqlite", "config": {"path": str(dst)}},
            "schema_drift": "freeze",
            "streams": [{"name": "orders", "mode": "full_refresh_overwrite", **stream}],
        }
    )


def run(s: PipelineSpec) -> StreamResult:
    [r] = run_pipeline(s, registry=get_registry())
    assert r.ok, r.error
    return r


def read(path: Path) -> pa.Table:
    return SQLiteLoader(SQLiteConfig(path=path)).read_table("orders").sort_by("id")


def test_discover_types_tables_and_skips_openfuse_tables(tmp_path: Path) -> None:
    src = tmp_path / "src.sqlite"
    load(src, range(1, 3), dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    con = sqlite3.connect(src)
    con.execute("CREATE TABLE legacy (k INTEGER PRIMARY KEY, v TEXT)")
    con.close()
    infos = {i.name: i for i in SQLiteExtractor(SQLiteConfig(path=src)).discover()}
    assert set(infos) == {"orders", "legacy"}
    assert [f.type for f in infos["orders"].schema] == SCHEMA.types
    assert infos["legacy"].primary_key == ("k",)
    assert infos["orders"].cursor_candidates == ("id", "updated_at")


def test_a_copy_is_exact(tmp_path: Path) -> None:
    src, dst = tmp_path / "src.sqlite", tmp_path / "dst.sqlite"
    load(src, range(1, 12_001), dt.datetime(1950, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC))
    r = run(spec(src, dst))
    assert r.rows_written == 12_000
    assert read(dst).equals(read(src))


def test_incremental_reads_from_the_cursor_and_loads_each_row_once(tmp_path: Path) -> None:
    src, dst = tmp_path / "src.sqlite", tmp_path / "dst.sqlite"
    s = spec(src, dst, mode="incremental_append", cursor_field="updated_at", primary_key=["id"])
    t1 = dt.datetime(2040, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC)
    load(src, range(1, 4), t1)
    assert run(s).rows_written == 3
    load(src, range(4, 6), t1)  # late rows at the same cursor value
    load(src, range(6, 8), t1 + dt.timedelta(microseconds=1))
    r = run(s)
    assert (r.rows_read, r.rows_written) == (7, 4)  # read from the cursor (inclusive), wrote only new rows
    assert read(dst).column("id").to_pylist() == list(range(1, 8))
    assert run(s).rows_written == 0


def test_a_missing_source_file_is_a_config_error(tmp_path: Path) -> None:
    ex = SQLiteExtractor(SQLiteConfig(path=tmp_path / "missing.sqlite"))
    with pytest.raises(ConfigError, match="does not exist"):
        ex.check()
    assert not (tmp_path / "missing.sqlite").exists()
