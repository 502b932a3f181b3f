"""PostgreSQL source: binary COPY into Arrow (through ADBC's libpq driver), or raw pass-through."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pyarrow as pa

from openfuse_connectors.builtin.postgres.config import PostgresConfig
from openfuse_connectors.builtin.postgres.sql import (
    connect_adbc,
    connect_psycopg,
    field_for,
    lit,
    qi,
    qname,
    reject_expr,
    select_expr,
    split_stream,
    stream_name,
)
from openfuse_connectors.catalog import StreamInfo, cursor_candidates, native_type
from openfuse_connectors.conform import cast_exact
from openfuse_connectors.errors import ConfigError
from openfuse_connectors.extractor import Extractor
from openfuse_connectors.loader import QuarantinedRow
from openfuse_connectors.spec import StreamSpec
from openfuse_connectors.state import Cursor, StreamState

PASSTHROUGH = "postgres_binary_copy"

_DISCOVER = """
SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       COALESCE((SELECT k.n FROM pg_index i, unnest(i.indkey) WITH ORDINALITY AS k(att, n)
                 WHERE i.indrelid = c.oid AND i.indisprimary AND k.att = a.attnum), 0)
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
    bounded_reads: ClassVar[bool] = True
    config: PostgresConfig

    def __init__(self, config: PostgresConfig):
        super().__init__(config)
        self._rejects: list[QuarantinedRow] = []

    def take_rejects(self) -> list[QuarantinedRow]:
        out, self._rejects = self._rejects, []
        return out

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
            out.append(StreamInfo(stream_name(schema, table), sch, pk, cursor_candidates(sch)))
        return out

    def discover(self) -> list[StreamInfo]:
        return self._discover()

    def stream_info(self, stream: StreamSpec) -> StreamInfo:
        schema, table = split_stream(stream.name)
        found = self._discover((schema, table))
        if not found:
            raise ConfigError(
                f"table {schema}.{table} not found in source database {self.config.where()['database']!r}",
                field=f"streams[{stream.name}].name",
                value=stream.name,
            )
        from openfuse_connectors.extractor import _select

        return _select(found[0], stream)

    def _select_sql(
        self, stream: StreamSpec, info: StreamInfo, state: StreamState | None, end: Cursor | None = None
    ) -> str:
        schema, table = split_stream(stream.name)
        exprs = [
            select_expr(f.name, (native_type(f) or "text").removeprefix("postgres:")) for f in info.schema
        ]
        # One extra text column per column whose values may have no exact Arrow form (NULL = fine).
        for i, f in enumerate(info.schema):
            rej = reject_expr(f.name, (native_type(f) or "text").removeprefix("postgres:"))
            if rej is not None:
                exprs.append(f"{rej} AS {qi(f'{_REJECT}{i}')}")
        cols = ", ".join(exprs)
        sql = f"SELECT {cols} FROM {qname(schema, table)}"
        bounds = [(">=", state.cursor if state else None), ("<", end)]
        conds = []
        for op, cursor in bounds:
            if cursor is None or not stream.cursor_field:
                continue
            # Inlined as a typed literal, not bound: ADBC only streams batches for unbound queries.
            f = info.schema.field(stream.cursor_field)
            pg_type = (native_type(f) or "text").removeprefix("postgres:")
            col = qi(stream.cursor_field)
            if pa.types.is_string(f.type) or pa.types.is_large_string(f.type):
                # Byte order, as the engine orders cursors; a linguistic collation would skip rows.
                col += ' COLLATE "C"'
            conds.append(f"{col} {op} {lit(cursor.value)}::{pg_type}")
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
        target = info.schema
        conn = connect_adbc(self.config)
        try:
            cur = conn.cursor()
            # ADBC sizes batches in bytes; ~200 bytes/row is a fair guess, and the cap keeps memory bounded.
            hint = max(16 << 10, min(64 << 20, batch_size * 200))
            cur.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(hint)})
            cur.execute(sql)
            reader = cur.fetch_record_batch()
            position = 0
            for batch in reader:
                good, bad = _to_schema(batch, target, stream.name, position)
                self._rejects.extend(bad)
                position += good.num_rows
                yield good
            cur.close()
        finally:
            conn.rollback()
            conn.close()

    def copy_out(self, stream: StreamSpec, fmt: str) -> Iterator[bytes]:
        """The stream as PostgreSQL binary COPY bytes, in ~1 MiB chunks, never decoded.

        With `psql` on PATH the source side runs in that C client, in its own process (measured
        here: 1.7 s for 1M rows against 1.9 s for a reader thread in this process, because
        per-row Python calls are the cost); without it a psycopg reader thread feeds the chunks.
        """
        if fmt != PASSTHROUGH:
            raise NotImplementedError(fmt)
        info = self.stream_info(stream)
        schema, table = split_stream(stream.name)
        cols = ", ".join(qi(f.name) for f in info.schema)
        sql = f"COPY (SELECT {cols} FROM {qname(schema, table)}) TO STDOUT (FORMAT binary)"
        env = _psql_env(self.config)
        psql = shutil.which("psql")
        if psql and env is not None:
            yield from _psql_copy_out(psql, env, sql, self.config)
        else:
            yield from _thread_copy_out(self.config, sql)


