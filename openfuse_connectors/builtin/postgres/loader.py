"""PostgreSQL destination: Arrow batches through binary COPY (ADBC), state in the same transaction.

Dispositions:

* overwrite - load a staging table, then in the same transaction drop the old table and rename
  the staging table into place: readers see the old table or the new one, never a half-load.
* append - insert into the table.
* merge - load a temporary table, then ``MERGE`` on the primary key; the newest cursor wins,
  and within one load the newest row of each key wins.

Stream state lives in ``<schema>._openfuse_state`` and quarantined rows in
``<schema>._openfuse_quarantine``; both are written in the load's transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from openfuse_connectors.builtin.postgres.config import PostgresConfig
from openfuse_connectors.builtin.postgres.extractor import PASSTHROUGH
from openfuse_connectors.builtin.postgres.sql import (
    NATIVE_PREFIX,
    arrow_to_pg,
    column_type,
    connect_adbc,
    connect_psycopg,
    field_for,
    lit,
    qi,
    qname,
)
from openfuse_connectors.catalog import native_type
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

_FLUSH_BYTES = 1 << 20


class PostgresLoader(Loader):
    """PostgreSQL tables, loaded with binary COPY; data and state commit together."""

    name = "postgres"
    config_model = PostgresConfig
    passthrough_formats: ClassVar[frozenset[str]] = frozenset({PASSTHROUGH})
    replaces_ranges: ClassVar[bool] = True
    config: PostgresConfig

    _bootstrapped = False

    @property
    def schema(self) -> str:
        return self.config.schema_name

    def check(self) -> None:
        with connect_psycopg(self.config) as conn:
            conn.execute("SELECT 1")

    def bootstrap(self) -> None:
        """Create the schema and the bookkeeping tables, once, in their own short transaction.

        Parallel loads into a fresh database would otherwise race on `CREATE ... IF NOT EXISTS`
        (a unique violation in the catalog); the advisory lock serialises only this step.
        """
        if self._bootstrapped:
            return
        s = self.schema
        with connect_psycopg(self.config) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"openfuse-bootstrap:{s}",))
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {qi(s)}")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {qname(s, STATE_TABLE)} (pipeline text NOT NULL, stream text NOT NULL, "
                "state jsonb NOT NULL, run_id text, updated_at timestamptz NOT NULL DEFAULT now(), "
                "PRIMARY KEY (pipeline, stream))"
            )
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {qname(s, QUARANTINE_TABLE)} (pipeline text NOT NULL, "
                "stream text NOT NULL, run_id text NOT NULL, position bigint, field text, value text, "
                "reason text NOT NULL, record text, quarantined_at timestamptz NOT NULL DEFAULT now())"
            )
            conn.commit()
        self._bootstrapped = True

    def read_state(self, pipeline: str, stream: str) -> StreamState | None:
        with connect_psycopg(self.config) as conn:
            exists = conn.execute("SELECT to_regclass(%s)", (qname(self.schema, STATE_TABLE),)).fetchone()
            if not exists or exists[0] is None:
                return None
            row = conn.execute(
                f"SELECT state::text FROM {qname(self.schema, STATE_TABLE)} WHERE pipeline = %s AND stream = %s",
                (pipeline, stream),
            ).fetchone()
        return StreamState.from_json(row[0]) if row else None

    def table_schema(self, table: str) -> pa.Schema | None:
        with connect_psycopg(self.config) as conn:
            rows = conn.execute(
                """SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
                   FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
                   ORDER BY a.attnum""",
                (self.schema, table),
            ).fetchall()
        if not rows:
            return None
        return pa.schema([field_for(r[0], r[1], bool(r[2])) for r in rows])

    def storage_type(self, t: pa.DataType) -> pa.DataType:
        from openfuse_connectors.builtin.postgres.sql import pg_to_arrow

        return pg_to_arrow(arrow_to_pg(t))

    def accepts_passthrough(self, fmt: str, source_schema: pa.Schema, job: WriteJob) -> bool:
        # Binary COPY is type-exact: only when every column keeps its PostgreSQL type.
        return fmt == PASSTHROUGH and all(
            (native_type(f) or "").startswith(NATIVE_PREFIX) for f in source_schema
        )

    def open(self, job: WriteJob) -> LoadTransaction:
        return _PgLoad(self, job)

    def count_rows(self, table: str) -> int:
        with connect_psycopg(self.config) as conn:
            row = conn.execute(f"SELECT count(*) FROM {qname(self.schema, table)}").fetchone()
        return int(row[0]) if row else 0

    def read_table(self, table: str) -> pa.Table:
        conn = connect_adbc(self.config)
        try:
            cur = conn.cursor()
            cur.execute(f"SELECT * FROM {qname(self.schema, table)}")
            tab = cur.fetch_arrow_table()
            cur.close()
            return tab
        finally:
            conn.close()


class _PgLoad(LoadTransaction):
    def __init__(self, loader: PostgresLoader, job: WriteJob):
        self.loader = loader
        self.cfg = loader.config
        self.job = job
        self.schema_name = loader.schema
        self.suffix = uuid.uuid4().hex[:8]
        self.conn: Any = None  # ADBC for Arrow batches, psycopg for the raw pass-through
        self.raw = False
        self.target: pa.Schema | None = None
        self.temp = f"_openfuse_in_{self.suffix}"
        self.temp_used = False
        self.dest = job.table
        self.direct = False
        self.created = False  # the table loaded into was created by this transaction

    # -- connection helpers: both drivers speak DB-API, and we only send literal-free DDL/DML
    def _exec(self, sql: str) -> None:
        cur = self.conn.cursor()
        try:
            cur.execute(sql)
        finally:
            cur.close()

    def _ensure_conn(self, raw: bool) -> None:
        if self.conn is None:
            self.raw = raw
            self.conn = connect_psycopg(self.cfg) if raw else connect_adbc(self.cfg)

    def prepare(self, schema: pa.Schema) -> None:
        self.target = schema
        self._ensure_conn(raw=self.job.extra.get("passthrough") is not None)
        self.loader.bootstrap()
        # One load per (pipeline, stream) at a time; a second one waits rather than racing the state.
        self._exec(
            f"SELECT pg_advisory_xact_lock(hashtext({lit(self.job.pipeline + '/' + self.job.stream.state_key)}))"
        )
        existing = self.loader.table_schema(self.job.table)
        if self.job.disposition is Disposition.OVERWRITE:
            self.dest = f"_openfuse_stage_{self.job.table[:30]}_{self.suffix}"
            self._create(self.dest, schema)
            self.created = True
        elif existing is None:
            self._create(self.job.table, schema)
            self.created = True
        else:
            self._evolve(existing, schema)
            if self.job.disposition is Disposition.REPLACE_RANGE:
                self._delete_range(schema)
        # Append straight into the table when every column is the type the binary writer emits.
        self.direct = (
            self.job.disposition is not Disposition.MERGE
            and all(column_type(f) == arrow_to_pg(f.type) for f in schema)
            and (
                existing is None
                or self.job.disposition is Disposition.OVERWRITE
                or all(column_type(f) == column_type(existing.field(f.name)) for f in schema)
            )
        )

    def _delete_range(self, schema: pa.Schema) -> None:
        """The rows of the replaced range go, in this transaction (the load puts the range back)."""
        r = self.job.replace_range
        assert r is not None
        pg_type = column_type(schema.field(r.field))
        col = qi(r.field)
        if pa.types.is_string(schema.field(r.field).type) or pa.types.is_large_string(
            schema.field(r.field).type
        ):
            col += ' COLLATE "C"'  # byte order, as the engine and the extractors order cursors
        self._exec(
            f"DELETE FROM {qname(self.schema_name, self.job.table)} WHERE {col} >= {lit(r.start.value)}::{pg_type} "
            f"AND {col} < {lit(r.end.value)}::{pg_type}"
        )

    def _create(self, table: str, schema: pa.Schema) -> None:
        cols = [f"{qi(f.name)} {column_type(f)}" for f in schema]
        # Appends keep every version of a row, so only replaced or merged tables get the key constraint.
        pk = (
            self.job.primary_key
            if self.job.stream.mode in (SyncMode.INCREMENTAL_DEDUPE, SyncMode.FULL_REFRESH_OVERWRITE)
            else ()
        )
        if pk and all(schema.get_field_index(k) >= 0 for k in pk):
            cols.append(
                f"CONSTRAINT {qi('pk_' + self.suffix + '_' + table[:40])} PRIMARY KEY ({', '.join(qi(k) for k in pk)})"
            )
        self._exec(f"CREATE TABLE {qname(self.schema_name, table)} ({', '.join(cols)})")

    def _evolve(self, existing: pa.Schema, schema: pa.Schema) -> None:
        t = qname(self.schema_name, self.job.table)
        for f in schema:
            i = existing.get_field_index(f.name)
            if i < 0:
                self._exec(f"ALTER TABLE {t} ADD COLUMN {qi(f.name)} {column_type(f)}")
            elif existing.field(i).type != f.type and column_type(existing.field(i)) != column_type(f):
                new = column_type(f)
                self._exec(f"ALTER TABLE {t} ALTER COLUMN {qi(f.name)} TYPE {new} USING {qi(f.name)}::{new}")

    def write(self, batch: pa.RecordBatch) -> None:
        batch = _binary_safe(batch)
        cur = self.conn.cursor()
        try:
            if self.direct:
                cur.adbc_ingest(self.dest, batch, mode="append", db_schema_name=self.schema_name)
            else:
                cur.adbc_ingest(self.temp, batch, mode="create_append", temporary=True)
                self.temp_used = True
        finally:
            cur.close()

    def write_raw(self, chunks: Iterator[bytes], fmt: str) -> int:
        assert self.target is not None
        cols = ", ".join(qi(f.name) for f in self.target)
        # FREEZE when this transaction created the table (a full refresh's staging table, a first
        # load): the rows are written frozen and the pages marked all-visible, so the first reader
        # (the row-count check, a user's query) neither sets hint bits on every page - rewriting
        # the whole table - nor waits for a vacuum before index-only scans. Nobody sees the table
        # before the commit; a repeatable-read reader that started earlier sees the rows rather
        # than an empty table, which is no worse than the table swap itself (DDL is not MVCC).
        freeze = ", FREEZE" if self.created else ""
        with self.conn.cursor() as cur:
            with cur.copy(
                f"COPY {qname(self.schema_name, self.dest)} ({cols}) FROM STDIN (FORMAT binary{freeze})"
            ) as cp:
                for chunk in chunks:
                    cp.write(chunk)
            return int(cur.rowcount)

    def quarantine(self, rows: list[QuarantinedRow]) -> None:
        q = qname(self.schema_name, QUARANTINE_TABLE)
        tab = pa.table(
            {
                "pipeline": [self.job.pipeline] * len(rows),
                "stream": [self.job.stream.name] * len(rows),
                "run_id": [self.job.run_id] * len(rows),
                "position": pa.array([r.position for r in rows], pa.int64()),
                "field": [r.field for r in rows],
                "value": [_clean(r.value) for r in rows],
                "reason": [r.reason for r in rows],
                "record": [_clean(json.dumps(r.record, default=str)) for r in rows],
            }
        )
        if self.raw:  # pass-through loads never quarantine; keep the code path honest anyway
            raise AssertionError("quarantine on a pass-through load")
        tmp = f"_openfuse_q_{self.suffix}"
        cur = self.conn.cursor()
        try:
            cur.adbc_ingest(tmp, tab, mode="create", temporary=True)
        finally:
            cur.close()
        self._exec(
            f"INSERT INTO {q} (pipeline, stream, run_id, position, field, value, reason, record) "
            f"SELECT pipeline, stream, run_id, position, field, value, reason, record FROM {qi(tmp)}"
        )

    def _finish_temp(self) -> None:
        assert self.target is not None
        if not self.temp_used:
            return
        t = qname(self.schema_name, self.dest)
        names = [f.name for f in self.target]
        cols = ", ".join(qi(n) for n in names)
        typed = ", ".join(f"{qi(f.name)}::{column_type(f)}" for f in self.target)
        if self.job.disposition is Disposition.MERGE:
            pk = self.job.primary_key
            cur_f = self.job.cursor_field
            order = ", ".join(qi(k) for k in pk) + (f", {qi(cur_f)} DESC NULLS LAST" if cur_f else "")
            src = f"(SELECT DISTINCT ON ({', '.join(qi(k) for k in pk)}) {typed} FROM {qi(self.temp)} ORDER BY {order})"
            on = " AND ".join(f"t.{qi(k)} = s.{qi(k)}" for k in pk)
            newer = f" AND (t.{qi(cur_f)} IS NULL OR s.{qi(cur_f)} >= t.{qi(cur_f)})" if cur_f else ""
            sets = (
                ", ".join(f"{qi(n)} = s.{qi(n)}" for n in names if n not in pk)
                or f"{qi(pk[0])} = s.{qi(pk[0])}"
            )
            vals = ", ".join(f"s.{qi(n)}" for n in names)
            if self._has_unique_key(pk):
                # Index lookups per incoming row: for a small change set into a large table this
                # beats MERGE, whose planner tends to hash-join the whole target.
                upd = ", ".join(f"{qi(n)} = EXCLUDED.{qi(n)}" for n in names if n not in pk)
                newer_ex = (
                    f" WHERE t.{qi(cur_f)} IS NULL OR EXCLUDED.{qi(cur_f)} >= t.{qi(cur_f)}" if cur_f else ""
                )
                action = f"DO UPDATE SET {upd}{newer_ex}" if upd else "DO NOTHING"
                self._exec(
                    f"INSERT INTO {t} AS t ({cols}) SELECT {vals} FROM {src} AS s "
                    f"ON CONFLICT ({', '.join(qi(k) for k in pk)}) {action}"
                )
            else:
                self._exec(
                    f"MERGE INTO {t} AS t USING {src} AS s ON {on} "
                    f"WHEN MATCHED{newer} THEN UPDATE SET {sets} "
                    f"WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({vals})"
                )
        else:
            self._exec(f"INSERT INTO {t} ({cols}) SELECT {typed} FROM {qi(self.temp)}")
        self._exec(f"DROP TABLE {qi(self.temp)}")

    def _has_unique_key(self, pk: tuple[str, ...]) -> bool:
        """Whether the target has a unique index on exactly the primary-key columns."""
        cur = self.conn.cursor()
        try:
            cur.execute(
                "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                f"WHERE n.nspname = {lit(self.schema_name)} AND c.relname = {lit(self.dest)} AND i.indisunique "
                "AND i.indpred IS NULL AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a "
                "WHERE a.attrelid = c.oid AND a.attnum = ANY(i.indkey)) = "
                f"ARRAY[{', '.join(lit(k) for k in sorted(pk))}]::text[]"
            )
            row = cur.fetchone()
        finally:
            cur.close()
        return bool(row and row[0])

    def commit(self, state: StreamState) -> None:
        if not self.raw:
            self._finish_temp()
        s = self.schema_name
        if self.job.disposition is Disposition.OVERWRITE:
            self._exec(f"DROP TABLE IF EXISTS {qname(s, self.job.table)}")
            self._exec(f"ALTER TABLE {qname(s, self.dest)} RENAME TO {qi(self.job.table)}")
        self._exec(
            f"INSERT INTO {qname(s, STATE_TABLE)} (pipeline, stream, state, run_id, updated_at) VALUES "
            f"({lit(self.job.pipeline)}, {lit(self.job.stream.state_key)}, {lit(state.to_json())}::jsonb, "
            f"{lit(self.job.run_id)}, now()) ON CONFLICT (pipeline, stream) DO UPDATE SET "
            "state = EXCLUDED.state, run_id = EXCLUDED.run_id, updated_at = EXCLUDED.updated_at"
        )
        self.conn.commit()
        self.conn.close()
        self.conn = None

    def rollback(self) -> None:
        if self.conn is not None:
            try:
                self.conn.rollback()
            finally:
                self.conn.close()
                self.conn = None


def _binary_safe(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The binary COPY writer sends uint64 as int8 (wrapping past 2**63): send it as numeric."""
    if not any(pa.types.is_uint64(t) for t in batch.schema.types):
        return batch
    cols = [pc.cast(c, pa.decimal128(20, 0)) if pa.types.is_uint64(c.type) else c for c in batch.columns]
    return pa.RecordBatch.from_arrays(cols, names=batch.schema.names)


def _clean(text: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL; keep the rest of the value readable.
    return text.replace("\x00", "\\u0000") if text is not None else None
