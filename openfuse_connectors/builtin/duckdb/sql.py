"""DuckDB helpers shared by the extractor and the loader: quoting, type mapping, connecting.

Arrow -> DuckDB column types (:func:`arrow_to_duckdb`), and what DuckDB reads back (:func:`storage_type`):

=================================  ==========================  ================================
Arrow                              DuckDB                      read back as
=================================  ==========================  ================================
int8/16/32/64, uint8/16/32/64      TINYINT ... UBIGINT         the same
float16 / float32 / float64        FLOAT / FLOAT / DOUBLE      float32 / float32 / float64
decimal(p<=38, s)                  DECIMAL(p,s)                decimal128(p, s)
decimal(p>38, s)                   VARCHAR (exact text)        string
string, large_string               VARCHAR                     string
  ... native postgres:json(b)      JSON (VARCHAR without it)   string
  ... native postgres:uuid         UUID                        string
binary, large/fixed_size_binary    BLOB                        binary
bool                               BOOLEAN                     bool
date32 / date64                    DATE                        date32
time32 / time64[us]; time64[ns]    TIME; TIME_NS               time64[us]; time64[ns]
timestamp[s|ms|us|ns] (no tz)      TIMESTAMP_S|_MS|(us)|_NS    the same unit
timestamp[*, tz]                   TIMESTAMPTZ (us)            timestamp[us, tz=UTC]
duration, month_day_nano           INTERVAL                    month_day_nano_interval
list / large_list / fixed list     T[] / T[] / T[n]            list<l: T> / fixed_size_list
struct / map                       STRUCT(...) / MAP(K, V)     struct / map
arrow.uuid / arrow.json            UUID / JSON                 string
null                               VARCHAR                     string
=================================  ==========================  ================================

DuckDB -> Arrow is DuckDB's own export, except HUGEINT and UHUGEINT: DuckDB exports them as
decimal128(38, 0), which cannot hold their 39-digit values, so they are read as text and cast to
decimal256(39, 0) (:func:`select_list`, :func:`from_duckdb`).

Sessions run with ``TimeZone = 'UTC'`` so TIMESTAMPTZ always reads back as UTC.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from openfuse_connectors.builtin.duckdb.config import DuckDBConfig
from openfuse_connectors.catalog import NATIVE_TYPE
from openfuse_connectors.errors import ConfigError, FatalError, SourceUnreachableError

if TYPE_CHECKING:
    import duckdb

NATIVE_PREFIX = "duckdb:"
_JSON_NATIVE = {"postgres:json", "postgres:jsonb", "duckdb:JSON", "mysql:json"}
_UUID_NATIVE = {"postgres:uuid", "duckdb:UUID"}


class LossyValueError(FatalError):
    """A value cannot be stored in its DuckDB column without losing information."""

    def __init__(self, *, table: str, column: str, arrow_type: str, stored_as: str, reason: str):
        self.table = table
        self.column = column
        self.arrow_type = arrow_type
        self.stored_as = stored_as
        super().__init__(
            f"duckdb: {table=} {column=}: a {arrow_type} value does not fit {stored_as} exactly ({reason}). "
            "Round or cast the column with a transform before loading."
        )


def qi(name: str) -> str:
    """Quote an identifier; any name is safe, including quotes and semicolons."""
    if "\x00" in name:
        raise ConfigError("identifier contains a NUL character", field="name", value=name)
    return '"' + name.replace('"', '""') + '"'


def qname(schema: str, table: str) -> str:
    return f"{qi(schema)}.{qi(table)}"


def connect(cfg: DuckDBConfig) -> duckdb.DuckDBPyConnection:
    """A connection with a UTC session; the file and its folders are created when missing."""
    import duckdb

    path = Path(cfg.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path))
    except duckdb.Error as e:
        if "lock" in str(e).lower():  # another process has the file open for writing: try again later
            raise SourceUnreachableError(
                connector="duckdb", host=None, port=None, database=str(path), reason=first_line(e)
            ) from e
        raise ConfigError(
            f"cannot open DuckDB database: {first_line(e)}", field="path", value=str(path)
        ) from e
    con.execute("SET TimeZone = 'UTC'")
    return con


def connect_existing(cfg: DuckDBConfig) -> duckdb.DuckDBPyConnection | None:
    """A connection, or None when the database file does not exist (reading creates nothing)."""
    return connect(cfg) if Path(cfg.path).exists() else None


def has_json(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the JSON type is there (the json extension is built into the Python wheels)."""
    import duckdb

    try:
        con.execute("SELECT CAST(NULL AS JSON)").fetchall()
    except duckdb.Error:
        return False
    return True


