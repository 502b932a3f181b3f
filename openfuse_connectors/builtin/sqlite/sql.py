"""SQLite helpers shared by the extractor and the loader: quoting, type mapping, value conversion.

SQLite has five storage classes, so each Arrow type is stored as one of them and OpenFuse keeps
the Arrow type a column reads back as (:func:`storage_type`) in ``_openfuse_columns``, written in
the same transaction as the table. The declared column types are chosen for the right SQLite
affinity and to say what the text holds:

===============================  ====================  ======================================  ======================
Arrow                            declared (affinity)   stored as                               read back as
===============================  ====================  ======================================  ======================
int8 ... int64, uint8 ... 32     INTEGER (INTEGER)     integer                                 int64
uint64                           DECIMAL_TEXT(20,0)    decimal text (beyond SQLite's int64)    decimal128(20, 0)
float16/32/64                    REAL (REAL)           8-byte float; NaN/-0.0 as text           float64
decimal(p, s)                    DECIMAL_TEXT(p,s)     text, e.g. '-12.3400000000': exact      decimal(p, s)
string, large_string             TEXT (TEXT)           text                                    string
binary, large/fixed_size         BLOB (BLOB)           blob                                    binary
bool                             BOOLEAN (NUMERIC)     integer 0 / 1                           bool
date32/64                        DATE (NUMERIC)        text 'YYYY-MM-DD'                       date32
time32/64                        TIME (NUMERIC)        text 'HH:MM:SS[.fraction]'              the same unit
timestamp (no tz)                TIMESTAMP (NUMERIC)   text 'YYYY-MM-DD HH:MM:SS[.fraction]'   the same unit
timestamp (tz)                   TIMESTAMPTZ (NUMERIC) the same in UTC with a 'Z' suffix       unit, tz=UTC
duration                         INTEGER (INTEGER)     integer count of the unit               the same
uuid (arrow.uuid)                UUID (NUMERIC)        text 'xxxxxxxx-xxxx-...'                uuid
list, struct, map, interval      JSON (NUMERIC)        JSON text                               the same type
===============================  ====================  ======================================  ======================

Dates and timestamps are ISO-8601 text with a fixed number of fraction digits per unit, so they
sort and compare correctly as text (SQLite's date functions read them too); a value outside years
1..9999 has no such text and is quarantined (``SQLiteLoader.unfit_values``). Decimals are text
because SQLite's NUMERIC affinity would turn them into 8-byte floats. Tables that OpenFuse did
not create are read by affinity: INTEGER -> int64, REAL -> float64, BLOB -> binary, anything
else -> string.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from openfuse_connectors.builtin.sqlite.config import SQLiteConfig
from openfuse_connectors.catalog import NATIVE_TYPE
from openfuse_connectors.errors import ConfigError, FatalError, SourceUnreachableError

if TYPE_CHECKING:
    import sqlite3

NATIVE_PREFIX = "sqlite:"
COLUMNS_TABLE = "_openfuse_columns"


class LossyValueError(FatalError):
    """A value cannot be stored in its SQLite column without losing information."""

    def __init__(self, *, table: str, column: str, arrow_type: str, stored_as: str, reason: str):
        self.table = table
        self.column = column
        self.arrow_type = arrow_type
        self.stored_as = stored_as
        super().__init__(
            f"sqlite: {table=} {column=}: a {arrow_type} value does not fit {stored_as} exactly ({reason}). "
            "Round or cast the column with a transform before loading."
        )


def qi(name: str) -> str:
    """Quote an identifier; any name is safe, including quotes and semicolons."""
    if "\x00" in name:
        raise ConfigError("identifier contains a NUL character", field="name", value=name)
    return '"' + name.replace('"', '""') + '"'


def connect(cfg: SQLiteConfig) -> sqlite3.Connection:
    """An autocommit connection (transactions are explicit); the file is created when missing."""
    import sqlite3

    path = Path(cfg.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = sqlite3.connect(str(path), timeout=cfg.timeout, isolation_level=None)
    except sqlite3.Error as e:
        raise SourceUnreachableError(
            connector="sqlite", host=None, port=None, database=str(path), reason=first_line(e)
        ) from e
    try:
        con.execute("PRAGMA schema_version").fetchall()  # fails now, not later, on a file that is not SQLite
    except sqlite3.OperationalError as e:  # locked: try again later
        con.close()
        raise SourceUnreachableError(
            connector="sqlite", host=None, port=None, database=str(path), reason=first_line(e)
        ) from e
    except sqlite3.DatabaseError as e:
        con.close()
        raise ConfigError(
            f"cannot open SQLite database: {first_line(e)}", field="path", value=str(path)
        ) from e
    return con


def connect_existing(cfg: SQLiteConfig) -> sqlite3.Connection | None:
    """A connection, or None when the database file does not exist (reading creates nothing)."""
    return connect(cfg) if Path(cfg.path).exists() else None


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# -- types -------------------------------------------------------------------------------------


def storage_type(t: pa.DataType) -> pa.DataType:
    """The Arrow type a column created for ``t`` reads back as (see the module table)."""
    if pa.types.is_boolean(t):
        return t
    if pa.types.is_uint64(t):
        return pa.decimal128(20, 0)
    if pa.types.is_integer(t):
        return pa.int64()
    if pa.types.is_floating(t):
        return pa.float64()
    if pa.types.is_decimal(t):
        return t if pa.types.is_decimal256(t) else pa.decimal128(t.precision, t.scale)
    if (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_string_view(t)
        or pa.types.is_null(t)
    ):
        return pa.string()
    if (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
        or pa.types.is_binary_view(t)
    ):
        return pa.binary()
    if pa.types.is_date(t):
        return pa.date32()
    if pa.types.is_time(t) or pa.types.is_duration(t) or pa.types.is_interval(t):
        return t
    if pa.types.is_timestamp(t):
        return pa.timestamp(t.unit, tz="UTC" if t.tz is not None else None)
    if pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        return pa.list_(t.value_field)
    if (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_fixed_size_list(t)
        or pa.types.is_struct(t)
        or pa.types.is_map(t)
    ):
        return t
    if pa.types.is_dictionary(t):
        return storage_type(t.value_type)
    if isinstance(t, pa.BaseExtensionType):
        if t.extension_name == "arrow.uuid":
            return t
        if t.extension_name == "arrow.json":
            return pa.string()
    raise ConfigError(f"no SQLite storage for Arrow type {t}", field="type", value=str(t))


def declared_type(t: pa.DataType) -> str:
    """The declared column type for a storage type (what ``CREATE TABLE`` says)."""
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_integer(t) or pa.types.is_duration(t):
        return "INTEGER"
    if pa.types.is_floating(t):
        return "REAL"
    if pa.types.is_decimal(t):
        return f"DECIMAL_TEXT({t.precision},{t.scale})"
    if pa.types.is_string(t):
        return "TEXT"
    if pa.types.is_binary(t):
        return "BLOB"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_time(t):
        return "TIME"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz is not None else "TIMESTAMP"
    if isinstance(t, pa.BaseExtensionType) and t.extension_name == "arrow.uuid":
        return "UUID"
    return "JSON"


def affinity(declared: str) -> str:
    """SQLite's rules for the affinity of a declared type (https://sqlite.org/datatype3.html, 3.1)."""
    u = declared.upper()
    if "INT" in u:
        return "INTEGER"
    if "CHAR" in u or "CLOB" in u or "TEXT" in u:
        return "TEXT"
    if "BLOB" in u or not u:
        return "BLOB"
    if "REAL" in u or "FLOA" in u or "DOUB" in u:
        return "REAL"
    return "NUMERIC"


