"""SQLite source: tables and views, read in batches and typed as :mod:`.sql` describes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from openfuse_connectors.builtin.sqlite.config import SQLiteConfig
from openfuse_connectors.builtin.sqlite.sql import (
    connect_existing,
    from_sqlite,
    primary_key,
    qi,
    table_schema,
    to_sqlite,
)
from openfuse_connectors.catalog import StreamInfo, cursor_candidates
from openfuse_connectors.errors import ConfigError
from openfuse_connectors.extractor import Extractor, _select
from openfuse_connectors.spec import StreamSpec
from openfuse_connectors.state import Cursor, StreamState

if TYPE_CHECKING:
    import sqlite3

_OBJECTS = r"""
SELECT name FROM sqlite_master
WHERE type IN ('table', 'view') AND name NOT LIKE '\_openfuse\_%' ESCAPE '\' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'
ORDER BY name
"""


class SQLiteExtractor(Extractor):
    """Tables and views of a SQLite database file."""

    name = "sqlite"
    bounded_reads = True
    config_model = SQLiteConfig
    config: SQLiteConfig

    def _connect(self) -> sqlite3.Connection:
        con = connect_existing(self.config)
        if con is None:
            raise ConfigError(
                "source database file does not exist", field="source.config.path", value=str(self.config.path)
            )
        return con

    def check(self) -> None:
        self._connect().close()

    def _info(self, con: sqlite3.Connection, table: str) -> StreamInfo | None:
        schema = table_schema(con, table)
        if schema is None:
            return None
        return StreamInfo(table, schema, primary_key(con, table), cursor_candidates(schema))

    def discover(self) -> list[StreamInfo]:
        con = self._connect()
        try:
            infos = [self._info(con, r[0]) for r in con.execute(_OBJECTS).fetchall()]
        finally:
            con.close()
        return [i for i in infos if i is not None]

    def stream_info(self, stream: StreamSpec) -> StreamInfo:
        con = self._connect()
        try:
            info = self._info(con, stream.name)
        finally:
            con.close()
        if info is None:
            raise ConfigError(
                f"table {stream.name!r} not found in {str(self.config.path)!r}",
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
        schema = info.schema
        sql = f"SELECT {', '.join(qi(n) for n in schema.names)} FROM {qi(stream.name)}"
        params: list[Any] = []
        conds = []
        for op, c in ((">=", state.cursor if state else None), ("<", cursor_end)):
            if c is None or not stream.cursor_field:
                continue
            t = schema.field(stream.cursor_field).type
            # Bind the bound the way the loader stores values, so text timestamps compare as text.
            [value] = to_sqlite(pa.array([c.to_scalar().cast(t)]), t, table=stream.name, column="cursor")
            col = qi(stream.cursor_field)
            conds.append(
                f"CAST({col} AS NUMERIC) {op} CAST(? AS NUMERIC)"
                if pa.types.is_decimal(t)
                else f"{col} {op} ?"
            )
            params.append(value)
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        con = self._connect()
        try:
            cur = con.execute(sql, tuple(params))
            while rows := cur.fetchmany(batch_size):
                columns = list(zip(*rows, strict=True))
                arrays = [from_sqlite(list(c), f.type) for c, f in zip(columns, schema, strict=True)]
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)
        finally:
            con.close()
