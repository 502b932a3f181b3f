"""MySQL source against the real MariaDB server: catalog, reads, naming, bad input, memory bound."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from mysql_support import Exec, make_exec, mysql_registry

import openfuse_connectors.builtin.mysql.extractor as mysql_extractor
from openfuse_connectors.builtin.mysql import MySQLConfig, MySQLExtractor
from openfuse_connectors.catalog import native_type
from openfuse_connectors.errors import ConfigError, RetriableError, SourceUnreachableError
from openfuse_connectors.spec import StreamSpec, SyncMode
from openfuse_connectors.state import Cursor, StreamState

CHINOOK_TABLES = {
    "Album": ("AlbumId",),
    "Artist": ("ArtistId",),
    "Customer": ("CustomerId",),
    "Employee": ("EmployeeId",),
    "Genre": ("GenreId",),
    "Invoice": ("InvoiceId",),
    "InvoiceLine": ("InvoiceLineId",),
    "MediaType": ("MediaTypeId",),
    "Playlist": ("PlaylistId",),
    "PlaylistTrack": ("PlaylistId", "TrackId"),
    "Track": ("TrackId",),
}


def extractor(config: dict[str, Any]) -> MySQLExtractor:
    ex = mysql_registry().extractor("mysql", config)
    assert isinstance(ex, MySQLExtractor)
    return ex


def read_all(ex: MySQLExtractor, stream: str | StreamSpec, **kw: Any) -> list[dict[str, Any]]:
    spec = StreamSpec(name=stream) if isinstance(stream, str) else stream
    return [r for b in ex.read(spec, kw.pop("state", None), **kw) for r in b.to_pylist()]


@pytest.fixture(scope="module")
def big(mysql_server: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A database holding `big`: 200,000 rows of ~200 bytes (shared by the tests of this module)."""
    name = f"of_test_big_{uuid.uuid4().hex[:8]}"
    admin = make_exec("")
    admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    run = make_exec(name)
    try:
        run("CREATE TABLE digits (d int PRIMARY KEY)")
        run("INSERT INTO digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)")
        run("CREATE TABLE big (id int PRIMARY KEY, pad varchar(200) NOT NULL)")
        run(
            "INSERT INTO big SELECT n, REPEAT(CHAR(65 + n % 26), 200) FROM (SELECT a.d + 10*b.d + 100*c.d "
            "+ 1000*e.d + 10000*f.d + 100000*g.d AS n FROM digits a, digits b, digits c, digits e, digits f, "
            "digits g) x WHERE n < 200000"
        )
        yield {**mysql_server, "database": name}
    finally:
        admin(f"DROP DATABASE IF EXISTS `{name}`")


# -- catalog


def test_discover_chinook_tables_keys_and_types(chinook: dict[str, Any]) -> None:
    streams = {s.name: s for s in extractor(chinook).discover()}
    assert {n: s.primary_key for n, s in streams.items()} == CHINOOK_TABLES
    track = streams["Track"].schema
    assert track.field("TrackId").type == pa.int32() and not track.field("TrackId").nullable
    assert track.field("Name").type == pa.string() and not track.field("Name").nullable
    assert track.field("Composer").type == pa.string() and track.field("Composer").nullable
    assert track.field("UnitPrice").type == pa.decimal128(10, 2)
    assert (native_type(track.field("UnitPrice")) or "").startswith("mysql:decimal(10,2)")
    invoice = streams["Invoice"]
    assert invoice.schema.field("InvoiceDate").type == pa.timestamp("us")
    assert invoice.schema.field("Total").type == pa.decimal128(10, 2)
    assert {"InvoiceId", "CustomerId", "InvoiceDate"} <= set(invoice.cursor_candidates)
    assert "Total" not in invoice.cursor_candidates
    assert streams["Employee"].schema.field("BirthDate").type == pa.timestamp("us")


