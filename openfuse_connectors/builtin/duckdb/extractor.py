"""DuckDB source: tables and views of one schema, streamed as Arrow record batches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

from openfuse_connectors.builtin.duckdb.config import DuckDBConfig
from openfuse_connectors.builtin.duckdb.sql import (
    connect_existing,
    from_duckdb,
    qi,
    qname,
    select_list,
    split_stream,
    table_schema,
)
from openfuse_connectors.catalog import StreamInfo, cursor_candidates
from openfuse_connectors.errors import ConfigError
from openfuse_connectors.extractor import Extractor, _select
from openfuse_connectors.spec import StreamSpec
from openfuse_connectors.state import Cursor, StreamState

if TYPE_CHECKING:
    import duckdb

_OBJECTS = r"""
SELECT DISTINCT table_name FROM duckdb_columns()
WHERE lower(schema_name) = lower(?) AND NOT internal AND table_name NOT LIKE '\_openfuse\_%' ESCAPE '\'
ORDER BY table_name
"""
_PRIMARY_KEY = """
SELECT constraint_column_names FROM duckdb_constraints()
WHERE lower(schema_name) = lower(?) AND lower(table_name) = lower(?) AND constraint_type = 'PRIMARY KEY'
"""


class DuckDBExtractor(Extractor):
    """Tables and views of a DuckDB database file, read as Arrow."""

    name = "duckdb"
    bounded_reads = True
    config_model = DuckDBConfig
    config: DuckDBConfig

    def _connect(self) -> duckdb.DuckDBPyConnection:
        con = connect_existing(self.config)
        if con is None:
            raise ConfigError(
                "source database file does not exist", field="source.config.path", value=str(self.config.path)
            )
        return con

    def check(self) -> None:
        con = self._connect()
        try:
            con.execute("SELECT 1").fetchall()
        finally:
            con.close()

    def _info(self, con: duckdb.DuckDBPyConnection, schema: str, table: str) -> StreamInfo | None:
        found = table_schema(con, schema, table)
        if found is None:
            return None
        rows = con.execute(_PRIMARY_KEY, [schema, table]).fetchall()
        pk = tuple(rows[0][0]) if rows else ()
        name = table if schema.lower() == self.config.schema_name.lower() else f"{schema}.{table}"
        return StreamInfo(name, found, pk, cursor_candidates(found))

    def discover(self) -> list[StreamInfo]:
        con = self._connect()
        try:
            names = [r[0] for r in con.execute(_OBJECTS, [self.config.schema_name]).fetchall()]
            infos = [self._info(con, self.config.schema_name, n) for n in names]
        finally:
            con.close()
        return [i for i in infos if i is not None]

    def stream_info(self, stream: StreamSpec) -> StreamInfo:
        schema, table = split_stream(stream.name, self.config.schema_name)
        con = self._connect()
        try:
            info = self._info(con, schema, table)
        finally:
            con.close()
        if info is None:
            raise ConfigError(
                f"table {schema}.{table} not found in {str(self.config.path)!r}",
                field=f"streams[{stream.name}].name",
                value=stream.name,
            )
        return _select(info, stream)

    def read(
        self,
        stream: StreamSpec,
        state: StreamState | None,
        *,
        batch_size: int = 100_000,
        cursor_end: Cursor | None = None,
    ) -> Iterator[pa.RecordBatch]:
        info = self.stream_info(stream)
        schema, table = split_stream(stream.name, self.config.schema_name)
        sql = f"SELECT {select_list(info.schema)} FROM {qname(schema, table)}"
        bounds: dict[str, pa.Table] = {}
        conds = []
        for name, op, c in (
            ("_openfuse_cursor", ">=", state.cursor if state else None),
            ("_openfuse_cursor_end", "<", cursor_end),
        ):
            if c is None or not stream.cursor_field:
                continue
            # The bound goes in as a typed Arrow value: no text round trip, no time zone surprises.
            col_type = info.schema.field(stream.cursor_field).type
            bounds[name] = pa.table({"v": pa.array([c.to_scalar().cast(col_type)])})
            conds.append(f"{qi(stream.cursor_field)} {op} (SELECT v FROM {name})")
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        con = self._connect()
        try:
            for name, value in bounds.items():
                con.register(name, value)
            reader = con.sql(sql).to_arrow_reader(batch_size)
            for batch in reader:
                yield from_duckdb(batch, info.schema)
        finally:
            con.close()
