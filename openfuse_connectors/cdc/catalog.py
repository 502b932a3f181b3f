"""The source side's catalog: connecting, checking the server, and describing captured tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openfuse_connectors.builtin.postgres.config import PostgresConfig
from openfuse_connectors.builtin.postgres.sql import split_stream
from openfuse_connectors.cdc.changes import FIRST_USER_OID, Column, TableInfo
from openfuse_connectors.cdc.errors import SourceNotReadyError, TableWithoutKeyError
from openfuse_connectors.cdc.pgoutput import Relation
from openfuse_connectors.cdc.replication import sanitize
from openfuse_connectors.cdc.values import SESSION_OPTIONS, parse_array
from openfuse_connectors.errors import ConfigError, SourceUnreachableError

__all__ = ["Catalog", "SourceInfo", "check_source", "describe_tables", "source_connect"]

MIN_VERSION = 140000


@dataclass(frozen=True)
class SourceInfo:
    database: str
    server_version: int


def source_connect(cfg: PostgresConfig, *, autocommit: bool = True) -> Any:
    """A normal (non-replication) psycopg connection with the CDC session settings."""
    import psycopg

    try:
        return psycopg.connect(
            cfg.dsn.get_secret_value(),
            connect_timeout=cfg.connect_timeout,
            autocommit=autocommit,
            options=SESSION_OPTIONS,
            application_name="openfuse-cdc",
        )
    except psycopg.OperationalError as e:
        raise SourceUnreachableError(
            connector="postgres", reason=sanitize(str(e).splitlines()[0], cfg), **cfg.where()
        ) from None


def check_source(conn: Any) -> SourceInfo:
    """Refuse, with the fix, a server that cannot do logical decoding for us."""
    wal_level, version, encoding, can_replicate, db = conn.execute(
        "SELECT current_setting('wal_level'), current_setting('server_version_num')::int, "
        "current_setting('server_encoding'), "
        "(SELECT rolsuper OR rolreplication FROM pg_roles WHERE rolname = current_user), current_database()"
    ).fetchone()
    if version < MIN_VERSION:
        raise SourceNotReadyError(
            setting="server_version_num",
            value=version,
            fix="change data capture needs PostgreSQL 14 or newer",
        )
    if wal_level != "logical":
        raise SourceNotReadyError(
            setting="wal_level",
            value=wal_level,
            fix="set wal_level = logical (ALTER SYSTEM SET wal_level = logical) and restart the server; on "
            "managed services turn logical replication on (e.g. rds.logical_replication = 1)",
        )
    if encoding != "UTF8":
        raise SourceNotReadyError(
            setting="server_encoding", value=encoding, fix="change data capture supports UTF8 databases only"
        )
    if not can_replicate:
        raise SourceNotReadyError(
            setting="role",
            value="without REPLICATION",
            fix="grant it: ALTER ROLE <user> REPLICATION (and ownership of the captured tables, to "
            "create the publication)",
        )
    return SourceInfo(database=db, server_version=version)


_TABLE = """
SELECT c.oid::bigint, c.relreplident::text, c.relkind::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s
"""

_COLUMNS = """
SELECT a.attname, a.atttypid::bigint, a.atttypmod, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attnum
"""

_INDEX_KEY = """
SELECT a.attname
FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(att, n)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.att
WHERE i.indrelid = %s AND {which}
ORDER BY k.n
"""


def _index_key(conn: Any, relid: int, which: str) -> tuple[str, ...]:
    return tuple(r[0] for r in conn.execute(_INDEX_KEY.format(which=which), (relid,)).fetchall())


def describe_tables(conn: Any, names: tuple[str, ...] | list[str]) -> list[TableInfo]:
    """Columns, types and key of each table; refuses tables whose changes cannot be captured."""
    out = []
    for stream in names:
        schema, table = split_stream(stream)
        row = conn.execute(_TABLE, (schema, table)).fetchone()
        if row is None:
            raise ConfigError(
                f"cdc: table {schema}.{table} does not exist in the source", field="tables", value=stream
            )
        relid, ident, kind = int(row[0]), row[1], row[2]
        if kind not in ("r", "p"):
            raise ConfigError(
                f"cdc: {schema}.{table} is not a table (relkind {kind!r}); only tables can be captured",
                field="tables",
                value=stream,
            )
        cols = tuple(
            Column(r[0], int(r[1]), int(r[2]), r[3] if int(r[1]) < FIRST_USER_OID else "text")
            for r in conn.execute(_COLUMNS, (relid,)).fetchall()
        )
        pk = _index_key(conn, relid, "i.indisprimary")
        if ident == "i":
            key = _index_key(conn, relid, "i.indisreplident")
        elif ident == "d" or (ident == "f" and pk):
            key = pk
        else:
            key = ()
        if (ident == "d" and not pk) or ident == "n":
            raise TableWithoutKeyError(table=f"{schema}.{table}", replica_identity=ident)
        out.append(TableInfo(relid, schema, table, cols, key, ident))
    return out


class Catalog:
    """Turns pgoutput Relation messages into :class:`TableInfo` (type names and keys looked up once)."""

    def __init__(self, conn: Any):
        self.conn = conn
        self._types: dict[tuple[int, int], str] = {}
        self._tables: dict[int, TableInfo] = {}

    def _type(self, oid: int, typmod: int) -> str:
        if oid >= FIRST_USER_OID:
            return "text"
        k = (oid, typmod)
        if k not in self._types:
            self._types[k] = self.conn.execute("SELECT format_type(%s, %s)", (oid, typmod)).fetchone()[0]
        return self._types[k]

    def table(self, rel: Relation) -> TableInfo:
        cols = tuple(
            Column(c.name, c.type_oid, c.typmod, self._type(c.type_oid, c.typmod)) for c in rel.columns
        )
        flagged = tuple(c.name for c in rel.columns if c.key)
        if rel.replica_identity in ("d", "i"):
            # The old-key tuple of updates and deletes holds exactly these columns.
            key = flagged
        else:
            # FULL flags every column; the primary key (if any) still identifies the row.
            pk = _index_key(self.conn, rel.relid, "i.indisprimary")
            key = pk if pk and all(k in {c.name for c in cols} for k in pk) else ()
        info = TableInfo(
            rel.relid,
            rel.schema,
            rel.name,
            cols,
            key,
            rel.replica_identity,
            extra={"missing_values": missing_values(self.conn, rel.relid)},
        )
        prev = self._tables.get(rel.relid)
        if (
            prev is not None
            and prev.shape() == info.shape()
            and prev.replica_identity == info.replica_identity
        ):
            return prev  # keep the per-table caches of the encoders
        self._tables[rel.relid] = info
        return info


def missing_values(conn: Any, relid: int) -> dict[str, str]:
    """Values PostgreSQL gives the rows that existed when a column was added with a constant default.

    A destination adding the column gives its existing rows the same value.
    """
    out = {}
    for name, text in conn.execute(
        "SELECT attname, attmissingval::text FROM pg_attribute WHERE attrelid = %s AND atthasmissing "
        "AND attnum > 0 AND NOT attisdropped",
        (relid,),
    ).fetchall():
        parsed = parse_array(text) if text else None
        if parsed and parsed[0] is not None and not isinstance(parsed[0], list):
            out[name] = parsed[0]
    return out
