"""MySQL / MariaDB source: tables and views streamed through an unbuffered result into Arrow.

Streams are the tables and views of the configured ``database``, named by the bare table name
(``orders``). A name that is not a table there and holds a dot is read as ``other_db.table``
(split at the first dot), so another database on the same server can be synced too. Table and
column names may hold any character: identifiers are always quoted with backticks.

A read runs one ``SELECT`` (a consistent snapshot under InnoDB) with ``mysql_use_result``: rows
come off the socket as they are fetched, ~``batch_size`` at a time and never more than ~64 MiB
of values, so memory stays bounded whatever the table's size. Types are mapped as the table in
:mod:`openfuse_connectors.builtin.mysql.sql` says; a value with no exact Arrow equivalent (zero
dates, TIME outside a day) holds its row back and is reported through :meth:`take_rejects`.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from openfuse_connectors.builtin.mysql.config import MySQLConfig
from openfuse_connectors.builtin.mysql.errors import MySQLQueryError, MySQLTransientError
from openfuse_connectors.builtin.mysql.sql import (
    TRANSIENT_CODES,
    ColumnDecoder,
    connect,
    cursor_condition,
    error_code,
    error_message,
    field_for,
    qi,
    qname,
    reason,
    render,
    select_expr,
)
from openfuse_connectors.catalog import StreamInfo, cursor_candidates, native_type
from openfuse_connectors.errors import ConfigError, OpenFuseError, SourceUnreachableError, StateError
from openfuse_connectors.extractor import Extractor, _select
from openfuse_connectors.loader import QuarantinedRow
from openfuse_connectors.spec import StreamSpec
from openfuse_connectors.state import Cursor, StreamState

__all__ = ["BATCH_BYTES", "MySQLExtractor"]

#: Most bytes one batch may hold; wide rows get fewer rows per batch than ``batch_size``.
BATCH_BYTES = 64 << 20
#: Rows are fetched and decoded in chunks of at most this many rows / bytes, then concatenated.
CHUNK_ROWS = 10_000
CHUNK_BYTES = 8 << 20
#: The first chunk, before the width of a row is known.
_FIRST_CHUNK = 32

_SKIP_OWN = "AND c.TABLE_NAME NOT LIKE '#_openfuse#_%%' ESCAPE '#'"
_COLUMNS = f"""
SELECT c.TABLE_NAME, c.COLUMN_NAME, c.COLUMN_TYPE, c.IS_NULLABLE
FROM information_schema.COLUMNS c
JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
WHERE c.TABLE_SCHEMA = %s AND t.TABLE_TYPE IN ('BASE TABLE', 'VIEW', 'SYSTEM VERSIONED')
  {_SKIP_OWN} {{only}}
ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION
"""
_PRIMARY_KEYS = """
SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE c
WHERE c.TABLE_SCHEMA = %s AND c.CONSTRAINT_NAME = 'PRIMARY' {only}
ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION
"""
# MariaDB's JSON is LONGTEXT plus a column CHECK named after the column: json_valid(`col`).
_MARIADB_JSON = """
SELECT c.TABLE_NAME, c.CONSTRAINT_NAME, c.CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS c
WHERE c.CONSTRAINT_SCHEMA = %s AND c.LEVEL = 'Column' AND c.CHECK_CLAUSE LIKE 'json#_valid(%%' ESCAPE '#' {only}
"""


class MySQLExtractor(Extractor):
    """MySQL and MariaDB tables and views, streamed into Arrow batches."""

    name = "mysql"
    config_model = MySQLConfig
    config: MySQLConfig
    bounded_reads = True

    def __init__(self, config: MySQLConfig):
        super().__init__(config)
        self._rejects: list[QuarantinedRow] = []

    # -- connection

    def check(self) -> None:
        import MySQLdb

        conn = connect(self.config, timeout=self.config.connect_timeout)
        try:
            cur = conn.cursor()
            cur.execute("SELECT 1")
            cur.fetchall()
        except MySQLdb.Error as e:
            raise SourceUnreachableError(
                connector=self.name, reason=reason(e, self.config), **self.config.where()
            ) from e
        finally:
            conn.close()

    # -- catalog

    def _catalog(self, database: str, table: str | None = None) -> list[StreamInfo]:
        import MySQLdb

        only = "AND c.TABLE_NAME = %s" if table is not None else ""
        params: tuple[str, ...] = (database, table) if table is not None else (database,)
        conn = connect(self.config)
        try:
            cur = conn.cursor()
            cur.execute(_COLUMNS.format(only=only), params)
            columns = cur.fetchall()
            cur.execute(_PRIMARY_KEYS.format(only=only), params)
            keys = cur.fetchall()
            json_cols: set[tuple[str, str]] = set()
            if "mariadb" in conn.get_server_info().lower():
                cur.execute(_MARIADB_JSON.format(only=only), params)
                json_cols = {(t, c) for t, c, clause in cur.fetchall() if clause == f"json_valid({qi(c)})"}
        except MySQLdb.Error as e:
            raise MySQLQueryError(
                stream=f"{database}.{table or '*'}",
                code=error_code(e),
                message=error_message(e),
                **self.config.where(),
            ) from e
        finally:
            conn.close()
        if table is not None:
            # information_schema may compare names without case; MySQL on Linux does not.
            names = {r[0] for r in columns}
            exact = table if table in names else next(iter(names)) if len(names) == 1 else None
            columns = tuple(r for r in columns if r[0] == exact)
            keys = tuple(r for r in keys if r[0] == exact)
        by_table: dict[str, list[pa.Field]] = {}
        for tname, cname, ctype, nullable in columns:
            native = "json" if (tname, cname) in json_cols or ctype.lower() == "json" else ctype
            by_table.setdefault(tname, []).append(
                field_for(cname, native, nullable == "YES", tinyint1_as_bool=self.config.tinyint1_as_bool)
            )
        pks: dict[str, list[str]] = {}
        for tname, cname in keys:
            pks.setdefault(tname, []).append(cname)
        out = []
        for tname, fields in by_table.items():
            schema = pa.schema(fields)
            name = tname if database == self.config.database else f"{database}.{tname}"
            out.append(
                StreamInfo(
                    name,
                    schema,
                    tuple(pks.get(tname, ())),
                    cursor_candidates(schema),
                    {"database": database, "table": tname},
                )
            )
        return out

    def discover(self) -> list[StreamInfo]:
        """Tables and views of the configured database, named by table."""
        return self._catalog(self.config.database)

    def stream_info(self, stream: StreamSpec) -> StreamInfo:
        found = self._catalog(self.config.database, stream.name)
        if not found and "." in stream.name:
            database, table = stream.name.split(".", 1)
            if database and table:
                found = self._catalog(database, table)
        if not found:
            raise ConfigError(
                f"stream {stream.name!r}: no table or view of that name in database "
                f"{self.config.database!r} (nor `db.table` of another database) on "
                f"{self.config.host}:{self.config.port}; run discover to list the streams",
                field=f"streams[{stream.name}].name",
                value=stream.name,
            )
        return _select(dataclasses.replace(found[0], name=stream.name), stream)

    # -- reading

    def _select_sql(
        self, stream: StreamSpec, info: StreamInfo, state: StreamState | None, end: Cursor | None = None
    ) -> str:
        cols = ", ".join(select_expr(f.name, native_type(f) or "") for f in info.schema)
        sql = f"SELECT {cols} FROM {qname(info.extra['database'], info.extra['table'])}"
        conds = []
        for op, cursor in ((">=", state.cursor if state else None), ("<", end)):
            if cursor is None or not stream.cursor_field:
                continue
            f = info.schema.field(stream.cursor_field)
            try:
                value = cursor.to_scalar().cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                what = "stored cursor" if op == ">=" else "cursor end"
                raise StateError(
                    f"mysql: {what} {cursor.field}={cursor.value!r} "
                    f"({cursor.type}) does not fit column {stream.cursor_field!r} ({f.type}) "
                    f"of stream {stream.name!r}; run a full refresh: {e}"
                ) from e
            conds.append(cursor_condition(stream.cursor_field, value, op))  # type: ignore[arg-type]
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        return sql

    def read(
        self,
        stream: StreamSpec,
        state: StreamState | None,
        *,
        batch_size: int = 100_000,
        cursor_end: Cursor | None = None,
    ) -> Iterator[pa.RecordBatch]:
        info = self.stream_info(stream)
        sql = self._select_sql(stream, info, state, cursor_end)
        self._rejects = []
        conn = connect(self.config, raw=True)
        thread_id = conn.thread_id()
        # A reader thread fetches and decodes the next batch while the engine loads this one
        # (the driver and Arrow release the GIL while they wait or convert). It alone uses the
        # connection; the connection is closed here, once the thread has stopped.
        ahead: queue.Queue[tuple[pa.RecordBatch, list[QuarantinedRow]] | BaseException | None] = queue.Queue(
            maxsize=1
        )
        stop = threading.Event()

        def put(item: tuple[pa.RecordBatch, list[QuarantinedRow]] | BaseException | None) -> bool:
            while not stop.is_set():
                try:
                    ahead.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def pump() -> None:
            try:
                for item in self._batches(conn, sql, stream, info.schema, batch_size):
                    if not put(item):
                        return
                put(None)
            except BaseException as e:  # handed to the consumer, raised there
                put(e)

        reader = threading.Thread(target=pump, name=f"openfuse-mysql-read-{stream.name}", daemon=True)
        reader.start()
        try:
            while (item := ahead.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                batch, rejects = item
                self._rejects.extend(rejects)
                yield batch
        finally:
            stop.set()
            reader.join(timeout=1.0)
            if reader.is_alive():  # stopped early while the server is slow to send the next rows
                self._kill(thread_id)
                reader.join()
            # Closing the socket first also spares freeing an unfinished result, which would
            # make the client read (and throw away) every remaining row of the table.
            conn.close()

    def _kill(self, thread_id: int) -> None:
        """Interrupt a read's query from another connection (best effort: the read is abandoned)."""
        import MySQLdb

        try:
            conn = connect(self.config, timeout=self.config.connect_timeout)
        except SourceUnreachableError:
            return
        try:
            conn.query(f"KILL QUERY {int(thread_id)}")
        except MySQLdb.Error:
            pass  # the query ended meanwhile, or KILL is not allowed: the read ends at read_timeout
        finally:
            conn.close()

    def _batches(
        self, conn: Any, sql: str, stream: StreamSpec, schema: pa.Schema, batch_size: int
    ) -> Iterator[tuple[pa.RecordBatch, list[QuarantinedRow]]]:
        """Run ``sql`` unbuffered; yield each decoded batch with the rows it held back."""
        import MySQLdb

        decoders = [ColumnDecoder(f) for f in schema]
        yielded = 0
        try:
            conn.query(sql)
            result = conn.use_result()
        except MySQLdb.Error as e:
            raise self._error(stream, e) from e
        per_row: float | None = None  # Arrow bytes per row seen so far
        seen_rows = seen_bytes = 0
        while True:
            # Fetch and decode in chunks of at most CHUNK_ROWS rows / CHUNK_BYTES (few live Python
            # objects, warm caches), then hand out ~batch_size rows (at most BATCH_BYTES) at once.
            target = batch_size if per_row is None else _rows_for(batch_size, per_row, BATCH_BYTES)
            chunks: list[pa.RecordBatch] = []
            rejects: list[QuarantinedRow] = []
            fetched = kept = 0
            end = False
            while fetched < target:
                size = _FIRST_CHUNK if per_row is None else _rows_for(CHUNK_ROWS, per_row, CHUNK_BYTES)
                try:
                    rows = result.fetch_row(min(size, target - fetched))
                except MySQLdb.Error as e:
                    raise self._error(stream, e) from e
                if not rows:
                    end = True
                    break
                batch, held_back = _decode(rows, schema, decoders, yielded + kept)
                fetched += len(rows)
                kept += batch.num_rows
                chunks.append(batch)
                rejects += held_back
                seen_rows += batch.num_rows
                seen_bytes += batch.nbytes
                if seen_rows:
                    per_row = seen_bytes / seen_rows
                    target = min(target, _rows_for(batch_size, per_row, BATCH_BYTES))
            if fetched:
                batch = _concat(chunks, schema)
                yielded += batch.num_rows
                yield batch, rejects
            if end:
                return

    def _error(self, stream: StreamSpec, e: BaseException) -> OpenFuseError:
        code = error_code(e)
        cls = MySQLTransientError if code in TRANSIENT_CODES else MySQLQueryError
        return cls(stream=stream.name, code=code, message=error_message(e), **self.config.where())

    def take_rejects(self) -> list[QuarantinedRow]:
        """Rows held back since the last call: a value had no exact Arrow equivalent (see :mod:`.sql`).

        Each names the column (``field``), carries the server's text of the value (``value``; hex
        for binary columns), the reason, and the whole row as text (``record``). ``position`` is
        the number of rows yielded before it, so it sorts next to its neighbours.
        """
        out, self._rejects = self._rejects, []
        return out


