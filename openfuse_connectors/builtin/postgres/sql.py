"""SQL helpers shared by the PostgreSQL extractor and loader: quoting, type mapping, connecting."""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa

from openfuse_connectors.builtin.postgres.config import PostgresConfig
from openfuse_connectors.builtin.postgres.interrupts import keep_adbc_interrupts
from openfuse_connectors.catalog import NATIVE_TYPE
from openfuse_connectors.errors import ConfigError, SourceUnreachableError

NATIVE_PREFIX = "postgres:"


def qi(name: str) -> str:
    """Quote an identifier; any name is safe, including quotes and semicolons."""
    if "\x00" in name:
        raise ConfigError("identifier contains a NUL character", field="name", value=name)
    return '"' + name.replace('"', '""') + '"'


def qname(schema: str, table: str) -> str:
    return f"{qi(schema)}.{qi(table)}"


def lit(value: str) -> str:
    """A SQL string literal (standard_conforming_strings is on in every supported server)."""
    if "\x00" in value:
        raise ConfigError("value contains a NUL character", field="value", value=value)
    return "'" + value.replace("'", "''") + "'"


def split_stream(name: str) -> tuple[str, str]:
    """`schema.table` -> (schema, table), split at the first dot; a bare name means `public`.

    The table part is taken literally (it may hold dots, quotes or semicolons). A schema whose
    name holds a dot is written quoted: `"my.schema".table`.
    """
    if name.startswith('"'):
        i, buf = 1, []
        while i < len(name):
            if name[i] == '"':
                if name[i + 1 : i + 2] == '"':
                    buf.append('"')
                    i += 2
                    continue
                break
            buf.append(name[i])
            i += 1
        rest = name[i + 1 :]
        if not rest.startswith(".") or len(rest) < 2:
            raise ConfigError('stream name is not "schema".table', field="streams.name", value=name)
        return "".join(buf), rest[1:]
    schema, dot, table = name.partition(".")
    if not dot:
        return "public", name
    if not schema or not table:
        raise ConfigError("stream name is not schema.table", field="streams.name", value=name)
    return schema, table


def stream_name(schema: str, table: str) -> str:
    if "." in schema or schema.startswith('"'):
        return '"' + schema.replace('"', '""') + '".' + table
    return f"{schema}.{table}"