def arrow_to_duckdb(t: pa.DataType) -> str:
    """The natural DuckDB column type for an Arrow type."""
    simple = _SIMPLE.get(t.id)
    if simple is not None:
        return simple
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})" if t.precision <= 38 else "VARCHAR"
    if pa.types.is_time(t):
        return "TIME_NS" if t.unit == "ns" else "TIME"
    if pa.types.is_timestamp(t):
        if t.tz is not None:
            return "TIMESTAMPTZ"
        return {"s": "TIMESTAMP_S", "ms": "TIMESTAMP_MS", "us": "TIMESTAMP", "ns": "TIMESTAMP_NS"}[t.unit]
    if (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_list_view(t)
        or pa.types.is_large_list_view(t)
    ):
        return arrow_to_duckdb(t.value_type) + "[]"
    if pa.types.is_fixed_size_list(t):
        return f"{arrow_to_duckdb(t.value_type)}[{t.list_size}]"
    if pa.types.is_struct(t):
        return "STRUCT(" + ", ".join(f"{qi(f.name)} {arrow_to_duckdb(f.type)}" for f in t) + ")"
    if pa.types.is_map(t):
        return f"MAP({arrow_to_duckdb(t.key_type)}, {arrow_to_duckdb(t.item_type)})"
    if pa.types.is_dictionary(t):
        return arrow_to_duckdb(t.value_type)
    if isinstance(t, pa.BaseExtensionType):
        if t.extension_name == "arrow.uuid":
            return "UUID"
        if t.extension_name == "arrow.json":
            return "JSON"
        return arrow_to_duckdb(t.storage_type)
    raise ConfigError(f"no DuckDB type for Arrow type {t}", field="type", value=str(t))


_SIMPLE: dict[int, str] = {
    pa.bool_().id: "BOOLEAN",
    pa.int8().id: "TINYINT",
    pa.int16().id: "SMALLINT",
    pa.int32().id: "INTEGER",
    pa.int64().id: "BIGINT",
    pa.uint8().id: "UTINYINT",
    pa.uint16().id: "USMALLINT",
    pa.uint32().id: "UINTEGER",
    pa.uint64().id: "UBIGINT",
    pa.float16().id: "FLOAT",
    pa.float32().id: "FLOAT",
    pa.float64().id: "DOUBLE",
    pa.string().id: "VARCHAR",
    pa.large_string().id: "VARCHAR",
    pa.string_view().id: "VARCHAR",
    pa.binary().id: "BLOB",
    pa.large_binary().id: "BLOB",
    pa.binary(1).id: "BLOB",
    pa.binary_view().id: "BLOB",
    pa.date32().id: "DATE",
    pa.date64().id: "DATE",
    pa.duration("us").id: "INTERVAL",
    pa.month_day_nano_interval().id: "INTERVAL",
    pa.null().id: "VARCHAR",
}


def column_type(f: pa.Field, *, json: bool = True) -> str:
    """The column type to create for a field, honouring JSON and UUID columns of the source."""
    native = (f.metadata or {}).get(NATIVE_TYPE, b"").decode()
    if pa.types.is_string(f.type) or pa.types.is_large_string(f.type):
        if native in _JSON_NATIVE:
            return "JSON" if json else "VARCHAR"
        if native in _UUID_NATIVE:
            return "UUID"
    t = arrow_to_duckdb(f.type)
    return "VARCHAR" if t == "JSON" and not json else t


def storage_type(t: pa.DataType) -> pa.DataType:
    """The Arrow type DuckDB reads back from a column created for ``t`` (see the module table)."""
    if pa.types.is_float16(t):
        return pa.float32()
    if pa.types.is_decimal(t):
        return pa.decimal128(t.precision, t.scale) if t.precision <= 38 else pa.string()
    if (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_string_view(t)
        or pa.types.is_null(t)
    ):
        return pa.string()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return pa.binary()
    if pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_date(t):
        return pa.date32()
    if pa.types.is_time(t):
        return pa.time64("ns") if t.unit == "ns" else pa.time64("us")
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz="UTC") if t.tz is not None else t
    if pa.types.is_duration(t) or pa.types.is_interval(t):
        return pa.month_day_nano_interval()
    if (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_list_view(t)
        or pa.types.is_large_list_view(t)
    ):
        return pa.list_(pa.field("l", storage_type(t.value_type)))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(pa.field("", storage_type(t.value_type)), t.list_size)
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, storage_type(f.type)) for f in t])
    if pa.types.is_map(t):
        return pa.map_(storage_type(t.key_type), storage_type(t.item_type))
    if pa.types.is_dictionary(t):
        return storage_type(t.value_type)
    if isinstance(t, pa.BaseExtensionType):
        if t.extension_name in ("arrow.uuid", "arrow.json"):
            return pa.string()
        return storage_type(t.storage_type)
    return t


