"""SQLite destination: rows bound with ``executemany``, data and state in one transaction.

Each load is one ``BEGIN IMMEDIATE`` ... ``COMMIT`` transaction, so a second writer waits (up to
the configured timeout) instead of interleaving. Dispositions:

* overwrite - load a staging table, then in the same transaction drop the old table and rename
  the staging table into place.
* append - insert into the table.
* merge - ``INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE excluded.cursor >= cursor``: the
  newest cursor wins, and within one load a later row with the same cursor wins. Tables of
  ``incremental_dedupe`` streams are created with a PRIMARY KEY; a table created earlier
  without one gets a UNIQUE index on the key first.

Column types changed by the drift plan that need another affinity (say INTEGER -> TEXT) rebuild
the table in the same transaction (SQLite has no ALTER COLUMN TYPE); indexes other than the
primary key are not carried over. Types are described in :mod:`.sql`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from openfuse_connectors.builtin.sqlite.config import SQLiteConfig
from openfuse_connectors.builtin.sqlite.sql import (
    affinity,
    connect,
    connect_existing,
    declared_type,
    ensure_columns_table,
    first_line,
    forget_table,
    from_sqlite,
    has_unique,
    primary_key,
    qi,
    record_column,
    rename_table,
    storage_type,
    table_exists,
    table_schema,
    to_sqlite,
)
from openfuse_connectors.catalog import NATIVE_TYPE
from openfuse_connectors.conform import outside_iso_years
from openfuse_connectors.errors import FatalError, RetriableError
from openfuse_connectors.loader import (
    QUARANTINE_TABLE,
    STATE_TABLE,
    Disposition,
    Loader,
    LoadTransaction,
    QuarantinedRow,
    WriteJob,
)
from openfuse_connectors.spec import SyncMode
from openfuse_connectors.state import StreamState

if TYPE_CHECKING:
    import sqlite3

#: Rows bound per ``executemany`` call.
CHUNK_ROWS = 5_000
_NOW = "strftime('%Y-%m-%d %H:%M:%fZ', 'now')"


class SQLiteLoader(Loader):
    """SQLite tables; data and state commit together."""

    name = "sqlite"
    replaces_ranges = True
    config_model = SQLiteConfig
    config: SQLiteConfig

    @contextmanager
    def _session(self, *, create: bool = True) -> Iterator[sqlite3.Connection | None]:
        con = connect(self.config) if create else connect_existing(self.config)
        try:
            yield con
        finally:
            if con is not None:
                con.close()

    def check(self) -> None:
        with self._session() as con:
            assert con is not None  # create=True always connects
            con.execute("SELECT 1").fetchall()

    def read_state(self, pipeline: str, stream: str) -> StreamState | None:
        with self._session(create=False) as con:
            if con is None or not table_exists(con, STATE_TABLE):
                return None
            row = con.execute(
                f"SELECT state FROM {qi(STATE_TABLE)} WHERE pipeline = ? AND stream = ?", (pipeline, stream)
            ).fetchone()
        return StreamState.from_json(row[0]) if row else None

    def table_schema(self, table: str) -> pa.Schema | None:
        with self._session(create=False) as con:
            return None if con is None else table_schema(con, table)

    def storage_type(self, t: pa.DataType) -> pa.DataType:
        """The Arrow type a column created for ``t`` reads back as, so drift detection is stable."""
        return storage_type(t)

    def unfit_values(self, column: pa.Array, field: pa.Field) -> dict[int, tuple[str, str]]:
        """Values the engine quarantines: dates and timestamps beyond the ISO 8601 text SQLite keeps
        them in (years 1..9999, e.g. a DuckDB ``infinity``)."""
        return outside_iso_years(column, field)

    def open(self, job: WriteJob) -> LoadTransaction:
        return _SQLiteLoad(self, job)

    def count_rows(self, table: str) -> int:
        with self._session(create=False) as con:
            if con is None:
                return 0
            row = con.execute(f"SELECT count(*) FROM {qi(table)}").fetchone()
        return int(row[0]) if row else 0

    def read_table(self, table: str) -> pa.Table:
        with self._session(create=False) as con:
            if con is None:
                raise FileNotFoundError(self.config.path)
            schema = table_schema(con, table)
            if schema is None:
                raise FatalError(f"sqlite: table {table!r} does not exist in {str(self.config.path)!r}")
            cur = con.execute(f"SELECT {', '.join(qi(n) for n in schema.names)} FROM {qi(table)}")
            rows = cur.fetchall()
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
        return pa.table(
            [from_sqlite(list(c), f.type) for c, f in zip(columns, schema, strict=True)], schema=schema
        )


class _SQLiteLoad(LoadTransaction):
    def __init__(self, loader: SQLiteLoader, job: WriteJob):
        self.loader = loader
        self.job = job
        self.suffix = uuid.uuid4().hex[:8]
        self.con: sqlite3.Connection | None = None
        self.target: pa.Schema | None = None
        self.storage: list[pa.DataType] = []
        self.dest = job.table  # where rows land: the table, or its staging table on overwrite
        self.insert_sql = ""
        # A dedupe stream keeps one row per key, also when it is fully refreshed.
        self.upsert = bool(job.primary_key) and (
            job.disposition is Disposition.MERGE or job.stream.mode is SyncMode.INCREMENTAL_DEDUPE
        )
        #: The PRIMARY KEY of tables this load creates: only dedupe streams have one key per row.
        self.key = job.primary_key if self.upsert else ()

    def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        assert self.con is not None
        self.con.execute(sql, params)

    def prepare(self, schema: pa.Schema) -> None:
        import sqlite3

        self.target = schema
        self.storage = [storage_type(f.type) for f in schema]
        self.con = connect(self.loader.config)
        try:
            self._exec("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:  # another writer held the lock for longer than `timeout`
            raise RetriableError(
                f"sqlite: {str(self.loader.config.path)!r} is locked by another writer "
                f"(waited {self.loader.config.timeout}s): {first_line(e)}; run the stream again"
            ) from e
        self._exec(
            f"CREATE TABLE IF NOT EXISTS {qi(STATE_TABLE)} (pipeline TEXT NOT NULL, stream TEXT NOT NULL, "
            f"state TEXT NOT NULL, run_id TEXT, updated_at TEXT NOT NULL DEFAULT ({_NOW}), "
            "PRIMARY KEY (pipeline, stream))"
        )
        ensure_columns_table(self.con)
        existing = table_schema(self.con, self.job.table)
        if self.job.disposition is Disposition.OVERWRITE:
            self.dest = f"_openfuse_stage_{self.job.table[:30]}_{self.suffix}"
            self._create(self.dest, self.key)
        elif existing is None:
            self._create(self.job.table, self.key)
        else:
            self._evolve(existing)
            if self.job.disposition is Disposition.REPLACE_RANGE:
                self._delete_range(schema)
        if self.upsert and not has_unique(self.con, self.dest, self.job.primary_key):
            self._add_unique_key()
        names = schema.names
        cols = ", ".join(qi(n) for n in names)
        self.insert_sql = f"INSERT INTO {qi(self.dest)} ({cols}) VALUES ({', '.join('?' for _ in names)})"
        if self.upsert:
            self.insert_sql += self._on_conflict(names)

    def _delete_range(self, schema: pa.Schema) -> None:
        """The rows of the replaced range go, in this transaction (the load puts the range back).
        The bounds are bound the way the rows are stored, so text timestamps compare as text."""
        r = self.job.replace_range
        assert r is not None
        t = schema.field(r.field).type
        lo, hi = (
            to_sqlite(pa.array([c.to_scalar().cast(t)]), t, table=self.job.table, column=r.field)[0]
            for c in (r.start, r.end)
        )
        col = qi(r.field)
        if pa.types.is_decimal(t):
            where = f"CAST({col} AS NUMERIC) >= CAST(? AS NUMERIC) AND CAST({col} AS NUMERIC) < CAST(? AS NUMERIC)"
        else:
            where = f"{col} >= ? AND {col} < ?"
        self._exec(f"DELETE FROM {qi(self.job.table)} WHERE {where}", (lo, hi))

    def _create(self, table: str, key: tuple[str, ...]) -> None:
        assert self.target is not None and self.con is not None
        cols = [f"{qi(f.name)} {declared_type(t)}" for f, t in zip(self.target, self.storage, strict=True)]
        if key and all(k in self.target.names for k in key):
            cols.append(f"PRIMARY KEY ({', '.join(qi(k) for k in key)})")
        self._exec(f"CREATE TABLE {qi(table)} ({', '.join(cols)})")
        forget_table(self.con, table)  # entries left behind by a table dropped outside OpenFuse
        for f, t in zip(self.target, self.storage, strict=True):
            record_column(self.con, table, f.name, t, declared_type(t))

    def _evolve(self, existing: pa.Schema) -> None:
        assert self.target is not None and self.con is not None
        table = self.job.table
        declared = {
            f.name: (f.metadata or {}).get(NATIVE_TYPE, b"").decode().removeprefix("sqlite:")
            for f in existing
        }
        added: list[tuple[pa.Field, pa.DataType]] = []
        retyped: list[tuple[pa.Field, pa.DataType]] = []
        rebuild = False
        for f, t in zip(self.target, self.storage, strict=True):
            i = existing.get_field_index(f.name)
            if i < 0:
                added.append((f, t))
            elif t != existing.field(i).type:
                retyped.append((f, t))
                rebuild = rebuild or affinity(declared_type(t)) != affinity(declared[f.name])
        if rebuild:
            self._rebuild(existing)
            return
        for f, t in added:
            self._exec(f"ALTER TABLE {qi(table)} ADD COLUMN {qi(f.name)} {declared_type(t)}")
            record_column(self.con, table, f.name, t, declared_type(t))
        for f, t in retyped:
            # Same affinity (int32 -> int64, decimal(10,2) -> decimal(12,2)): the stored values already fit.
            record_column(self.con, table, f.name, t, declared[f.name])

    def _rebuild(self, existing: pa.Schema) -> None:
        """Recreate the table with the target's declared types, copying the rows (SQLite's ALTER recipe)."""
        assert self.con is not None
        table = self.job.table
        tmp = f"_openfuse_rebuild_{table[:30]}_{self.suffix}"
        self._create(tmp, primary_key(self.con, table) or self.key)
        keep = ", ".join(qi(n) for n in existing.names)
        self._exec(f"INSERT INTO {qi(tmp)} ({keep}) SELECT {keep} FROM {qi(table)}")
        self._exec(f"DROP TABLE {qi(table)}")
        self._exec(f"ALTER TABLE {qi(tmp)} RENAME TO {qi(table)}")
        rename_table(self.con, tmp, table)

    def _add_unique_key(self) -> None:
        import sqlite3

        key = self.job.primary_key
        index = f"_openfuse_key_{self.dest[:40]}"
        try:
            self._exec(
                f"CREATE UNIQUE INDEX {qi(index)} ON {qi(self.dest)} ({', '.join(qi(k) for k in key)})"
            )
        except sqlite3.IntegrityError as e:
            raise FatalError(
                f"sqlite: table {self.dest!r} has several rows per primary key {list(key)}, so it cannot be "
                f"merged into ({first_line(e)}); reload it with a full refresh"
            ) from e

    def _on_conflict(self, names: list[str]) -> str:
        key = self.job.primary_key
        sets = ", ".join(f"{qi(n)} = excluded.{qi(n)}" for n in names if n not in key)
        if not sets:
            return f" ON CONFLICT ({', '.join(qi(k) for k in key)}) DO NOTHING"
        sql = f" ON CONFLICT ({', '.join(qi(k) for k in key)}) DO UPDATE SET {sets}"
        cur = self.job.cursor_field
        if cur in names:
            assert cur is not None
            mine, theirs = f"{qi(self.dest)}.{qi(cur)}", f"excluded.{qi(cur)}"
            if pa.types.is_decimal(self.storage[names.index(cur)]):
                # Decimals are text; compare them as numbers.
                mine, theirs = f"CAST({mine} AS NUMERIC)", f"CAST({theirs} AS NUMERIC)"
            sql += f" WHERE {mine} IS NULL OR {theirs} >= {mine}"
        return sql

    def write(self, batch: pa.RecordBatch) -> None:
        assert self.con is not None
        table = self.job.table
        for start in range(0, batch.num_rows, CHUNK_ROWS):
            part = batch.slice(start, CHUNK_ROWS)
            cols = [
                to_sqlite(part.column(i), t, table=table, column=f.name)
                for i, (f, t) in enumerate(zip(part.schema, self.storage, strict=True))
            ]
            self.con.executemany(self.insert_sql, zip(*cols, strict=True))

    def quarantine(self, rows: list[QuarantinedRow]) -> None:
        assert self.con is not None
        q = qi(QUARANTINE_TABLE)
        self._exec(
            f"CREATE TABLE IF NOT EXISTS {q} (pipeline TEXT NOT NULL, stream TEXT NOT NULL, run_id TEXT NOT NULL, "
            "position INTEGER, field TEXT, value TEXT, reason TEXT NOT NULL, record TEXT, "
            f"quarantined_at TEXT NOT NULL DEFAULT ({_NOW}))"
        )
        self.con.executemany(
            f"INSERT INTO {q} (pipeline, stream, run_id, position, field, value, reason, record) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    self.job.pipeline,
                    self.job.stream.name,
                    self.job.run_id,
                    r.position,
                    r.field,
                    r.value,
                    r.reason,
                    json.dumps(r.record, default=str, ensure_ascii=False),
                )
                for r in rows
            ],
        )

    def commit(self, state: StreamState) -> None:
        assert self.con is not None
        if self.job.disposition is Disposition.OVERWRITE:
            self._exec(f"DROP TABLE IF EXISTS {qi(self.job.table)}")
            self._exec(f"ALTER TABLE {qi(self.dest)} RENAME TO {qi(self.job.table)}")
            rename_table(self.con, self.dest, self.job.table)
        self._exec(
            f"INSERT INTO {qi(STATE_TABLE)} (pipeline, stream, state, run_id, updated_at) "
            f"VALUES (?, ?, ?, ?, {_NOW}) ON CONFLICT (pipeline, stream) DO UPDATE SET "
            "state = excluded.state, run_id = excluded.run_id, updated_at = excluded.updated_at",
            (self.job.pipeline, self.job.stream.state_key, state.to_json(), self.job.run_id),
        )
        self._exec("COMMIT")
        self._close()

    def rollback(self) -> None:
        if self.con is None:
            return
        try:
            if self.con.in_transaction:
                self.con.execute("ROLLBACK")
        finally:
            self._close()

    def _close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None