def _decode(
    rows: tuple[tuple[bytes | None, ...], ...], schema: pa.Schema, decoders: list[ColumnDecoder], at: int
) -> tuple[pa.RecordBatch, list[QuarantinedRow]]:
    """Rows of server text -> a batch of ``schema``, minus the rows holding a value without an
    Arrow equivalent, which come back as quarantined rows (``at``: rows yielded before these)."""
    columns = list(zip(*rows, strict=True))
    arrays = []
    bad: dict[int, tuple[ColumnDecoder, bytes | None, str]] = {}
    for values, dec in zip(columns, decoders, strict=True):
        array, errors = dec.decode(values)
        arrays.append(array)
        for i, why in errors.items():
            bad.setdefault(i, (dec, values[i], why))
    batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
    if not bad:
        return batch, []
    fields = list(schema)
    rejects = [
        QuarantinedRow(
            position=at + i - n,
            field=dec.name,
            value=render(value, dec.field),
            reason=why,
            record={f.name: render(v, f) for f, v in zip(fields, rows[i], strict=True)},
        )
        for n, (i, (dec, value, why)) in enumerate(sorted(bad.items()))
    ]
    return batch.filter(pa.array([i not in bad for i in range(len(rows))])), rejects


def _rows_for(limit: int, bytes_per_row: float, budget: int) -> int:
    """Rows to take: at most ``limit``, and no more than ``budget`` bytes' worth (at least one)."""
    return max(1, min(limit, int(budget / max(1.0, bytes_per_row))))


def _concat(chunks: list[pa.RecordBatch], schema: pa.Schema) -> pa.RecordBatch:
    if len(chunks) == 1:
        return chunks[0]
    batches = pa.Table.from_batches(chunks, schema=schema).combine_chunks().to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=schema)