@pytest.mark.parametrize("table", ["Track", "Invoice"])
def test_full_read_equals_a_direct_query(chinook: dict[str, Any], table: str) -> None:
    ex = extractor(chinook)
    info = ex.stream_info(StreamSpec(name=table))
    cols = ", ".join(f"`{n}`" for n in info.schema.names)
    want = make_exec(chinook["database"])(f"SELECT {cols} FROM `{table}` ORDER BY 1")
    got = read_all(ex, table, batch_size=500)
    assert [tuple(r.values()) for r in sorted(got, key=lambda r: r[info.schema.names[0]])] == want
    assert len(want) > 400


def test_stream_names_bare_and_db_qualified(
    mysql_db: tuple[dict[str, Any], Exec], chinook: dict[str, Any]
) -> None:
    config, run = mysql_db
    run("CREATE TABLE `a.b` (id int PRIMARY KEY)")
    run("INSERT INTO `a.b` VALUES (7)")
    run("CREATE VIEW v AS SELECT id * 2 AS twice FROM `a.b`")
    ex = extractor(config)
    assert sorted(s.name for s in ex.discover()) == ["a.b", "v"]
    # An exact table name wins over the `db.table` reading of a dotted name.
    assert read_all(ex, "a.b") == [{"id": 7}]
    assert read_all(ex, "v") == [{"twice": 14}]
    # Another database on the same server, as `db.table`.
    other = f"{chinook['database']}.Genre"
    assert ex.stream_info(StreamSpec(name=other)).primary_key == ("GenreId",)
    assert len(read_all(ex, other)) == 25


def test_unknown_table_is_a_config_error_naming_it(mysql_db: tuple[dict[str, Any], Exec]) -> None:
    config, _ = mysql_db
    with pytest.raises(ConfigError) as ei:
        list(extractor(config).read(StreamSpec(name="no_such_table"), None))
    assert "no_such_table" in str(ei.value) and config["database"] in str(ei.value)
    assert ei.value.field == "streams[no_such_table].name"


def test_types_and_native_metadata(mysql_db: tuple[dict[str, Any], Exec]) -> None:
    config, run = mysql_db
    run(
        "CREATE TABLE t (id bigint unsigned PRIMARY KEY, b bool, i8 tinyint, u8 tinyint unsigned, "
        "u24 mediumint unsigned, d65 decimal(65,30), f float, j json, bt1 bit(1), bt bit(12), "
        "y year, g point, tm time(3), ts timestamp(6) NULL, e enum('x','y'))"
    )
    info = extractor(config).stream_info(StreamSpec(name="t"))
    types = {f.name: f.type for f in info.schema}
    assert types == {
        "id": pa.uint64(),
        "b": pa.bool_(),
        "i8": pa.int8(),
        "u8": pa.uint8(),
        "u24": pa.uint32(),
        "d65": pa.string(),
        "f": pa.float32(),
        "j": pa.string(),
        "bt1": pa.bool_(),
        "bt": pa.uint64(),
        "y": pa.int16(),
        "g": pa.binary(),
        "tm": pa.time64("us"),
        "ts": pa.timestamp("us", tz="UTC"),
        "e": pa.string(),
    }
    assert native_type(info.schema.field("j")) == "mysql:json"
    assert info.primary_key == ("id",) and "id" in info.cursor_candidates
    as_int = extractor({**config, "tinyint1_as_bool": False}).stream_info(StreamSpec(name="t"))
    assert as_int.schema.field("b").type == pa.int8()


def test_float_and_bit_values_are_exact(mysql_db: tuple[dict[str, Any], Exec]) -> None:
    config, run = mysql_db
    run("CREATE TABLE f (id int PRIMARY KEY, f float, d double, b1 bit(1), b bit(64))")
    floats = [1.2345678, 3.4028234663852886e38, 1.401298464324817e-45, -0.1]
    rows = [(i, v, v, i % 2, 2**64 - 1 - i) for i, v in enumerate(floats)]
    run("INSERT INTO f VALUES (%s, %s, %s, %s, %s)", rows, many=True)
    got = read_all(extractor(config), "f")
    want32 = pa.array(floats, pa.float32()).to_pylist()
    assert [r["f"] for r in got] == want32
    assert [r["d"] for r in got] == floats
    assert [(r["b1"], r["b"]) for r in got] == [(bool(i % 2), 2**64 - 1 - i) for i in range(len(floats))]