_CHUNK = 1 << 20
_LIBPQ_ENV = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "dbname": "PGDATABASE",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "passfile": "PGPASSFILE",
    "sslmode": "PGSSLMODE",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcrl": "PGSSLCRL",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "options": "PGOPTIONS",
    "application_name": "PGAPPNAME",
    "service": "PGSERVICE",
    "channel_binding": "PGCHANNELBINDING",
    "gssencmode": "PGGSSENCMODE",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "sslnegotiation": "PGSSLNEGOTIATION",
}


def _psql_env(cfg: PostgresConfig) -> dict[str, str] | None:
    """Connection settings as libpq environment variables (never on the command line, where `ps` shows them)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(cfg.dsn.get_secret_value())
    except Exception:
        return None
    if any(k not in _LIBPQ_ENV for k in info):
        return None  # a parameter psql cannot take from the environment: use the in-process reader
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({_LIBPQ_ENV[k]: str(v) for k, v in info.items() if v is not None})
    env.setdefault("PGCONNECT_TIMEOUT", str(cfg.connect_timeout))
    env.setdefault("PGAPPNAME", "openfuse")
    return env


def _psql_copy_out(psql: str, env: dict[str, str], sql: str, cfg: PostgresConfig) -> Iterator[bytes]:
    proc = subprocess.Popen(
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        bufsize=0,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        while chunk := proc.stdout.read(_CHUNK):
            yield chunk
        err = proc.stderr.read().decode(errors="replace").strip()
        if proc.wait() != 0:
            from openfuse_connectors.errors import RetriableError, SourceUnreachableError

            if "connection to server" in err or "could not connect" in err:
                raise SourceUnreachableError(connector="postgres", reason=err.splitlines()[0], **cfg.where())
            raise RetriableError(f"postgres source COPY failed (psql exit {proc.returncode}): {err}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def _thread_copy_out(cfg: PostgresConfig, sql: str) -> Iterator[bytes]:
    q: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=8)
    stop = threading.Event()

    def pump() -> None:
        try:
            with connect_psycopg(cfg) as conn, conn.cursor() as cur, cur.copy(sql) as cp:
                buf = bytearray()
                for row in cp:
                    buf += row
                    if len(buf) >= _CHUNK:
                        q.put(bytes(buf))
                        buf = bytearray()
                        if stop.is_set():
                            return
                if buf:
                    q.put(bytes(buf))
            q.put(None)
        except BaseException as e:  # handed to the consumer, raised there
            q.put(e)

    t = threading.Thread(target=pump, name="openfuse-copy-out", daemon=True)
    t.start()
    try:
        while (item := q.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.05)


_REJECT = "__openfuse_reject_"


def _to_schema(
    batch: pa.RecordBatch, target: pa.Schema, stream: str, position: int
) -> tuple[pa.RecordBatch, list[QuarantinedRow]]:
    """Fit a fetched batch to the stream's schema; rows holding a value with no exact Arrow form
    (infinity, a multi-dimensional array, numeric NaN) are taken out and returned as rejects."""
    bad: dict[int, tuple[str, str, str]] = {}
    for j in range(len(target), batch.num_columns):
        col = batch.column(j)
        if col.null_count == len(col):
            continue
        f = target.field(int(batch.schema.field(j).name[len(_REJECT) :]))
        for i, v in enumerate(col.to_pylist()):
            if v is not None and i not in bad:
                bad[i] = (
                    f.name,
                    v,
                    "PostgreSQL value has no exact Arrow form (infinity or a multi-dimensional array)",
                )
    cols = []
    for i, f in enumerate(target):
        col = batch.column(i)
        if isinstance(col.type, pa.ExtensionType) or hasattr(col.type, "storage_type"):
            col = col.storage if hasattr(col, "storage") else col
        if col.type != f.type:
            try:
                col = cast_exact(col, f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                values = col.to_pylist()
                fixed = []
                for r, v in enumerate(values):
                    try:
                        fixed.append(
                            None if v is None else cast_exact(pa.array([v], col.type), f.type)[0].as_py()
                        )
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                        bad.setdefault(r, (f.name, str(v), f"PostgreSQL value does not fit {f.type} exactly"))
                        fixed.append(None)
                col = pa.array(fixed, f.type)
        cols.append(col)
    out = pa.RecordBatch.from_arrays(cols, schema=target)
    if not bad:
        return out, []
    rows = out.to_pylist()
    rejects = [
        QuarantinedRow(
            position + i, field, value, reason, {k: v for k, v in rows[i].items() if v is not None}
        )
        for i, (field, value, reason) in sorted(bad.items())
    ]
    return out.filter(pa.array([i not in bad for i in range(out.num_rows)])), rejects
