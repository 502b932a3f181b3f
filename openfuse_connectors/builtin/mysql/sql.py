"""MySQL / MariaDB helpers for the source: quoting, literals, type mapping, decoding, connecting.

Rows are read with the text protocol through an unbuffered (server-side) result, every value as
the server's bytes, and turned into Arrow one column at a time: ``pa.array(values, binary)`` and
then an Arrow cast (C++), never a Python object per value. Columns whose text form is not exact
are selected through an expression that is (the *selected as* column).

MySQL -> Arrow (``COLUMN_TYPE`` from ``information_schema.COLUMNS``; the field metadata keeps it as
``openfuse.native_type = "mysql:<COLUMN_TYPE>"``, or ``"mysql:json"``):

===================================  ============================  ==========================================
MySQL / MariaDB column               Arrow                         selected as / notes
===================================  ============================  ==========================================
tinyint(1), bool, boolean            bool                          values other than 0 and 1 are quarantined;
                                                                   ``tinyint1_as_bool: false`` -> int8
tinyint, smallint                    int8, int16
mediumint, int                       int32
bigint                               int64
... unsigned                         uint8, uint16, uint32, uint64  exact; bigint unsigned stays an integer
                                                                   (a cursor candidate) rather than decimal
decimal(p, s), p <= 38               decimal128(p, s)
decimal(p, s), p > 38                string                        exact text (``mysql:decimal(65,30)``)
float                                float32                       ``CAST(c AS DOUBLE)``: its text form has
                                                                   only 6 digits; the double is exact
double, real                         float64                       text form is exact (NaN/inf not storable)
char, varchar, *text, enum, set      string                        sent as utf8mb4
json                                 string, ``mysql:json``        MariaDB: longtext + CHECK json_valid(c)
binary, varbinary, *blob             binary
bit(1)                               bool                          ``CAST(c AS UNSIGNED)``
bit(n), n > 1                        uint64                        ``CAST(c AS UNSIGNED)``
date                                 date32                        zero/partial dates quarantined
datetime(n)                          timestamp[us]                 zero/partial dates quarantined
timestamp(n)                         timestamp[us, tz=UTC]         read in a ``time_zone = '+00:00'`` session;
                                                                   zero timestamps quarantined
time(n)                              time64[us]                    values below 00:00:00 or from 24:00:00 on
                                                                   (TIME is -838:59:59..838:59:59) quarantined
year                                 int16                         YEAR 0000 reads as 0
geometry, point, polygon, ...        binary (WKB)                  ``ST_AsBinary(c)``
anything else (inet6, uuid, ...)     string                        the server's text form
===================================  ============================  ==========================================

*Quarantined* values are never turned into NULL or a made-up value: the row is held back from the
batch and handed to the engine by ``MySQLExtractor.take_rejects`` with the column, the server's
raw text of the value and the reason, so it lands in the destination's quarantine table.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from openfuse_connectors.catalog import NATIVE_TYPE
from openfuse_connectors.errors import ConfigError, SourceUnreachableError, StateError

if TYPE_CHECKING:
    from openfuse_connectors.builtin.mysql.config import MySQLConfig

NATIVE_PREFIX = "mysql:"

_TYPE = re.compile(r"^\s*([a-z]+)\s*(?:\((.*)\))?\s*(.*)$", re.S)
_INTS: dict[str, tuple[pa.DataType, pa.DataType]] = {
    "tinyint": (pa.int8(), pa.uint8()),
    "smallint": (pa.int16(), pa.uint16()),
    "mediumint": (pa.int32(), pa.uint32()),
    "int": (pa.int32(), pa.uint32()),
    "integer": (pa.int32(), pa.uint32()),
    "bigint": (pa.int64(), pa.uint64()),
}
_STRINGS = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json"}
_BINARIES = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
_SPATIAL = {
    "geometry",
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
    "geomcollection",
}


# -- quoting and literals


def qi(name: str) -> str:
    """Quote an identifier with backticks; embedded backticks are doubled, so any name is safe."""
    if "\x00" in name:
        raise ConfigError("identifier contains a NUL character", field="name", value=name)
    return "`" + name.replace("`", "``") + "`"


def qname(database: str, table: str) -> str:
    return f"{qi(database)}.{qi(table)}"


def cursor_condition(column: str, scalar: pa.Scalar, op: Literal[">=", "<"] = ">=") -> str:
    """``column >= value`` for an incremental read (``op="<"``: a read's exclusive upper bound),
    with the value typed like the column.

    Integers and decimals are written as numbers (a quoted number would compare as a double and
    lose precision above 2**53); temporal values as typed literals in UTC (the session's zone).
    Strings compare as bytes: the engine finds the new cursor with Arrow's byte order, and under
    a collation (``'a' < '_'`` in utf8mb4_general_ci) the two orders would disagree and lose rows.
    """
    t = scalar.type
    col = qi(column)
    if not scalar.is_valid:
        raise StateError(f"cursor bound of column {column!r} is NULL; run a full refresh")
    if pa.types.is_integer(t):
        return f"{col} {op} {int(scalar.as_py())}"
    if pa.types.is_decimal(t):
        return f"{col} {op} {format(scalar.as_py(), 'f')}"
    if pa.types.is_floating(t):
        return f"{col} {op} {float(scalar.as_py())!r}"
    if pa.types.is_boolean(t):
        return f"{col} {op} {1 if scalar.as_py() else 0}"
    if pa.types.is_timestamp(t):
        # A zoned value renders as its UTC wall time, which is how the UTC session compares it.
        return f"{col} {op} TIMESTAMP'{scalar.cast(pa.timestamp('us')).cast(pa.string()).as_py()}'"
    if pa.types.is_date(t):
        return f"{col} {op} DATE'{scalar.cast(pa.string()).as_py()}'"
    if pa.types.is_time(t):
        return f"{col} {op} TIME'{scalar.cast(pa.string()).as_py()}'"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return f"{col} {op} X'{bytes(scalar.as_py()).hex()}'"
    text = str(scalar.cast(pa.string()).as_py())
    return f"CAST({col} AS BINARY) {op} X'{text.encode('utf-8').hex()}'"


# -- type mapping


def _parse(column_type: str) -> tuple[str, str | None, str]:
    m = _TYPE.match(column_type.lower())
    if not m:
        return column_type.lower().strip(), None, ""
    return m.group(1), m.group(2), m.group(3)


def _base(native: str) -> str:
    return _parse(native.removeprefix(NATIVE_PREFIX))[0]


def mysql_to_arrow(column_type: str, *, tinyint1_as_bool: bool = True) -> pa.DataType:
    """The Arrow type of a column, from its ``COLUMN_TYPE`` (or ``json``); see the module table."""
    base, args, rest = _parse(column_type)
    unsigned = "unsigned" in rest.split()
    if base in ("bool", "boolean"):
        return pa.bool_()
    if base == "tinyint" and args == "1" and not unsigned and tinyint1_as_bool:
        return pa.bool_()
    if base in _INTS:
        return _INTS[base][1 if unsigned else 0]
    if base in ("decimal", "numeric", "dec", "fixed"):
        p, s = 10, 0
        if args:
            parts = [int(x) for x in args.split(",")]
            p, s = parts[0], parts[1] if len(parts) > 1 else 0
        return pa.decimal128(p, s) if p <= 38 else pa.string()
    if base == "float":
        return pa.float32()
    if base in ("double", "real"):
        return pa.float64()
    if base in _STRINGS:
        return pa.string()
    if base in _BINARIES or base in _SPATIAL:
        return pa.binary()
    if base == "bit":
        return pa.bool_() if (args or "1").strip() == "1" else pa.uint64()
    if base == "date":
        return pa.date32()
    if base == "datetime":
        return pa.timestamp("us")
    if base == "timestamp":
        return pa.timestamp("us", tz="UTC")
    if base == "time":
        return pa.time64("us")
    if base == "year":
        return pa.int16()
    return pa.string()


def field_for(name: str, column_type: str, nullable: bool, *, tinyint1_as_bool: bool) -> pa.Field:
    return pa.field(
        name,
        mysql_to_arrow(column_type, tinyint1_as_bool=tinyint1_as_bool),
        nullable,
        {NATIVE_TYPE: (NATIVE_PREFIX + column_type).encode()},
    )


def select_expr(name: str, native: str) -> str:
    """How to select a column so its text form is exact (see the module table)."""
    base = _base(native)
    col = qi(name)
    if base == "float":
        return f"CAST({col} AS DOUBLE) AS {col}"
    if base == "bit":
        return f"CAST({col} AS UNSIGNED) AS {col}"
    if base in _SPATIAL:
        return f"ST_AsBinary({col}) AS {col}"
    return col


# -- decoding


class ColumnDecoder:
    """Turns one column of server text (bytes or None) into an Arrow array of the field's type."""

    def __init__(self, field: pa.Field):
        self.field = field
        self.name = field.name
        native = (field.metadata or {}).get(NATIVE_TYPE, b"").decode()
        self.native = native.removeprefix(NATIVE_PREFIX) or "?"
        self.kind = _kind(field.type)

    def _convert(self, raw: pa.Array) -> pa.Array:
        if self.kind == "binary":
            return raw
        text = raw.cast(pa.string())
        t = self.field.type
        if self.kind == "string":
            return text
        if self.kind == "float32":
            return pc.cast(pc.cast(text, pa.float64()), t)
        if self.kind == "ts_tz":
            return pc.cast(pc.cast(text, pa.timestamp("us")), t)
        if self.kind == "time":
            # Arrow cannot parse a time of day on its own: parse it as a time on 1970-01-01, which
            # also refuses what has no time64 equivalent (negative TIME, 24:00:00 and later).
            day = pc.binary_join_element_wise("1970-01-01 ", text, "")
            return pc.cast(pc.cast(day, pa.timestamp("us")), t)
        return pc.cast(text, t)

    def decode(self, values: Sequence[bytes | None]) -> tuple[pa.Array, dict[int, str]]:
        """The array, plus {row index: reason} for values with no exact equivalent (NULL in the array)."""
        raw = pa.array(values, pa.binary())
        try:
            return self._convert(raw), {}
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass  # find the offending values one by one (only on this error path)
        bad: dict[int, str] = {}
        kept: list[bytes | None] = list(values)
        for i, v in enumerate(values):
            if v is None:
                continue
            try:
                self._convert(pa.array([v], pa.binary()))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                bad[i] = self.reason(v, e)
                kept[i] = None
        return self._convert(pa.array(kept, pa.binary())), bad

    def reason(self, value: bytes, error: BaseException) -> str:
        base = _base(self.native)
        text = value.decode("utf-8", "backslashreplace")
        t = self.field.type
        if base in ("date", "datetime", "timestamp") and (text.startswith("0000") or "-00" in text[:10]):
            return f"MySQL zero or partial date in {self.native} column has no {t} equivalent"
        if base == "time":
            return f"MySQL TIME outside 00:00:00..23:59:59.999999 has no {t} equivalent"
        if pa.types.is_boolean(t) and base == "tinyint":
            return "TINYINT(1) value other than 0 and 1; set tinyint1_as_bool: false to read it as int8"
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        return f"{self.native} value does not fit {t}: {first}"


def _kind(t: pa.DataType) -> str:
    """Which conversion a column of server text needs to become ``t``."""
    if pa.types.is_binary(t):
        return "binary"
    if pa.types.is_string(t):
        return "string"
    if pa.types.is_float32(t):
        return "float32"
    if pa.types.is_timestamp(t) and t.tz is not None:
        return "ts_tz"
    if pa.types.is_time(t):
        return "time"
    return "cast"


def render(value: bytes | None, field: pa.Field) -> str | None:
    """A raw server value as text for the quarantine table (binary columns as hex)."""
    if value is None:
        return None
    if pa.types.is_binary(field.type):
        return value.hex()
    return value.decode("utf-8", "backslashreplace")


# -- connecting


def connect(cfg: MySQLConfig, *, raw: bool = False, timeout: int | None = None) -> Any:
    """A connection in a UTC, utf8mb4, autocommit session; errors name host/port/database only.

    ``raw`` connections return every value as the server's bytes (no per-value conversion);
    ``timeout`` bounds every network wait (``check`` passes ``connect_timeout``).
    """
    import MySQLdb

    wait = timeout or cfg.read_timeout
    kwargs: dict[str, Any] = {
        "host": cfg.host,
        "port": cfg.port,
        "user": cfg.user,
        "password": cfg.password.get_secret_value(),
        "database": cfg.database,
        "connect_timeout": cfg.connect_timeout,
        "read_timeout": wait,
        "write_timeout": wait,
        "charset": "utf8mb4",
        "autocommit": True,
        "multi_statements": False,
        "local_infile": False,
        # The server waits at most net_write_timeout for us to take rows while a batch is loaded.
        "init_command": f"SET time_zone = '+00:00', net_write_timeout = {int(cfg.read_timeout)}",
    }
    if raw:
        kwargs.update(conv={}, use_unicode=False)
    if cfg.ssl is not None:
        kwargs["ssl_mode"] = cfg.ssl.mode.upper()
        files = {k: v for k, v in (("ca", cfg.ssl.ca), ("cert", cfg.ssl.cert), ("key", cfg.ssl.key)) if v}
        if files:
            kwargs["ssl"] = files
    try:
        conn = MySQLdb.connect(**kwargs)
    except MySQLdb.Error as e:
        raise SourceUnreachableError(connector="mysql", reason=reason(e, cfg), **cfg.where()) from e
    if cfg.ssl is not None:
        _require_tls(conn, cfg)
    return conn


def _require_tls(conn: Any, cfg: MySQLConfig) -> None:
    # Built against MariaDB Connector/C, ssl_mode=REQUIRED does not refuse a server without TLS
    # (seen with mysqlclient 2.3.2): check that the session is encrypted before sending anything.
    cur = conn.cursor()
    try:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        row = cur.fetchone()
    finally:
        cur.close()
    cipher = row[1] if row else None
    if isinstance(cipher, bytes):
        cipher = cipher.decode()
    if not cipher:
        conn.close()
        raise SourceUnreachableError(
            connector="mysql",
            reason=f"TLS is required (ssl.mode={cfg.ssl.mode if cfg.ssl else None!r}) but the session is "
            "not encrypted; enable TLS on the server or remove `ssl`",
            **cfg.where(),
        )


def error_code(e: BaseException) -> int | None:
    """The MySQL error number of a driver error (``args[0]``), if it has one."""
    args: tuple[Any, ...] = e.args
    return args[0] if args and isinstance(args[0], int) else None


def error_message(e: BaseException) -> str:
    """The server's message of a driver error (``args[1]``), without the number."""
    args: tuple[Any, ...] = e.args
    return str(args[1]) if len(args) > 1 else (str(e) or type(e).__name__)


def reason(e: BaseException, cfg: MySQLConfig) -> str:
    """An error's code and message with the password blanked out (servers do not echo it; be sure)."""
    code = error_code(e)
    text = error_message(e).strip().splitlines()[0] if error_message(e).strip() else type(e).__name__
    secret = cfg.password.get_secret_value()
    if secret and secret in text:
        text = text.replace(secret, "***")
    return f"({code}) {text}" if code is not None else text


#: Server and client error codes after which running the same read again may succeed.
TRANSIENT_CODES = frozenset(
    {
        1040,  # too many connections
        1053,  # server shutdown in progress
        1205,  # lock wait timeout
        1213,  # deadlock
        1317,  # query execution was interrupted (KILL QUERY)
        1927,  # connection was killed (MariaDB)
        1969,  # max_statement_time exceeded (MariaDB)
        2002,  # cannot connect through socket
        2003,  # cannot connect to server
        2006,  # server has gone away
        2013,  # lost connection during query
        2055,  # lost connection (system error)
        3024,  # max_execution_time exceeded (MySQL)
    }
)