def test_values_without_an_arrow_equivalent_are_held_back_not_nulled(
    mysql_db: tuple[dict[str, Any], Exec],
) -> None:
    config, run = mysql_db
    run(
        "CREATE TABLE z (id int PRIMARY KEY, d date, dt datetime, tm time, flag tinyint(1), "
        "nn date NOT NULL DEFAULT '2000-01-01')"
    )
    run("INSERT INTO z (id, nn) VALUES (8, '0000-00-00')", sql_mode="")
    run(
        "INSERT INTO z (id, d, dt, tm, flag) VALUES (1, '2024-01-02', '2024-01-02 03:04:05', '12:00:00', 1), "
        "(2, '0000-00-00', '2024-01-02 03:04:05', '12:00:00', 0), "
        "(3, '2024-01-02', '2024-00-00 00:00:00', '12:00:00', 0), "
        "(4, '2024-01-02', '2024-01-02 03:04:05', '-01:00:00', 0), "
        "(5, '2024-01-02', '2024-01-02 03:04:05', '25:00:00', 0), "
        "(6, '2024-01-02', '2024-01-02 03:04:05', '12:00:00', 2), "
        "(7, NULL, NULL, NULL, NULL)",
        sql_mode="",
    )
    ex = extractor(config)
    got = read_all(ex, "z", batch_size=3)
    assert [r["id"] for r in got] == [1, 7]
    assert got[0]["tm"] == dt.time(12) and got[1]["d"] is None
    rejects = {r.record["id"]: r for r in ex.take_rejects()}
    assert {k: (r.field, r.value) for k, r in rejects.items()} == {
        "2": ("d", "0000-00-00"),
        "3": ("dt", "2024-00-00 00:00:00"),
        "4": ("tm", "-01:00:00"),
        "5": ("tm", "25:00:00"),
        "6": ("flag", "2"),
        "8": ("nn", "0000-00-00"),
    }
    assert "zero or partial date" in rejects["2"].reason
    assert "TIME outside" in rejects["4"].reason
    assert "tinyint1_as_bool" in rejects["6"].reason
    assert ex.take_rejects() == []
    # With tinyint1_as_bool off the 2 is an ordinary int8.
    as_int = extractor({**config, "tinyint1_as_bool": False})
    assert {r["id"]: r["flag"] for r in read_all(as_int, "z")}[6] == 2


def test_hostile_identifiers_are_quoted(mysql_db: tuple[dict[str, Any], Exec]) -> None:
    config, run = mysql_db
    table = "we`ird; 'ta\"ble"
    col = "c`ur; DROP TABLE x; --"
    qt = "`" + table.replace("`", "``") + "`"
    qc = "`" + col.replace("`", "``") + "`"
    run(f"CREATE TABLE {qt} (`i``d` int PRIMARY KEY, {qc} int NOT NULL, `v'\"` varchar(20))")
    run(f"INSERT INTO {qt} VALUES (1, 10, 'a'), (2, 20, 'b'), (3, 30, 'c')")
    ex = extractor(config)
    [info] = ex.discover()
    assert info.name == table and info.primary_key == ("i`d",)
    assert info.schema.names == ["i`d", col, "v'\""]
    spec = StreamSpec(name=table, mode=SyncMode.INCREMENTAL_APPEND, cursor_field=col)
    state = StreamState(cursor=Cursor.from_scalar(col, pa.scalar(20, pa.int32())))
    assert [r["i`d"] for r in read_all(ex, spec, state=state)] == [2, 3]
    assert len(run(f"SELECT * FROM {qt}")) == 3