def _by_affinity(declared: str) -> pa.DataType:
    """How a column OpenFuse did not create is read: by affinity; values of other classes as text."""
    aff = affinity(declared)
    if aff == "INTEGER":
        return pa.int64()
    if aff == "REAL":
        return pa.float64()
    if aff == "BLOB" and declared:
        return pa.binary()
    return pa.string()


# -- the column type registry ------------------------------------------------------------------


def ensure_columns_table(con: sqlite3.Connection) -> None:
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {qi(COLUMNS_TABLE)} (table_name TEXT NOT NULL COLLATE NOCASE, "
        "column_name TEXT NOT NULL COLLATE NOCASE, arrow_type TEXT NOT NULL, arrow_schema BLOB NOT NULL, "
        "declared_type TEXT NOT NULL, PRIMARY KEY (table_name, column_name))"
    )


def record_column(con: sqlite3.Connection, table: str, column: str, t: pa.DataType, declared: str) -> None:
    blob = pa.schema([pa.field(column, t)]).serialize().to_pybytes()
    con.execute(
        f"INSERT INTO {qi(COLUMNS_TABLE)} (table_name, column_name, arrow_type, arrow_schema, declared_type) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (table_name, column_name) DO UPDATE SET "
        "arrow_type = excluded.arrow_type, arrow_schema = excluded.arrow_schema, declared_type = excluded.declared_type",
        (table, column, str(t), blob, declared),
    )