_SIMPLE_PG_TO_ARROW: dict[str, pa.DataType] = {
    "smallint": pa.int16(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "real": pa.float32(),
    "double precision": pa.float64(),
    "boolean": pa.bool_(),
    "text": pa.string(),
    "bytea": pa.binary(),
    "date": pa.date32(),
    "timestamp without time zone": pa.timestamp("us"),
    "timestamp with time zone": pa.timestamp("us", tz="UTC"),
    "time without time zone": pa.time64("us"),
    "interval": pa.month_day_nano_interval(),
    "json": pa.string(),
    "jsonb": pa.string(),
    "uuid": pa.string(),
    "name": pa.string(),
    "oid": pa.int64(),
    "numeric": pa.string(),
}


def pg_to_arrow(pg_type: str) -> pa.DataType:
    """Map a `format_type()` rendering to the Arrow type OpenFuse reads it as."""
    t = pg_type.strip()
    if t.endswith("[]"):
        return pa.list_(pg_to_arrow(t[:-2]))
    if t in _SIMPLE_PG_TO_ARROW:
        return _SIMPLE_PG_TO_ARROW[t]
    m = re.fullmatch(r"numeric\((\d+),(\d+)\)", t)
    if m:
        p, s = int(m.group(1)), int(m.group(2))
        return pa.decimal128(p, s) if p <= 38 else pa.string()
    if re.fullmatch(r"(character varying|character|varchar|char|bpchar)(\(\d+\))?", t):
        return pa.string()
    if re.fullmatch(r"timestamp\(\d\) with time zone", t):
        return pa.timestamp("us", tz="UTC")
    if re.fullmatch(r"timestamp\(\d\) without time zone", t):
        return pa.timestamp("us")
    if re.fullmatch(r"time\(\d\) without time zone", t):
        return pa.time64("us")
    # Everything else (time with time zone, inet, money, enums, ranges, geometry...) is read as
    # its text rendering, which is exact and loads back through a cast.
    return pa.string()


def select_expr(name: str, pg_type: str) -> str:
    """How to select a column so the binary reader returns exactly the Arrow type of `pg_to_arrow`.

    Types without an exact binary Arrow reading (json, uuid, numeric, inet, enums, ...) are read
    as their text rendering, which is exact; decimals are then parsed by Arrow.
    """
    t = pg_type.strip()
    base = t[:-2] if t.endswith("[]") else t
    target = pg_to_arrow(base)
    col = qi(name)
    if t.endswith("[]"):
        # Multi-dimensional arrays have no exact Arrow list form (the reader would flatten them):
        # they are read as NULL here and reported by `reject_expr` instead.
        col = f"CASE WHEN array_ndims({qi(name)}) > 1 THEN NULL ELSE {qi(name)} END"
    elif base in _INFINITE_TYPES:
        # +-infinity has no Arrow date/timestamp value: NULL here, reported by `reject_expr`.
        col = f"CASE WHEN isfinite({qi(name)}) THEN {qi(name)} END"
    if (pa.types.is_string(target) and base != "text") or pa.types.is_decimal(target):
        return f"({col})::text" + ("[]" if t.endswith("[]") else "") + f" AS {qi(name)}"
    return f"{col} AS {qi(name)}" if col != qi(name) else col


_INFINITE_TYPES = {"date", "timestamp without time zone", "timestamp with time zone"}


def reject_expr(name: str, pg_type: str) -> str | None:
    """A text expression that is non-NULL exactly when the column's value cannot be read exactly
    (infinity, a multi-dimensional array); None when every value of the type can."""
    t = pg_type.strip()
    if t.endswith("[]"):
        return f"CASE WHEN array_ndims({qi(name)}) > 1 THEN {qi(name)}::text END"
    base = re.sub(r"\(\d\)", "", t)
    if base in _INFINITE_TYPES:
        return f"CASE WHEN NOT isfinite({qi(name)}) THEN {qi(name)}::text END"
    return None


def arrow_to_pg(t: pa.DataType) -> str:
    """The natural PostgreSQL column type for an Arrow type (what the binary loader writes)."""
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return "smallint"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "integer"
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return "bigint"
    if pa.types.is_uint64(t):
        return "numeric(20,0)"
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return "real"
    if pa.types.is_float64(t):
        return "double precision"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_decimal(t):
        return f"numeric({t.precision},{t.scale})"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "bytea"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp with time zone" if t.tz else "timestamp without time zone"
    if pa.types.is_time(t):
        return "time without time zone"
    if pa.types.is_interval(t) or pa.types.is_duration(t):
        return "interval"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return arrow_to_pg(t.value_type) + "[]"
    if pa.types.is_struct(t) or pa.types.is_map(t):
        return "jsonb"
    if pa.types.is_null(t):
        return "text"
    raise ConfigError(f"no PostgreSQL type for Arrow type {t}", field="type", value=str(t))


def column_type(f: pa.Field) -> str:
    """The column type to create for a field: its PostgreSQL native type when it came from PostgreSQL."""
    native = (f.metadata or {}).get(NATIVE_TYPE, b"").decode()
    if native.startswith(NATIVE_PREFIX):
        pg_type = native[len(NATIVE_PREFIX) :]
        if _compatible(pg_to_arrow(pg_type), f.type):
            return pg_type
    if native in _FOREIGN_NATIVE and _compatible(pa.string(), f.type):
        return _FOREIGN_NATIVE[native]
    return arrow_to_pg(f.type)


#: Native types of other sources with an exact PostgreSQL home (text otherwise).
_FOREIGN_NATIVE = {"mysql:json": "jsonb", "duckdb:JSON": "jsonb", "duckdb:UUID": "uuid"}


def _compatible(a: pa.DataType, b: pa.DataType) -> bool:
    strings = {"string", "large_string"}
    return a == b or (str(a) in strings and str(b) in strings)


def field_for(name: str, pg_type: str, nullable: bool) -> pa.Field:
    return pa.field(name, pg_to_arrow(pg_type), nullable, {NATIVE_TYPE: (NATIVE_PREFIX + pg_type).encode()})


def connect_psycopg(cfg: PostgresConfig, *, connector: str = "postgres", autocommit: bool = False) -> Any:
    import psycopg

    try:
        conn = psycopg.connect(
            cfg.dsn.get_secret_value(), connect_timeout=cfg.connect_timeout, autocommit=autocommit
        )
    except psycopg.OperationalError as e:
        raise SourceUnreachableError(connector=connector, reason=_reason(e, cfg), **cfg.where()) from None
    if cfg.statement_timeout_ms is not None:
        conn.execute(f"SET statement_timeout = {int(cfg.statement_timeout_ms)}")
    return conn


def connect_adbc(cfg: PostgresConfig, *, connector: str = "postgres") -> Any:
    import adbc_driver_manager
    import adbc_driver_postgresql.dbapi as adbc_pg

    keep_adbc_interrupts()
    try:
        conn = adbc_pg.connect(cfg.uri())
    except adbc_driver_manager.Error as e:
        raise SourceUnreachableError(connector=connector, reason=_reason(e, cfg), **cfg.where()) from None
    if cfg.statement_timeout_ms is not None:
        with conn.cursor() as cur:
            cur.execute(f"SET statement_timeout = {int(cfg.statement_timeout_ms)}")
    return conn


def _reason(e: BaseException, cfg: PostgresConfig) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    secret = cfg.dsn.get_secret_value()
    if secret and secret in text:
        text = text.replace(secret, "***")
    from psycopg.conninfo import conninfo_to_dict

    try:
        pw = conninfo_to_dict(secret).get("password")
    except Exception:
        pw = None
    if pw and isinstance(pw, str):
        text = text.replace(pw, "***")
    return text