def test_string_cursors_compare_as_bytes_and_are_safe(mysql_db: tuple[dict[str, Any], Exec]) -> None:
    config, run = mysql_db
    run("CREATE TABLE s (k varchar(40) PRIMARY KEY) COLLATE utf8mb4_general_ci")
    keys = ["Z", "_", "a", "b' OR '1'='1", "b\\", "c😀", "é"]
    run("INSERT INTO s VALUES (%s)", [(k,) for k in keys], many=True)
    spec = StreamSpec(name="s", mode=SyncMode.INCREMENTAL_APPEND, cursor_field="k")
    ex = extractor(config)
    for cursor in ["_", "b' OR '1'='1"]:
        state = StreamState(cursor=Cursor(field="k", type="string", value=cursor))
        got = sorted(r["k"] for r in read_all(ex, spec, state=state))
        # Arrow's (the engine's) order is byte order; under the collation 'a' < '_' and it was lost.
        assert got == sorted(k for k in keys if k.encode() >= cursor.encode()), cursor


# -- bad input


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_names_host_and_port_never_the_password() -> None:
    port = _free_port()
    ex = extractor(
        {"host": "127.0.0.1", "port": port, "user": "u", "password": "pw-s3cr3t", "database": "shop"}
    )
    with pytest.raises(SourceUnreachableError) as ei:
        ex.check()
    msg = str(ei.value)
    assert "127.0.0.1" in msg and str(port) in msg and "shop" in msg
    assert "pw-s3cr3t" not in msg and "pw-s3cr3t" not in repr(ei.value.__cause__)
    assert isinstance(ei.value, RetriableError)


def test_wrong_password_is_reported_without_it(mysql_server: dict[str, Any]) -> None:
    ex = extractor({**mysql_server, "password": "wrong-s3cr3t", "database": "mysql"})
    with pytest.raises(SourceUnreachableError) as ei:
        ex.check()
    assert "1045" in str(ei.value) and "wrong-s3cr3t" not in str(ei.value)


def test_check_is_bounded_by_connect_timeout_on_a_silent_server() -> None:
    with socket.socket() as srv:  # accepts TCP connections, never says a word
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        ex = extractor(
            {
                "host": "127.0.0.1",
                "port": port,
                "user": "u",
                "password": "",
                "database": "d",
                "connect_timeout": 1,
            }
        )
        started = time.monotonic()
        with pytest.raises(SourceUnreachableError):
            ex.check()
        assert time.monotonic() - started < 10


def test_tls_required_refuses_a_plaintext_server(mysql_server: dict[str, Any]) -> None:
    ex = extractor({**mysql_server, "database": "mysql", "ssl": {"mode": "required"}})
    with pytest.raises(SourceUnreachableError, match="not encrypted"):
        ex.check()


def test_config_refuses_unknown_keys_and_hides_the_password() -> None:
    with pytest.raises(ConfigError) as ei:
        extractor({"host": "h", "user": "u", "password": "p", "database": "d", "passwd": "x"})
    assert ei.value.field == "source.config.passwd"
    schema = MySQLConfig.json_schema()
    assert schema["properties"]["password"]["writeOnly"] is True
    assert "password" in schema["required"]


def test_importing_the_connector_loads_no_driver() -> None:
    code = "import sys, openfuse_connectors.builtin.mysql; print('MySQLdb' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False"


# -- streaming


def test_batches_stay_within_batch_size(big: dict[str, Any]) -> None:
    sizes = [b.num_rows for b in extractor(big).read(StreamSpec(name="big"), None, batch_size=10_000)]
    assert sum(sizes) == 200_000
    assert max(sizes) <= 10_000 and len(sizes) >= 20