def forget_table(con: sqlite3.Connection, table: str) -> None:
    con.execute(f"DELETE FROM {qi(COLUMNS_TABLE)} WHERE table_name = ?", (table,))


def rename_table(con: sqlite3.Connection, old: str, new: str) -> None:
    forget_table(con, new)
    con.execute(f"UPDATE {qi(COLUMNS_TABLE)} SET table_name = ? WHERE table_name = ?", (new, old))


def table_exists(con: sqlite3.Connection, table: str) -> bool:
    row = con.execute(
        "SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ? COLLATE NOCASE", (table,)
    ).fetchone()
    return row is not None


def table_schema(con: sqlite3.Connection, table: str) -> pa.Schema | None:
    """The Arrow schema of a table: recorded types where the declared type still matches, else by affinity."""
    cols = con.execute('SELECT name, type, "notnull" FROM pragma_table_info(?)', (table,)).fetchall()
    if not cols:
        return None
    recorded: dict[str, tuple[bytes, str]] = {}
    if table_exists(con, COLUMNS_TABLE):
        for name, blob, declared in con.execute(
            f"SELECT column_name, arrow_schema, declared_type FROM {qi(COLUMNS_TABLE)} WHERE table_name = ?",
            (table,),
        ):
            recorded[name.lower()] = (blob, declared)
    fields = []
    for name, declared, notnull in cols:
        entry = recorded.get(name.lower())
        if entry is not None and entry[1] == declared:
            t = pa.ipc.read_schema(pa.py_buffer(entry[0])).field(0).type
        else:
            t = _by_affinity(declared)
        fields.append(pa.field(name, t, not notnull, {NATIVE_TYPE: (NATIVE_PREFIX + declared).encode()}))
    return pa.schema(fields)


def primary_key(con: sqlite3.Connection, table: str) -> tuple[str, ...]:
    rows = con.execute(
        "SELECT name, pk FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk", (table,)
    ).fetchall()
    return tuple(r[0] for r in rows)


def has_unique(con: sqlite3.Connection, table: str, columns: tuple[str, ...]) -> bool:
    """Whether a PRIMARY KEY or UNIQUE index covers exactly ``columns`` (what ON CONFLICT needs)."""
    want = {c.lower() for c in columns}
    for name, unique in con.execute('SELECT name, "unique" FROM pragma_index_list(?)', (table,)).fetchall():
        if unique:
            cols = {r[0].lower() for r in con.execute("SELECT name FROM pragma_index_info(?)", (name,))}
            if cols == want:
                return True
    # A rowid alias (INTEGER PRIMARY KEY) has no index of its own.
    return primary_key(con, table) == tuple(columns) and len(columns) == 1


# -- values ------------------------------------------------------------------------------------


