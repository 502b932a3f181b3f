"""DuckDB destination: Arrow batches scanned natively, data and state in one DuckDB transaction.

Dispositions:

* overwrite - load a staging table, then in the same transaction drop the old table and rename
  the staging table into place: readers see the old table or the new one, never a half-load.
* append - insert into the table.
* merge - load a temporary table, keep the newest row of each key (newest cursor, then the
  latest to arrive), delete the destination rows those replace and insert them; an incoming row
  older than the destination's row for its key is skipped. Tables get no PRIMARY KEY constraint:
  DuckDB cannot alter the column types of an indexed table, and the merge needs none.

Stream state lives in ``<schema>._openfuse_state`` and quarantined rows in
``<schema>._openfuse_quarantine``; both are written in the load's transaction.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from openfuse_connectors.builtin.duckdb.config import DuckDBConfig
from openfuse_connectors.builtin.duckdb.sql import (
    column_type,
    connect,
    connect_existing,
    first_line,
    from_duckdb,
    has_json,
    ingestable,
    qi,
    qname,
    select_list,
    storage_type,
    table_exists,
    table_schema,
)
from openfuse_connectors.errors import RetriableError
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
    import duckdb


class DuckDBLoader(Loader):
    """DuckDB tables, loaded from Arrow; data and state commit together."""

    name = "duckdb"
    replaces_ranges = True
    config_model = DuckDBConfig
    config: DuckDBConfig

    @property
    def schema(self) -> str:
        return self.config.schema_name

    @contextmanager
    def _session(self, *, create: bool = True) -> Iterator[duckdb.DuckDBPyConnection | None]:
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
            if con is None or not table_exists(con, self.schema, STATE_TABLE):
                return None
            rows = con.execute(
                f"SELECT state FROM {qname(self.schema, STATE_TABLE)} WHERE pipeline = ? AND stream = ?",
                [pipeline, stream],
            ).fetchall()
        return StreamState.from_json(rows[0][0]) if rows else None

    def table_schema(self, table: str) -> pa.Schema | None:
        with self._session(create=False) as con:
            return None if con is None else table_schema(con, self.schema, table)

    def storage_type(self, t: pa.DataType) -> pa.DataType:
        """The Arrow type a column created for ``t`` reads back as, so drift detection is stable."""
        return storage_type(t)

    def open(self, job: WriteJob) -> LoadTransaction:
        return _DuckDBLoad(self, job)

    def count_rows(self, table: str) -> int:
        with self._session(create=False) as con:
            if con is None:
                return 0
            rows = con.execute(f"SELECT count(*) FROM {qname(self.schema, table)}").fetchall()
        return int(rows[0][0])

    def read_table(self, table: str) -> pa.Table:
        with self._session(create=False) as con:
            if con is None:
                raise FileNotFoundError(self.config.path)
            tab = con.sql(f"SELECT * FROM {qname(self.schema, table)}").to_arrow_table()
            schema = table_schema(con, self.schema, table)
            if schema is None or schema.types == tab.schema.types:
                return tab
            # HUGEINT columns: DuckDB's export as decimal128(38, 0) cannot hold them.
            tab = con.sql(f"SELECT {select_list(schema)} FROM {qname(self.schema, table)}").to_arrow_table()
            batches = [from_duckdb(b, schema) for b in tab.to_batches()]
            plain = pa.schema([pa.field(f.name, f.type) for f in schema])
            return pa.Table.from_batches(batches, schema=schema).cast(plain)


class _DuckDBLoad(LoadTransaction):
    def __init__(self, loader: DuckDBLoader, job: WriteJob):
        self.loader = loader
        self.job = job
        self.schema_name = loader.schema
        self.suffix = uuid.uuid4().hex[:8]
        self.con: duckdb.DuckDBPyConnection | None = None
        self.target: pa.Schema | None = None
        self.dest = job.table  # where rows land: the table, or its staging table on overwrite
        self.incoming = f"_openfuse_in_{self.suffix}"  # temporary table the merge reads
        # A dedupe stream keeps one row per key, also when it is fully refreshed.
        self.merge = bool(job.primary_key) and (
            job.disposition is Disposition.MERGE or job.stream.mode is SyncMode.INCREMENTAL_DEDUPE
        )

    def _exec(self, sql: str, params: list[object] | None = None) -> None:
        assert self.con is not None
        self.con.execute(sql, params)

    def prepare(self, schema: pa.Schema) -> None:
        self.target = schema
        self.con = connect(self.loader.config)
        self._exec("BEGIN TRANSACTION")
        s = self.schema_name
        self._exec(f"CREATE SCHEMA IF NOT EXISTS {qi(s)}")
        self._exec(
            f"CREATE TABLE IF NOT EXISTS {qname(s, STATE_TABLE)} (pipeline VARCHAR NOT NULL, stream VARCHAR NOT NULL, "
            "state VARCHAR NOT NULL, run_id VARCHAR, updated_at TIMESTAMPTZ NOT NULL DEFAULT now(), "
            "PRIMARY KEY (pipeline, stream))"
        )
        self.json = has_json(self.con)
        existing = table_schema(self.con, s, self.job.table)
        if self.job.disposition is Disposition.OVERWRITE:
            self.dest = f"_openfuse_stage_{self.job.table[:30]}_{self.suffix}"
            self._create(self.dest, schema)
        elif existing is None:
            self._create(self.job.table, schema)
        else:
            self._evolve(existing, schema)
            if self.job.disposition is Disposition.REPLACE_RANGE:
                self._delete_range(schema)
        if self.merge:
            cols = ", ".join(qi(f.name) for f in schema)
            self._exec(
                f"CREATE TEMP TABLE {qi(self.incoming)} AS SELECT {cols} FROM {qname(s, self.dest)} LIMIT 0"
            )

    def _create(self, table: str, schema: pa.Schema) -> None:
        cols = ", ".join(f"{qi(f.name)} {column_type(f, json=self.json)}" for f in schema)
        self._exec(f"CREATE TABLE {qname(self.schema_name, table)} ({cols})")

    def _delete_range(self, schema: pa.Schema) -> None:
        """The rows of the replaced range go, in this transaction (the load puts the range back)."""
        r = self.job.replace_range
        assert r is not None and self.con is not None
        t = schema.field(r.field).type
        # The bounds go in as typed Arrow values, as the extractor's cursor does.
        view = f"_openfuse_range_{self.suffix}"
        self.con.register(
            view,
            pa.table(
                {"lo": pa.array([r.start.to_scalar().cast(t)]), "hi": pa.array([r.end.to_scalar().cast(t)])}
            ),
        )
        try:
            col = qi(r.field)
            self._exec(
                f"DELETE FROM {qname(self.schema_name, self.job.table)} "
                f"WHERE {col} >= (SELECT lo FROM {qi(view)}) AND {col} < (SELECT hi FROM {qi(view)})"
            )
        finally:
            self.con.unregister(view)

    def _evolve(self, existing: pa.Schema, schema: pa.Schema) -> None:
        t = qname(self.schema_name, self.job.table)
        for f in schema:
            i = existing.get_field_index(f.name)
            if i < 0:
                self._exec(f"ALTER TABLE {t} ADD COLUMN {qi(f.name)} {column_type(f, json=self.json)}")
            elif storage_type(f.type) != existing.field(i).type:
                # Widened by the drift plan (int32 -> int64, decimal(10,2) -> decimal(12,2), x -> text).
                self._exec(f"ALTER TABLE {t} ALTER COLUMN {qi(f.name)} TYPE {column_type(f, json=self.json)}")

    def write(self, batch: pa.RecordBatch) -> None:
        batch = ingestable(batch, self.job.table)
        into = qi(self.incoming) if self.merge else qname(self.schema_name, self.dest)
        cols = ", ".join(qi(n) for n in batch.schema.names)
        view = f"_openfuse_batch_{self.suffix}"
        assert self.con is not None
        self.con.register(view, batch)
        try:
            self._exec(f"INSERT INTO {into} ({cols}) SELECT {cols} FROM {qi(view)}")
        finally:
            _unregister(self.con, view)

    def quarantine(self, rows: list[QuarantinedRow]) -> None:
        q = qname(self.schema_name, QUARANTINE_TABLE)
        self._exec(
            f"CREATE TABLE IF NOT EXISTS {q} (pipeline VARCHAR NOT NULL, stream VARCHAR NOT NULL, "
            "run_id VARCHAR NOT NULL, position BIGINT, field VARCHAR, value VARCHAR, reason VARCHAR NOT NULL, "
            "record VARCHAR, quarantined_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        tab = pa.table(
            {
                "pipeline": pa.array([self.job.pipeline] * len(rows), pa.string()),
                "stream": pa.array([self.job.stream.name] * len(rows), pa.string()),
                "run_id": pa.array([self.job.run_id] * len(rows), pa.string()),
                "position": pa.array([r.position for r in rows], pa.int64()),
                "field": pa.array([r.field for r in rows], pa.string()),
                "value": pa.array([r.value for r in rows], pa.string()),
                "reason": pa.array([r.reason for r in rows], pa.string()),
                "record": pa.array(
                    [json.dumps(r.record, default=str, ensure_ascii=False) for r in rows], pa.string()
                ),
            }
        )
        cols = ", ".join(tab.schema.names)
        view = f"_openfuse_q_{self.suffix}"
        assert self.con is not None
        self.con.register(view, tab)
        try:
            self._exec(f"INSERT INTO {q} ({cols}) SELECT {cols} FROM {qi(view)}")
        finally:
            _unregister(self.con, view)

    def _merge(self) -> None:
        assert self.target is not None
        names = self.target.names
        cols = ", ".join(qi(n) for n in names)
        pk = self.job.primary_key
        cur = self.job.cursor_field if self.job.cursor_field in names else None
        t = qname(self.schema_name, self.dest)
        newest = f"{qi(cur)} DESC NULLS LAST, " if cur else ""
        keys = ", ".join(qi(k) for k in pk)
        dedup = f"_openfuse_dedup_{self.suffix}"
        self._exec(
            f"CREATE TEMP TABLE {qi(dedup)} AS SELECT {cols} FROM {qi(self.incoming)} "
            f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {newest}rowid DESC) = 1"
        )
        same_key = " AND ".join(f"d.{qi(k)} = t.{qi(k)}" for k in pk)
        newer = f" AND (t.{qi(cur)} IS NULL OR d.{qi(cur)} >= t.{qi(cur)})" if cur else ""
        self._exec(
            f"DELETE FROM {t} AS t WHERE EXISTS (SELECT 1 FROM {qi(dedup)} AS d WHERE {same_key}{newer})"
        )
        # What is left under a key is newer than the incoming row: keep it, skip the incoming one.
        self._exec(
            f"INSERT INTO {t} ({cols}) SELECT {cols} FROM {qi(dedup)} AS d "
            f"WHERE NOT EXISTS (SELECT 1 FROM {t} AS t WHERE {same_key})"
        )
        self._exec(f"DROP TABLE {qi(dedup)}")
        self._exec(f"DROP TABLE {qi(self.incoming)}")

    def commit(self, state: StreamState) -> None:
        import duckdb

        if self.merge:
            self._merge()
        s = self.schema_name
        if self.job.disposition is Disposition.OVERWRITE:
            self._exec(f"DROP TABLE IF EXISTS {qname(s, self.job.table)}")
            self._exec(f"ALTER TABLE {qname(s, self.dest)} RENAME TO {qi(self.job.table)}")
        self._exec(
            f"INSERT INTO {qname(s, STATE_TABLE)} (pipeline, stream, state, run_id, updated_at) "
            "VALUES (?, ?, ?, ?, now()) ON CONFLICT (pipeline, stream) DO UPDATE SET "
            "state = excluded.state, run_id = excluded.run_id, updated_at = excluded.updated_at",
            [self.job.pipeline, self.job.stream.state_key, state.to_json(), self.job.run_id],
        )
        try:
            self._exec("COMMIT")
        except duckdb.TransactionException as e:
            # Another connection committed a conflicting change to the same tables first.
            raise RetriableError(
                f"duckdb: load of {self.job.table!r} conflicted with a concurrent write "
                f"(path={str(self.loader.config.path)!r}): {first_line(e)}; run the stream again"
            ) from e
        self._close()

    def rollback(self) -> None:
        import duckdb

        if self.con is None:
            return
        try:
            self.con.execute("ROLLBACK")
        except duckdb.Error:
            pass  # no transaction open any more (BEGIN failed, or a failed COMMIT already rolled back)
        finally:
            self._close()

    def _close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None


def _unregister(con: Any, view: str) -> None:
    """Drop a registered batch; after a failed statement DuckDB refuses even that, and the
    statement's own error (e.g. a CHECK violation) is the one the user must see."""
    import duckdb

    with contextlib.suppress(duckdb.Error):
        con.unregister(view)
