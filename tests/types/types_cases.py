"""The edge values of the type matrix: one edge table definition per source dialect.

Every value is written in its *canonical* Python form (``int``, ``Decimal``, ``float``, ``str``,
``bytes``, ``date``, ``time``, naive ``datetime`` for timestamps without time zone, UTC
``datetime`` for timestamps with one, :class:`Interval`, ``UUID``, :class:`Json`, lists and
dicts). Each source dialect renders them into its own storage (SQL literals, CSV cells, JSON,
Parquet), and :mod:`types_harness` normalises what a destination hands back into the same form,
so "equal" means the value survived, whatever the representation.

Two markers stand for values with no exact Arrow equivalent:

* :class:`Reject` - the source holds ``literal`` (a MySQL zero date, a TINYINT(1) of 2, ...);
  the only correct outcome is a quarantined row naming the column.
* :class:`Infinity` - a temporal ``infinity`` (PostgreSQL, DuckDB): kept as infinity, or
  quarantined.

Rows are *sparse*: row 1 is NULL in every column, and every other row holds exactly one value of
one column (ids are numbered in definition order), so a quarantined or altered row points at one
column and one value.
"""

from __future__ import annotations

import datetime as dt
import struct
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID

__all__ = [
    "DESTINATIONS",
    "DIALECTS",
    "NULL_ROW",
    "SOURCES",
    "Column",
    "Dialect",
    "Infinity",
    "Interval",
    "Json",
    "Reject",
]

UTC = dt.UTC


@dataclass(frozen=True)
class Interval:
    """A calendar interval as PostgreSQL and DuckDB keep it (and Arrow's month_day_nano)."""

    months: int
    days: int
    micros: int


@dataclass(frozen=True)
class Json:
    """A JSON document; compared by structure (numbers exactly, as Decimal), not by its text."""

    text: str


@dataclass(frozen=True)
class Reject:
    """A source value without an exact Arrow equivalent: it must be quarantined."""

    literal: Any


@dataclass(frozen=True)
class Infinity:
    """A temporal infinity (``'infinity'`` / ``'-infinity'``)."""

    sign: int

    @property
    def literal(self) -> str:
        return "infinity" if self.sign > 0 else "-infinity"


def _f32(x: float) -> float:
    """The float32 nearest to ``x``, as the float64 that holds it exactly."""
    return float(struct.unpack("f", struct.pack("f", x))[0])


NAN, INF = float("nan"), float("inf")

BOOLS = (True, False)
INT8 = (-128, 127)
INT16 = (-32768, 32767)
INT32 = (-2147483648, 2147483647)
INT64 = (-9223372036854775808, 9223372036854775807, 0)
UINT64 = (18446744073709551615, 0)
DEC38 = (
    Decimal("9999999999999999999999999999.9999999999"),
    Decimal("-9999999999999999999999999999.9999999999"),
    Decimal("0.0000000001"),
    Decimal("-0.0000000001"),
    Decimal("0.0000000000"),
    Decimal("1.5000000000"),
)
#: More digits than a 128-bit decimal holds (38): PostgreSQL `numeric`, MySQL DECIMAL(65,30),
#: Arrow decimal256.
DEC_WIDE = (
    Decimal("123456789012345678901234567890.123456789012345678901234567890"),
    Decimal("-0.000000000000000000000000000001"),
)
DEC_UNBOUNDED = (*DEC_WIDE, Decimal("1E+50"), Decimal("-0.000000000000000000000000000000000000000000001"))
DEC65 = (
    Decimal("12345678901234567890123456789012345.123456789012345678901234567890"),
    Decimal("-0.000000000000000000000000000001"),
)
F64 = (1.5, -0.0, 0.1, 1.7976931348623157e308, 5e-324, NAN, INF, -INF)
F64_FINITE = tuple(v for v in F64 if v == v and abs(v) != INF)
F32 = (1.5, -0.0, _f32(0.1), _f32(3.4028234663852886e38), _f32(1.401298464324817e-45), NAN, INF, -INF)

