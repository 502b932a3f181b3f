"""PostgreSQL source: binary COPY into Arrow (through ADBC's libpq driver), or raw pass-through."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from openfuse_connectors.builtin.postgres.config import PostgresConfig
from openfuse_connectors.builtin.postgres.sql import (
    connect_adbc,
    connect_psycopg,
    field_for,
    qi,
    qname,
    select_expr,
    split_stream,
)
from openfuse_connectors.catalog import StreamInfo, cursor_candidates, native_type
from openfuse_connectors.errors import ConfigError
from openfuse_connectors.extractor import Extractor
from openfuse_connectors.spec import StreamSpec
from openfuse_connectors.state import StreamState

PASSTHROUGH = "postgres_binary_copy"

_DISCOVER = """
SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       COALESCE((SELECT array_position(i.indkey::int2[], a.attnum) FROM pg_index i
                 WHERE i.indrelid = c.oid AND i.indisprimary), 0)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'
  AND n.nspname NOT LIKE 'pg_temp%%' AND c.relname NOT LIKE '\\_openfuse\\_%%'
  {filter}
ORDER BY n.nspname, c.relname, a.attnum
"""


class PostgresExtractor(Extractor):
    """PostgreSQL tables and views, streamed with binary COPY."""

    name = "postgres"
    config_model = PostgresConfig
    passthrough_formats: ClassVar[frozenset[str]] = frozenset({PASSTHROUGH})
    config: PostgresConfig

    def check(self) -> None:
        with connect_psycopg(self.config) as conn:
            conn.execute("SELECT 1")

    def _discover(self, only: tuple[str, str] | None = None) -> list[StreamInfo]:
        filt = ""
        params: tuple[Any, ...] = ()
        if only:
            filt = "AND n.nspname = %s AND c.relname = %s"
            params = only
        with connect_psycopg(self.config) as conn:
            rows = conn.execute(_DISCOVER.format(filter=filt), params).fetchall()
        tables: dict[tuple[str, str], list[Any]] = {}
        for row in rows:
            tables.setdefault((row[0], row[1]), []).append(row)
        out = []
        for (schema, table), cols in tables.items():
            fields = [field_for(c[2], c[3], bool(c[4])) for c in cols]
            pk = tuple(c[2] for c in sorted((c for c in cols if c[5]), key=lambda c: c[5]))
            sch = pa.schema(fields)
            out.append(StreamInfo(f"{schema}.{table}", sch, pk, cursor_candidates(sch)))
        return out

    def discover(self) -> list[StreamInfo]:
        return self._discover()

    def stream_info(self, stream: StreamSpec) -> StreamInfo:
        schema, table = split_stream(stream.name)
        found = self._discover((schema, table))
        if not found:
            raise ConfigError(
                f"table {schema}.{table} not found in source database {self.config.where()['database']!r}",
                field=f"streams[{stream.name}].name", value=stream.name,
            )
        from openfuse_connectors.extractor import _select

        return _select(found[0], stream)

    def _select_sql(self, stream: StreamSpec, info: StreamInfo, state: StreamState | None) -> tuple[str, tuple[Any, ...]]:
        schema, table = split_stream(stream.name)
        cols = ", ".join(select_expr(f.name, (native_type(f) or "text").removeprefix("postgres:")) for f in info.schema)
        sql = f"SELECT {cols} FROM {qname(schema, table)}"
        params: tuple[Any, ...] = ()
        if state and state.cursor and stream.cursor_field:
            sql += f" WHERE {qi(stream.cursor_field)} >= $1"
            params = (state.cursor.as_py(),)
        return sql, params

    def read(self, stream: StreamSpec, state: StreamState | None, *, batch_size: int = 100_000) -> Iterator[pa.RecordBatch]:
        info = self.stream_info(stream)
        sql, params = self._select_sql(stream, info, state)
        target = info.schema
        conn = connect_adbc(self.config)
        try:
            cur = conn.cursor()
            # ADBC sizes batches in bytes; ~200 bytes/row is a fair guess, and the cap keeps memory bounded.
            hint = max(1 << 20, min(64 << 20, batch_size * 200))
            cur.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(hint)})
            cur.execute(sql, params or None)
            reader = cur.fetch_record_batch()
            for batch in reader:
                yield _to_schema(batch, target)
            cur.close()
        finally:
            conn.rollback()
            conn.close()

    def copy_out(self, stream: StreamSpec, fmt: str) -> Iterator[bytes]:
        if fmt != PASSTHROUGH:
            raise NotImplementedError(fmt)
        info = self.stream_info(stream)
        schema, table = split_stream(stream.name)
        cols = ", ".join(qi(f.name) for f in info.schema)
        with connect_psycopg(self.config) as conn, conn.cursor() as cur:
            with cur.copy(f"COPY (SELECT {cols} FROM {qname(schema, table)}) TO STDOUT (FORMAT binary)") as cp:
                yield from cp
            conn.rollback()


def _to_schema(batch: pa.RecordBatch, target: pa.Schema) -> pa.RecordBatch:
    cols = []
    for i, f in enumerate(target):
        col = batch.column(i)
        if isinstance(col.type, pa.ExtensionType) or hasattr(col.type, "storage_type"):
            col = col.storage if hasattr(col, "storage") else col
        if col.type != f.type:
            col = pc.cast(col, f.type)
        cols.append(col)
    return pa.RecordBatch.from_arrays(cols, schema=target)