def ingestable(batch: pa.RecordBatch, table: str) -> pa.RecordBatch:
    """Cast the columns DuckDB cannot scan, or would silently truncate, to their stored Arrow type.

    DuckDB's Arrow scan has no half floats, 256-bit decimals or NULL-typed columns, and cuts
    nanosecond TIMESTAMPTZ values and sub-day date64 values without a word; here they are cast
    exactly, or the load fails naming the column.
    """
    cols = []
    changed = False
    for f, col in zip(batch.schema, batch.columns, strict=True):
        t = f.type
        needs = (
            pa.types.is_float16(t)
            or pa.types.is_decimal256(t)
            or pa.types.is_null(t)
            or pa.types.is_date64(t)
            or (pa.types.is_timestamp(t) and t.tz is not None and t.unit == "ns")
        )
        if needs:
            target = storage_type(t)
            try:
                col = pc.cast(col, target, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise LossyValueError(
                    table=table,
                    column=f.name,
                    arrow_type=str(t),
                    stored_as=arrow_to_duckdb(t),
                    reason=first_line(e),
                ) from e
            changed = True
        cols.append(col)
    if not changed:
        return batch
    return pa.RecordBatch.from_arrays(cols, names=batch.schema.names)


#: DuckDB integers wider than any Arrow integer (and than decimal128's 38 digits).
_WIDE_INTS = frozenset({"HUGEINT", "UHUGEINT"})
WIDE_INT = pa.decimal256(39, 0)


def _wide(f: pa.Field) -> bool:
    native = (f.metadata or {}).get(NATIVE_TYPE, b"").decode()
    return native.removeprefix(NATIVE_PREFIX) in _WIDE_INTS


def select_list(schema: pa.Schema) -> str:
    """The columns of ``schema`` for a SELECT; HUGEINT / UHUGEINT as their exact text."""
    return ", ".join(
        f"CAST({qi(f.name)} AS VARCHAR) AS {qi(f.name)}" if _wide(f) else qi(f.name) for f in schema
    )


def from_duckdb(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """A batch selected with :func:`select_list`, in ``schema`` (the text of wide integers cast exactly)."""
    cols = [
        pc.cast(col, f.type, safe=True) if _wide(f) else col
        for f, col in zip(schema, batch.columns, strict=True)
    ]
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def table_schema(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> pa.Schema | None:
    """The Arrow schema DuckDB reads the table back with; native types in field metadata."""
    rows = con.execute(
        "SELECT column_name, data_type, is_nullable FROM duckdb_columns() "
        "WHERE lower(schema_name) = lower(?) AND lower(table_name) = lower(?) AND NOT internal "
        "ORDER BY column_index",
        [schema, table],
    ).fetchall()
    if not rows:
        return None
    arrow = con.sql(f"SELECT * FROM {qname(schema, table)} LIMIT 0").to_arrow_table().schema
    return pa.schema(
        [
            pa.field(
                name,
                WIDE_INT if dtype in _WIDE_INTS else arrow.field(i).type,
                bool(nullable),
                {NATIVE_TYPE: (NATIVE_PREFIX + dtype).encode()},
            )
            for i, (name, dtype, nullable) in enumerate(rows)
        ]
    )


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    rows = con.execute(
        "SELECT 1 FROM duckdb_tables() WHERE lower(schema_name) = lower(?) AND lower(table_name) = lower(?)",
        [schema, table],
    ).fetchall()
    return bool(rows)


def split_stream(name: str, default_schema: str) -> tuple[str, str]:
    """`schema.table` or `table` -> (schema, table); double-quoted parts are honoured."""
    m = re.fullmatch(r'\s*(?:("(?:[^"]|"")+"|[^."]+)\.)?("(?:[^"]|"")+"|[^"]+)\s*', name)
    if not m:
        raise ConfigError("stream name is not [schema.]table", field="streams.name", value=name)

    def unq(p: str | None) -> str | None:
        if p is None:
            return None
        return p[1:-1].replace('""', '"') if p.startswith('"') else p

    return unq(m.group(1)) or default_schema, unq(m.group(2)) or ""


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