_UNIT = "ünï 😀 中文 𝄞 0123456789 abcdefghijklmnopqrstuvwxyz "
TEXT_1MB = _UNIT * (1_048_576 // len(_UNIT.encode()) + 1)  # a little over 1 MiB of UTF-8
TEXTS = (
    "",
    "  padded  ",
    "NULL",
    "é ünï 中文 😀🎉 𝄞 (4-byte)",
    "ctrl \t tab \n lf \r cr \x01 \x1b \x7f \u0085 \u2028 end",
    "quote ' double \" back \\ comma , semi ; tick ` pct % brace {}",
    TEXT_1MB,
)
DATES = (
    dt.date(1, 1, 1),
    dt.date(1900, 1, 1),
    dt.date(1969, 12, 31),
    dt.date(1970, 1, 1),
    dt.date(2038, 1, 20),
    dt.date(9999, 12, 31),
)
TIMES = (dt.time(0, 0), dt.time(12, 34, 56, 789012), dt.time(23, 59, 59, 999999))
TIMESTAMPS = (
    dt.datetime(1, 1, 1),
    dt.datetime(1900, 1, 1, 0, 0, 0, 1),
    dt.datetime(1969, 12, 31, 23, 59, 59, 999999),
    dt.datetime(2038, 1, 19, 3, 14, 8, 1),
    dt.datetime(2100, 12, 31, 23, 59, 59, 999999),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
)
TIMESTAMPS_TZ = tuple(t.replace(tzinfo=UTC) for t in TIMESTAMPS)
INTERVALS = (
    Interval(14, 3, 14_706_789_012),  # 1 year 2 mons 3 days 04:05:06.789012
    Interval(-14, -3, -1),
    Interval(0, 0, 0),
    Interval(0, 0, 3_600_000_000_000_000),  # 1,000,000 hours
)
UUIDS = (UUID(int=0), UUID(int=2**128 - 1), UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"))
JSONS = tuple(
    Json(t)
    for t in (
        '{"a": [1, 2.5, null, {"b": "ünï 😀 \\u0001 \\n"}], "c": {"d": true, "e": {"f": [[]]}}}',
        "[]",
        "{}",
        '"just a string"',
        "null",
        "12345678901234567890123",
        '{"n": 1.000000000000000000001, "big": -98765432109876543210}',
    )
)
#: JSON Lines can only nest objects: these are the documents of its object column.
JSON_OBJECTS = tuple(
    Json(t)
    for t in (
        '{"a": [1, 2, 3], "b": {"c": "ünï 😀", "d": true}}',
        '{"a": [], "b": {"c": "", "d": false}}',
        '{"other": "keys differ from row to row"}',
        "{}",
    )
)
LIST_INTS = ([1, None, -9223372036854775808], [], [9223372036854775807])
LIST_TEXTS = (["a", None, "é😀", "", "ctrl \t \n"], [])
BYTES = (b"", b"\x00", bytes(range(256)), bytes(range(256)) * 256)
STRUCTS = ({"a": 1, "b": "ü😀"}, {"a": None, "b": None})


@dataclass(frozen=True)
class Column:
    """One column of a source's edge table.

    Attributes:
        name: column name (also the destination table of its stream).
        native: the source's own type: SQL type, Arrow type (Parquet), or how it is written
            (CSV cell, JSON value).
        kind: canonical kind, see :func:`types_harness.canon`.
        values: the non-NULL values, canonical (or :class:`Reject` / :class:`Infinity`).
        note: what this column is about, for the matrix.
    """

    name: str
    native: str
    kind: str
    values: tuple[Any, ...]
    note: str = ""


@dataclass(frozen=True)
class Dialect:
    """A source and its edge table."""

    name: str
    connector: str
    columns: tuple[Column, ...]
    #: "table": a table ``edge`` of a database; "file": a file ``edge.<name>`` of the files source.
    layout: str = "table"
    note: str = ""
    ids: dict[str, tuple[int, ...]] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        n = NULL_ROW
        for c in self.columns:
            self.ids[c.name] = tuple(range(n + 1, n + 1 + len(c.values)))
            n += len(c.values)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def rows(self) -> list[tuple[int, Column | None, Any]]:
        """(id, column, value) of every row; the NULL row has no column."""
        out: list[tuple[int, Column | None, Any]] = [(NULL_ROW, None, None)]
        for c in self.columns:
            out.extend((i, c, v) for i, v in zip(self.ids[c.name], c.values, strict=True))
        return out

    def owner(self) -> dict[int, tuple[Column | None, Any]]:
        """id -> (the column holding the row's one value, that value); (None, None) for the NULL row."""
        return {i: (c, v) for i, c, v in self.rows()}


NULL_ROW = 1

C = Column

POSTGRES = Dialect(
    "postgres",
    "postgres",
    (
        C("c_bool", "boolean", "bool", BOOLS),
        C("c_int2", "smallint", "int", INT16),
        C("c_int4", "integer", "int", INT32),
        C("c_int8", "bigint", "int", INT64),
        C("c_num38", "numeric(38,10)", "decimal", DEC38),
        C("c_num", "numeric", "decimal", DEC_UNBOUNDED, "unconstrained numeric (more than 38 digits)"),
        C(
            "c_num_special",
            "numeric",
            "decimal",
            (Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")),
            "numeric NaN / ±Infinity",
        ),
        C("c_real", "real", "float", F32),
        C("c_double", "double precision", "float", F64),
        C("c_text", "text", "text", TEXTS),
        C("c_date", "date", "date", DATES),
        C("c_date_inf", "date", "date", (Infinity(1), Infinity(-1)), "date ±infinity"),
        C("c_time", "time", "time", TIMES),
        C(
            "c_timetz",
            "time with time zone",
            "text",
            ("12:34:56.789012+05:30", "00:00:00+00"),
            "read as its text",
        ),
        C("c_ts", "timestamp", "ts", TIMESTAMPS),
        C("c_tstz", "timestamptz", "tstz", TIMESTAMPS_TZ),
        C("c_tstz_inf", "timestamptz", "tstz", (Infinity(1), Infinity(-1)), "timestamptz ±infinity"),
        C("c_interval", "interval", "interval", INTERVALS),
        C("c_uuid", "uuid", "uuid", UUIDS),
        C("c_json", "json", "json", JSONS),
        C("c_jsonb", "jsonb", "json", JSONS),
        C("c_int_arr", "bigint[]", "list", LIST_INTS),
        C("c_int_arr_2d", "bigint[]", "list", ([[1, 2], [3, 4]],), "a 2-D value in an array column"),
        C("c_text_arr", "text[]", "list", LIST_TEXTS),
        C("c_bytea", "bytea", "bytes", BYTES),
    ),
)

MYSQL = Dialect(
    "mysql",
    "mysql",
    (
        C("c_bool", "tinyint(1)", "bool", (*BOOLS, Reject(2)), "2 has no bool equivalent"),
        C("c_int1", "tinyint", "int", INT8),
        C("c_int2", "smallint", "int", INT16),
        C("c_int4", "int", "int", INT32),
        C("c_int8", "bigint", "int", INT64),
        C("c_uint8", "bigint unsigned", "int", UINT64),
        C("c_dec38", "decimal(38,10)", "decimal", DEC38),
        C("c_dec65", "decimal(65,30)", "decimal", DEC65),
        C("c_float", "float", "float", (1.5, _f32(0.1), _f32(3.4e38), _f32(1.1754943508222875e-38))),
        C("c_double", "double", "float", (1.5, 0.1, 1.7976931348623157e308, 2.2250738585072014e-308)),
        C("c_text", "longtext", "text", TEXTS),
        C(
            "c_date",
            "date",
            "date",
            (dt.date(1000, 1, 1), *DATES[2:], Reject("0000-00-00")),
            "zero date has no equivalent",
        ),
        C(
            "c_time",
            "time(6)",
            "time",
            (*TIMES, Reject("838:59:59"), Reject("-00:00:01")),
            "TIME beyond a time of day",
        ),
        C("c_datetime", "datetime(6)", "ts", (dt.datetime(1000, 1, 1), *TIMESTAMPS[1:])),
        C(
            "c_timestamp",
            "timestamp(6)",
            "tstz",
            (
                dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
                dt.datetime(2000, 2, 29, 12, 0, 0, 123456, tzinfo=UTC),
                dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=UTC),
            ),
            "TIMESTAMP's whole range is 1970..2038",
        ),
        C("c_uuid", "uuid", "uuid", UUIDS, "MariaDB UUID type"),
        C("c_json", "json", "json", JSONS),
        C("c_blob", "longblob", "bytes", BYTES),
    ),
    note="MariaDB 10.11 here. MySQL/MariaDB have no NaN/Infinity, -0.0, interval or array types.",
)

DUCKDB = Dialect(
    "duckdb",
    "duckdb",
    (
        C("c_bool", "BOOLEAN", "bool", BOOLS),
        C("c_int1", "TINYINT", "int", INT8),
        C("c_int2", "SMALLINT", "int", INT16),
        C("c_int4", "INTEGER", "int", INT32),
        C("c_int8", "BIGINT", "int", INT64),
        C("c_uint8", "UBIGINT", "int", UINT64),
        C("c_hugeint", "HUGEINT", "int", (2**127 - 1, -(2**127), 10**37), "39-digit integers"),
        C("c_dec38", "DECIMAL(38,10)", "decimal", DEC38),
        C("c_float", "FLOAT", "float", F32),
        C("c_double", "DOUBLE", "float", F64),
        C("c_text", "VARCHAR", "text", TEXTS),
        C("c_date", "DATE", "date", DATES),
        C("c_time", "TIME", "time", TIMES),
        C("c_ts", "TIMESTAMP", "ts", TIMESTAMPS),
        C("c_tstz", "TIMESTAMPTZ", "tstz", TIMESTAMPS_TZ),
        C("c_ts_inf", "TIMESTAMP", "ts", (Infinity(1), Infinity(-1)), "timestamp ±infinity"),
        C("c_interval", "INTERVAL", "interval", INTERVALS),
        C("c_uuid", "UUID", "uuid", UUIDS),
        C("c_json", "JSON", "json", JSONS),
        C("c_int_list", "BIGINT[]", "list", LIST_INTS),
        C("c_text_list", "VARCHAR[]", "list", LIST_TEXTS),
        C("c_struct", "STRUCT(a BIGINT, b VARCHAR)", "struct", STRUCTS),
        C("c_blob", "BLOB", "bytes", BYTES),
    ),
)

SQLITE = Dialect(
    "sqlite",
    "sqlite",
    (
        C("c_int", "INTEGER", "int", INT64),
        C(
            "c_real",
            "REAL",
            "float",
            tuple(v for v in F64 if v == v and str(v) != "-0.0"),
            "SQLite itself stores NaN as NULL and -0.0 as 0",
        ),
        C("c_text", "TEXT", "text", TEXTS),
        C("c_blob", "BLOB", "bytes", BYTES),
        C("c_bool", "BOOLEAN", "bool", BOOLS, "stored as 1 / 0"),
        C("c_decimal", "TEXT", "decimal", DEC38, "decimals kept as text"),
        C("c_date", "DATE", "date", DATES, "ISO text"),
        C("c_time", "TIME", "time", TIMES, "ISO text"),
        C("c_ts", "TIMESTAMP", "ts", TIMESTAMPS, "ISO text"),
        C("c_tstz", "TIMESTAMPTZ", "tstz", TIMESTAMPS_TZ, "ISO text with offset"),
        C("c_uuid", "TEXT", "uuid", UUIDS),
        C("c_json", "TEXT", "json", JSONS),
    ),
    note="A database written by another application: declared types only set the affinity, "
    "and OpenFuse reads INTEGER / REAL / BLOB affinity as int64 / float64 / binary, the rest as text.",
)

_CSV_FLOATS = tuple(v for v in F64)

CSV = Dialect(
    "csv",
    "files",
    (
        C("c_bool", "true / false", "bool", BOOLS),
        C("c_int", "integer text", "int", INT64),
        C("c_decimal", "decimal text", "decimal", DEC38),
        C("c_float", "float text (nan, inf)", "float", _CSV_FLOATS),
        C("c_text", 'quoted text ("" is empty)', "text", TEXTS),
        C("c_date", "YYYY-MM-DD", "date", DATES),
        C("c_time", "HH:MM:SS.ffffff", "time", TIMES),
        C("c_ts", "YYYY-MM-DD HH:MM:SS.ffffff", "ts", TIMESTAMPS),
        C("c_tstz", "ISO 8601 with +00:00", "tstz", TIMESTAMPS_TZ),
        C("c_uuid", "uuid text", "uuid", UUIDS),
        C("c_json", "quoted JSON text", "json", JSONS),
    ),
    layout="file",
    note="Types are inferred by the files source from the first MiB: pyarrow's inference, made exact "
    "with the sampled text (numbers float64 cannot hold become decimals).",
)

JSONL = Dialect(
    "jsonl",
    "files",
    (
        C("c_bool", "true / false", "bool", BOOLS),
        C("c_int", "number (integer)", "int", INT64),
        C("c_uint", "number > int64", "int", (18446744073709551615,)),
        C("c_decimal", "number (38 digits)", "decimal", DEC38),
        C("c_float", "number (JSON has no NaN/inf)", "float", F64_FINITE),
        C("c_text", "string", "text", TEXTS),
        C("c_date", "string YYYY-MM-DD", "date", DATES),
        C("c_time", "string HH:MM:SS.ffffff", "time", TIMES),
        C("c_ts", "string ISO 8601", "ts", TIMESTAMPS),
        C("c_tstz", "string ISO 8601 with +00:00", "tstz", TIMESTAMPS_TZ),
        C("c_uuid", "string", "uuid", UUIDS),
        C("c_json", "object", "json", JSON_OBJECTS),
        C("c_int_arr", "array of numbers", "list", LIST_INTS),
        C("c_text_arr", "array of strings", "list", LIST_TEXTS),
    ),
    layout="file",
    note="Types are inferred by the files source from the first MiB: pyarrow's inference, made exact "
    "with the sampled values (numbers float64 cannot hold are decimals, objects whose keys differ are "
    "JSON text).",
)

PARQUET = Dialect(
    "parquet",
    "files",
    (
        C("c_bool", "bool", "bool", BOOLS),
        C("c_int8", "int8", "int", INT8),
        C("c_int16", "int16", "int", INT16),
        C("c_int32", "int32", "int", INT32),
        C("c_int64", "int64", "int", INT64),
        C("c_uint64", "uint64", "int", UINT64),
        C("c_dec38", "decimal128(38, 10)", "decimal", DEC38),
        C("c_dec_wide", "decimal256(60, 30)", "decimal", DEC_WIDE),
        C("c_float32", "float", "float", F32),
        C("c_float64", "double", "float", F64),
        C("c_text", "string", "text", TEXTS),
        C("c_binary", "binary", "bytes", BYTES),
        C("c_date", "date32[day]", "date", DATES),
        C("c_time", "time64[us]", "time", TIMES),
        C("c_ts", "timestamp[us]", "ts", TIMESTAMPS),
        C("c_tstz", "timestamp[us, tz=UTC]", "tstz", TIMESTAMPS_TZ),
        C("c_uuid", "extension<arrow.uuid>", "uuid", UUIDS),
        C("c_json", "extension<arrow.json>", "json", JSONS),
        C("c_int_list", "list<int64>", "list", LIST_INTS),
        C("c_text_list", "list<string>", "list", LIST_TEXTS),
        C("c_struct", "struct<a: int64, b: string>", "struct", STRUCTS),
    ),
    layout="file",
    note="Written by pyarrow with these Arrow types; (Parquet cannot hold month_day_nano intervals.)",
)

DIALECTS: dict[str, Dialect] = {d.name: d for d in (POSTGRES, MYSQL, DUCKDB, SQLITE, CSV, JSONL, PARQUET)}
SOURCES = tuple(DIALECTS)
#: Destination name -> (connector, extra config).
DESTINATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "postgres": ("postgres", {}),
    "duckdb": ("duckdb", {}),
    "sqlite": ("sqlite", {}),
    "parquet": ("files", {"format": "parquet"}),
    "csv": ("files", {"format": "csv"}),
    "jsonl": ("files", {"format": "jsonl"}),
}
