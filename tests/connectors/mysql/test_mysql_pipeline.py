"""MySQL -> DuckDB / PostgreSQL through the engine: incremental exactly-once, edge values, quarantine."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from mysql_support import Exec, mysql_registry

from openfuse_connectors.engine import StreamResult, run_pipeline
from openfuse_connectors.spec import parse_pipeline

T0 = dt.datetime(2024, 1, 1, 12, 0, 0, 123456)


def run(source: dict[str, Any], dest: dict[str, Any], **stream: Any) -> StreamResult:
    spec = parse_pipeline(
        {
            "name": "mysql_test",
            "source": {"connector": "mysql", "config": source},
            "destination": dest,
            "streams": [stream],
        }
    )
    [result] = run_pipeline(spec, registry=mysql_registry())
    assert result.ok, result.error
    return result


def dest_table(dest: dict[str, Any], table: str) -> list[dict[str, Any]]:
    loader = mysql_registry().loader(dest["connector"], dest["config"])
    try:
        return loader.read_table(table).to_pylist()
    finally:
        loader.close()


def test_incremental_reads_every_row_once_with_ties_at_the_boundary(
    mysql_db: tuple[dict[str, Any], Exec], tmp_path: Path
) -> None:
    config, sql = mysql_db
    sql("CREATE TABLE events (id int PRIMARY KEY, v int NOT NULL, updated_at datetime(6) NOT NULL)")
    ins = "INSERT INTO events VALUES (%s, %s, %s)"
    sql(ins, [(i, 1, T0) for i in range(1, 6)] + [(6, 1, T0 + dt.timedelta(seconds=1))], many=True)
    duck = {"connector": "duckdb", "config": {"path": str(tmp_path / "out.duckdb")}}
    append = {"name": "events", "mode": "incremental_append", "cursor_field": "updated_at"}
    dedupe = {
        "name": "events",
        "mode": "incremental_dedupe",
        "cursor_field": "updated_at",
        "primary_key": ["id"],
        "destination_table": "events_latest",
    }
    assert run(config, duck, **append).rows_written == 6
    run(config, duck, **dedupe)

    # Late rows at the boundary value, a later row, a row moved past the boundary, and a row
    # changed in place at the boundary (a new version, so loaded again by the append stream).
    t1 = T0 + dt.timedelta(seconds=1)
    sql(ins, [(7, 1, t1), (8, 1, t1), (9, 1, T0 + dt.timedelta(seconds=2))], many=True)
    sql("UPDATE events SET v = 2, updated_at = %s WHERE id = 2", (T0 + dt.timedelta(seconds=3),))
    sql("UPDATE events SET v = 2 WHERE id = 6")
    assert run(config, duck, **append).rows_written == 5
    assert run(config, duck, **append).rows_written == 0
    run(config, duck, **dedupe)
    run(config, duck, **dedupe)

    source = sql("SELECT id, v, updated_at FROM events")
    versions = Counter((r["id"], r["v"], r["updated_at"]) for r in dest_table(duck, "events"))
    first = {(i, 1, T0) for i in range(1, 6)} | {(6, 1, t1)}
    assert versions == Counter(first | set(source))
    latest = sorted((r["id"], r["v"], r["updated_at"]) for r in dest_table(duck, "events_latest"))
    assert latest == sorted(source)


EDGE_DDL = """CREATE TABLE edge (
  id int PRIMARY KEY, b bool, i8 tinyint, u8 tinyint unsigned, i16 smallint, u16 smallint unsigned,
  i32 int, u32 int unsigned, i64 bigint, u64 bigint unsigned, d decimal(38,10), dwide decimal(65,30),
  f float, dbl double, s varchar(255), txt longtext, e enum('a','ü'), st set('x','y'), vb varbinary(16),
  bl longblob, dd date, dtt datetime(6), ts timestamp(6) NULL, tm time(6), y year, j json, bt bit(1),
  bn bit(12))"""
BLOB = bytes(range(256)) * 4
MB_TEXT = "ü" * 400_000 + "x" * 200_000 + "😀" * 50_000
JSON_DOC = '{"k": "ünï😀", "n": [1, 2.5, null]}'
EDGE_ROWS: list[tuple[Any, ...]] = [
    (
        1, 1, 127, 255, 32767, 65535, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615,
        Decimal("9999999999999999999999999999.9999999999"),
        Decimal("12345678901234567890123456789012345.123456789012345678901234567890"),
        1.5, 1.7976931348623157e308, "é😀 4-byte ' \" \\ ` ;", MB_TEXT, "ü", "x,y", b"\x00\xff",
        BLOB, dt.date(9999, 12, 31), dt.datetime(2100, 12, 31, 23, 59, 59, 999999),
        dt.datetime(2038, 1, 19, 3, 14, 7, 999999), dt.time(23, 59, 59, 999999), 2155, JSON_DOC, 1, 4095,
    ),
    (2, *([None] * 27)),
    (
        3, 0, -128, 0, -32768, 0, -2147483648, 0, -9223372036854775808, 0, Decimal("-0.0000000001"),
        Decimal("0E-30"), -0.25, 5e-324, "", "", "a", "", b"", b"", dt.date(1000, 1, 1),
        dt.datetime(1900, 1, 1, 0, 0, 0, 1), dt.datetime(1970, 1, 1, 0, 0, 1), dt.time(0), 1901, "[]", 0, 0,
    ),
]  # fmt: skip
COLUMNS = [
    "id",
    "b",
    "i8",
    "u8",
    "i16",
    "u16",
    "i32",
    "u32",
    "i64",
    "u64",
    "d",
    "dwide",
    "f",
    "dbl",
    "s",
    "txt",
    "e",
    "st",
    "vb",
    "bl",
    "dd",
    "dtt",
    "ts",
    "tm",
    "y",
    "j",
    "bt",
    "bn",
]


def expected(row: tuple[Any, ...]) -> dict[str, Any]:
    """What any destination should hold: Python values, normalised (bit(1) -> bool, ts in UTC...)."""
    out = dict(zip(COLUMNS, row, strict=True))
    if out["id"] != 2:
        out["b"] = bool(out["b"])
        out["bt"] = bool(out["bt"])
        out["ts"] = out["ts"].replace(tzinfo=dt.UTC)
        out["dwide"] = format(out["dwide"], "f")
        out["f"] = float(out["f"])
    if isinstance(out.get("j"), str):
        out["j"] = json.loads(out["j"])  # compared as JSON: PostgreSQL stores it as jsonb
    return out


def normalise(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if isinstance(v, memoryview | bytearray):
            v = bytes(v)
        if k == "u64" and v is not None:
            v = int(v)  # PostgreSQL keeps unsigned bigint as numeric(20,0)
        if k == "ts" and v is not None:
            v = v.astimezone(dt.UTC)
        if k == "j" and isinstance(v, str):
            v = json.loads(v)
        out[k] = v
    return out


@pytest.fixture
def edge_source(mysql_db: tuple[dict[str, Any], Exec]) -> dict[str, Any]:
    config, sql = mysql_db
    sql(EDGE_DDL)
    placeholders = ", ".join(["%s"] * len(COLUMNS))
    sql(f"INSERT INTO edge VALUES ({placeholders})", EDGE_ROWS, many=True)
    # A zero date and an out-of-day TIME: quarantined, not loaded as NULL.
    sql(
        "INSERT INTO edge (id, dd, tm) VALUES (4, '0000-00-00', '12:00:00'), (5, NULL, '-00:00:01')",
        sql_mode="",
    )
    return config


def _check_edge(rows: list[dict[str, Any]]) -> None:
    got = {r["id"]: normalise(r) for r in rows}
    assert sorted(got) == [1, 2, 3]
    for row in EDGE_ROWS:
        want = expected(row)
        for col in COLUMNS:
            assert got[want["id"]][col] == want[col], (want["id"], col)


def test_edge_values_round_trip_into_duckdb(edge_source: dict[str, Any], tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "edge.duckdb"
    duck = {"connector": "duckdb", "config": {"path": str(path)}}
    result = run(edge_source, duck, name="edge")
    assert (result.rows_read, result.rows_written, result.rows_quarantined) == (3, 3, 2)
    _check_edge(dest_table(duck, "edge"))
    con = duckdb.connect(str(path))
    try:
        q = con.sql("SELECT field, value FROM main._openfuse_quarantine ORDER BY field").fetchall()
    finally:
        con.close()
    assert q == [("dd", "0000-00-00"), ("tm", "-00:00:01.000000")]


@pytest.mark.postgres
def test_edge_values_round_trip_into_postgres(edge_source: dict[str, Any], pg_db: str) -> None:
    import psycopg
    from psycopg.rows import dict_row

    result = run(edge_source, {"connector": "postgres", "config": {"dsn": pg_db}}, name="edge")
    assert (result.rows_written, result.rows_quarantined) == (3, 2)
    with psycopg.connect(pg_db, row_factory=dict_row) as conn:
        rows = conn.execute("SELECT * FROM public.edge").fetchall()
        quarantined = conn.execute(
            "SELECT field, value FROM public._openfuse_quarantine ORDER BY field"
        ).fetchall()
    _check_edge(rows)
    assert [(q["field"], q["value"]) for q in quarantined] == [
        ("dd", "0000-00-00"),
        ("tm", "-00:00:01.000000"),
    ]