def test_wide_rows_get_smaller_batches(big: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mysql_extractor, "BATCH_BYTES", 256 << 10)
    spec = StreamSpec(name="big", mode=SyncMode.INCREMENTAL_APPEND, cursor_field="id")
    state = StreamState(cursor=Cursor.from_scalar("id", pa.scalar(190_000, pa.int32())))
    batches = list(extractor(big).read(spec, state, batch_size=5_000))
    assert sum(b.num_rows for b in batches) == 10_000
    assert max(b.num_rows for b in batches) < 2_000
    assert max(b.nbytes for b in batches) <= 2 * (256 << 10)


def _running(database: str) -> list[tuple[Any, ...]]:
    return make_exec("")(
        "SELECT ID, INFO FROM information_schema.PROCESSLIST WHERE DB = %s AND INFO LIKE 'SELECT%%big%%'",
        (database,),
    )


def test_stopping_early_leaves_no_query_running(big: dict[str, Any]) -> None:
    gen = extractor(big).read(StreamSpec(name="big"), None, batch_size=1_000)
    assert next(gen).num_rows == 1_000
    assert _running(big["database"])
    gen.close()
    deadline = time.monotonic() + 10
    while _running(big["database"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(big["database"])


def test_stopping_while_the_server_is_slow_interrupts_the_query(
    mysql_db: tuple[dict[str, Any], Exec],
) -> None:
    config, run = mysql_db
    run("CREATE TABLE t (id int PRIMARY KEY, body mediumtext)")
    run("INSERT INTO t VALUES (1, REPEAT('x', 200000)), (2, 'y')")  # row 1 fills the server's buffer
    run("CREATE VIEW slow AS SELECT id, body, IF(id = 2, SLEEP(60), 0) AS s FROM t")
    gen = extractor(config).read(StreamSpec(name="slow"), None, batch_size=1)
    assert next(gen).num_rows == 1
    started = time.monotonic()
    gen.close()  # the reader thread waits in the driver for row 2: its query is killed
    assert time.monotonic() - started < 30
    assert not run(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE '%%SLEEP(60)%%' AND ID <> CONNECTION_ID()"
    )


def test_a_killed_read_is_retriable(big: dict[str, Any]) -> None:
    gen = extractor(big).read(StreamSpec(name="big"), None, batch_size=1_000)
    next(gen)
    [(thread, _)] = _running(big["database"])
    make_exec("")(f"KILL QUERY {int(thread)}")
    with pytest.raises(RetriableError) as ei:
        for _ in gen:
            pass
    assert "big" in str(ei.value) and "1317" in str(ei.value)


def test_unsigned_timestamp_and_date_cursor_literals(mysql_db: tuple[dict[str, Any], Exec]) -> None:
    config, run = mysql_db
    run("CREATE TABLE c (id bigint unsigned PRIMARY KEY, ts timestamp(6) NULL, d date)")
    big_id = 2**64 - 3
    rows = [
        (
            big_id + i,
            dt.datetime(2038, 1, 19, 3, 14, 7, 999_997 + i),
            dt.date(1969, 12, 30) + dt.timedelta(days=i),
        )
        for i in range(3)
    ]
    run("INSERT INTO c VALUES (%s, %s, %s)", rows, many=True)
    ex = extractor(config)
    for field, scalar, want in [
        ("id", pa.scalar(big_id + 1, pa.uint64()), [big_id + 1, big_id + 2]),
        (
            "ts",
            pa.scalar(dt.datetime(2038, 1, 19, 3, 14, 7, 999_998, tzinfo=dt.UTC), pa.timestamp("us", "UTC")),
            [big_id + 1, big_id + 2],
        ),
        ("d", pa.scalar(dt.date(1969, 12, 31)), [big_id + 1, big_id + 2]),
    ]:
        spec = StreamSpec(name="c", mode=SyncMode.INCREMENTAL_APPEND, cursor_field=field)
        state = StreamState(cursor=Cursor.from_scalar(field, scalar))
        assert sorted(r["id"] for r in read_all(ex, spec, state=state)) == want, field