def to_sqlite(col: pa.Array | pa.ChunkedArray, t: pa.DataType, *, table: str, column: str) -> list[Any]:
    """Python values to bind for a column whose storage type is ``t``."""
    if col.type != t:
        try:
            col = pc.cast(col, t, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise LossyValueError(
                table=table,
                column=column,
                arrow_type=str(col.type),
                stored_as=declared_type(t),
                reason=first_line(e),
            ) from e
    if pa.types.is_decimal(t):
        return [None if v is None else format(v, "f") for v in col.to_pylist()]
    if pa.types.is_date(t) or pa.types.is_time(t) or pa.types.is_timestamp(t):
        return pc.cast(col, pa.string()).to_pylist()
    if pa.types.is_duration(t):
        return pc.cast(col, pa.int64()).to_pylist()
    if isinstance(t, pa.BaseExtensionType):  # arrow.uuid
        return [None if v is None else str(v) for v in col.to_pylist()]
    if declared_type(t) == "JSON":
        return [None if v is None else json.dumps(_jsonable(v), ensure_ascii=False) for v in col.to_pylist()]
    if pa.types.is_floating(t):
        # SQLite stores NaN as NULL and -0.0 as 0.0: keep those two as text in the REAL column
        # (SQLite keeps text it cannot convert), and `from_sqlite` parses them back.
        return [_float_out(v) for v in col.to_pylist()]
    return col.to_pylist()


def _float_out(v: float | None) -> float | str | None:
    if v is None:
        return None
    if math.isnan(v):
        return "NaN"
    if v == 0.0 and math.copysign(1.0, v) < 0:
        return "-zero"  # any numeric-looking text would be converted back to 0.0
    return v


def from_sqlite(values: list[Any], t: pa.DataType) -> pa.Array:
    """An Arrow array of storage type ``t`` from the values SQLite returned."""
    if pa.types.is_floating(t):
        return pa.array(
            [(-0.0 if v == "-zero" else float(v)) if isinstance(v, str) else v for v in values], t
        )
    if pa.types.is_integer(t):
        return pa.array(values, t)
    if pa.types.is_boolean(t):
        return pa.array([None if v is None else bool(v) for v in values], t)
    if pa.types.is_binary(t):
        return pa.array([v if v is None or isinstance(v, bytes) else str(v).encode() for v in values], t)
    if pa.types.is_string(t):
        return pa.array([_text(v) for v in values], t)
    if pa.types.is_decimal(t) or pa.types.is_date(t) or pa.types.is_timestamp(t):
        return pc.cast(pa.array([_text(v) for v in values], pa.string()), t)
    if pa.types.is_time(t):
        # Arrow parses no bare times: read them as timestamps on 1970-01-01 and keep the time of day.
        text = pa.array([None if v is None else "1970-01-01 " + _text(v) for v in values], pa.string())
        return pc.cast(pc.cast(text, pa.timestamp(t.unit)), t)
    if pa.types.is_duration(t):
        return pc.cast(pa.array(values, pa.int64()), t)
    if isinstance(t, pa.BaseExtensionType):  # arrow.uuid
        return pa.array([None if v is None else uuid.UUID(_text(v)).bytes for v in values], t)
    return pa.array([None if v is None else _from_json(json.loads(v), t) for v in values], t)


def _text(v: Any) -> Any:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    return str(v)


def _jsonable(v: Any) -> Any:
    """A value of a nested column as JSON: decimals as text, bytes as hex, times as ISO-8601."""
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return v // dt.timedelta(microseconds=1)
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):  # lists, map entries (key, value), MonthDayNano (months, days, ns)
        return [_jsonable(x) for x in v]
    return str(v)


def _from_json(v: Any, t: pa.DataType) -> Any:
    """The inverse of :func:`_jsonable`, guided by the Arrow type."""
    if v is None:
        return None
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return [_from_json(x, t.value_type) for x in v]
    if pa.types.is_struct(t):
        return {f.name: _from_json(v.get(f.name), f.type) for f in t}
    if pa.types.is_map(t):
        return [(_from_json(k, t.key_type), _from_json(x, t.item_type)) for k, x in v]
    if pa.types.is_interval(t):
        return tuple(v)
    if pa.types.is_decimal(t):
        return Decimal(v)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return bytes.fromhex(v)
    if pa.types.is_timestamp(t):
        return dt.datetime.fromisoformat(v)
    if pa.types.is_date(t):
        return dt.date.fromisoformat(v)
    if pa.types.is_time(t):
        return dt.time.fromisoformat(v)
    if pa.types.is_duration(t):
        return dt.timedelta(microseconds=v)
    if isinstance(t, pa.BaseExtensionType) and t.extension_name == "arrow.uuid":
        return uuid.UUID(v).bytes
    return v
