"""Applies change events to a PostgreSQL destination, exactly once.

Each micro-batch is one destination transaction: the changes (per table: the batch collapsed to
the last change of each key, upserts through ``MERGE``, deletes through ``DELETE`` - or an
``UPDATE`` of ``_openfuse_deleted_at`` with soft deletes -, truncates in their place) and the new
source position in ``_openfuse_state`` (stream ``@cdc``) commit together. A crash before the
commit leaves the destination and the position as they were; the slot is confirmed only after
the commit, so the changes are sent again and applied once. A transaction that was committed
but not yet confirmed to the slot is recognised by its position and skipped by the runner.

Values travel as PostgreSQL text renderings and are cast to the column types in SQL, so what
lands is exactly what the source holds. Destination tables are created with the source's types
and primary key (user-defined types become ``text``); a column that appears in the source
(``ALTER TABLE ... ADD COLUMN``) is added, with the value the source gives existing rows; a
column dropped in the source is kept (new rows get NULL) - nothing is dropped downstream.

Keyless tables (REPLICA IDENTITY FULL, no key) are applied change by change: an insert inserts
the row, a delete removes one row equal to the old row (they may repeat).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from openfuse_connectors.builtin.postgres.config import PostgresConfig
from openfuse_connectors.builtin.postgres.loader import PostgresLoader
from openfuse_connectors.builtin.postgres.sql import lit, qi, qname
from openfuse_connectors.cdc.changes import UNCHANGED, Change, TableInfo
from openfuse_connectors.cdc.replication import sanitize
from openfuse_connectors.cdc.sink import STATE_STREAM, CdcState, ChangeSink
from openfuse_connectors.cdc.values import SESSION_OPTIONS
from openfuse_connectors.errors import ConfigError, FatalError, RetriableError, SourceUnreachableError
from openfuse_connectors.loader import STATE_TABLE
from openfuse_connectors.spec import default_table

__all__ = ["DELETED_AT", "PostgresChangeSink"]

log = logging.getLogger(__name__)

#: The soft-delete column: NULL while the row exists in the source, the commit time of its delete after.
DELETED_AT = "_openfuse_deleted_at"
_TS = "timestamptz 'epoch' + {} * interval '1 microsecond'"


@dataclass
class _Entry:
    """The last change of one key within a chunk."""

    op: str  # "u" (upsert) or "d"
    row: list[Any] | None
    ts: int
    #: The key whose destination row holds the values still UNCHANGED in ``row``: the key
    #: itself, or the old key of a key change.
    base: tuple[Any, ...]
    #: For a delete: what this chunk had for the key before it (a key change may need it).
    was: _Entry | None


@dataclass
class _Dest:
    table: str
    columns: dict[str, str]  # name -> destination type, in order (without DELETED_AT)
    key: tuple[str, ...]
    shapes: set[Any] = field(default_factory=set)
    stage: str | None = None
    stage_cols: tuple[str, ...] = ()
    stage_used: bool = False


class PostgresChangeSink(ChangeSink):
    """Merge change events into PostgreSQL tables, with the position in the same transaction."""

    name = "postgres"

    def __init__(
        self,
        config: PostgresConfig,
        *,
        pipeline: str,
        deletes: Literal["hard", "soft"] = "hard",
        tables: dict[str, str] | None = None,
    ):
        if deletes not in ("hard", "soft"):
            raise ConfigError("deletes must be 'hard' or 'soft'", field="cdc.deletes", value=deletes)
        self.config = config
        self.pipeline = pipeline
        self.deletes = deletes
        self.table_names = dict(tables or {})
        self.schema = config.schema_name
        self.conn: Any = None
        self._loader = PostgresLoader(config)
        self._dest: dict[str, _Dest] = {}
        self._in_tx = False
        self._snapshotting = False
        self._stage_n = 0

    # -- connection and transaction

    def _connect(self) -> None:
        import psycopg

        try:
            self.conn = psycopg.connect(
                self.config.dsn.get_secret_value(),
                connect_timeout=self.config.connect_timeout,
                autocommit=False,
                options=SESSION_OPTIONS,
                application_name="openfuse-cdc",
            )
        except psycopg.OperationalError as e:
            raise SourceUnreachableError(
                connector="postgres",
                reason=sanitize(str(e).splitlines()[0], self.config),
                **self.config.where(),
            ) from None
        self._dest.clear()

    def _tx(self) -> None:
        if self.conn is None or self.conn.closed:
            self._connect()
        if not self._in_tx:
            self._loader.bootstrap()
            self._exec("SELECT pg_advisory_xact_lock(hashtext(%s))", ("openfuse-cdc:" + self.pipeline,))
            self._in_tx = True

    def _exec(self, sql: str, params: Any = None) -> Any:
        import psycopg

        try:
            return self.conn.execute(sql, params)
        except psycopg.OperationalError as e:
            raise RetriableError(f"cdc postgres sink: {sanitize(str(e), self.config)}") from e
        except psycopg.Error as e:
            raise FatalError(f"cdc postgres sink: {type(e).__name__}: {e} (statement: {sql[:200]})") from e

    # -- tables

    def dest_table(self, info: TableInfo) -> str:
        return self.table_names.get(info.stream) or default_table(info.stream)

    def _existing(self, table: str) -> dict[str, str] | None:
        rows = self._exec(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            (qname(self.schema, table),),
        ).fetchall()
        return {r[0]: r[1] for r in rows} if rows else None

    def _ensure(self, info: TableInfo) -> _Dest:
        d = self._dest.get(info.stream)
        if d is not None and info.shape() in d.shapes:
            return d
        table = self.dest_table(info)
        t = qname(self.schema, table)
        existing = self._existing(table)
        if existing is None:
            cols = [f"{qi(c.name)} {c.pg_type}" for c in info.columns]
            if self.deletes == "soft":
                cols.append(f"{qi(DELETED_AT)} timestamptz")
            if info.key:
                cols.append(f"PRIMARY KEY ({', '.join(qi(k) for k in info.key)})")
            self._exec(f"CREATE TABLE {t} ({', '.join(cols)})")
        else:
            missing = info.extra.get("missing_values", {})
            for c in info.columns:
                have = existing.get(c.name)
                if have is None:
                    default = missing.get(c.name)
                    if default is not None:
                        # Rows that existed when the source added the column hold this value there.
                        self._exec(
                            f"ALTER TABLE {t} ADD COLUMN {qi(c.name)} {c.pg_type} DEFAULT {lit(default)}::{c.pg_type}"
                        )
                        self._exec(f"ALTER TABLE {t} ALTER COLUMN {qi(c.name)} DROP DEFAULT")
                    else:
                        self._exec(f"ALTER TABLE {t} ADD COLUMN {qi(c.name)} {c.pg_type}")
                    log.info("cdc: added column %s %s to %s", c.name, c.pg_type, t)
                elif have != c.pg_type:
                    self._exec(
                        f"ALTER TABLE {t} ALTER COLUMN {qi(c.name)} TYPE {c.pg_type} USING {qi(c.name)}::{c.pg_type}"
                    )
                    log.info("cdc: changed column %s of %s from %s to %s", c.name, t, have, c.pg_type)
            if self.deletes == "soft" and DELETED_AT not in existing:
                self._exec(f"ALTER TABLE {t} ADD COLUMN {qi(DELETED_AT)} timestamptz")
        now = self._existing(table) or {}
        now.pop(DELETED_AT, None)
        if d is None or d.table != table:
            d = _Dest(table, now, info.key)
            self._dest[info.stream] = d
        else:
            d.columns = now
            d.key = info.key
        d.shapes.add(info.shape())
        return d

    def _stage(self, d: _Dest) -> str:
        cols = tuple(d.columns)
        if d.stage is None or d.stage_cols != cols:
            self._stage_n += 1
            d.stage = f"_openfuse_cdc_stage_{self._stage_n}"
            d.stage_cols = cols
            defs = ", ".join(f"{qi(c)} text" for c in cols)
            self._exec(
                f"CREATE TEMP TABLE {qi(d.stage)} (_op text, _ts bigint, _unch text[], _from text[], {defs}) "
                "ON COMMIT DELETE ROWS"
            )
        elif d.stage_used:
            self._exec(f"TRUNCATE {qi(d.stage)}")
        d.stage_used = True
        return d.stage

    # -- the sink contract

    def read_state(self) -> CdcState | None:
        return CdcState.from_stream_state(self._loader.read_state(self.pipeline, STATE_STREAM))

    def begin_snapshot(self, tables: list[TableInfo]) -> None:
        self._tx()
        names = [self.dest_table(t) for t in tables]
        if len(set(names)) != len(names):
            raise ConfigError(
                f"cdc: two captured tables map to one destination table ({names}); name them with `tables`",
                field="cdc.tables",
            )
        for t in tables:
            d = self._ensure(t)
            self._exec(f"TRUNCATE {qname(self.schema, d.table)}")
        self._snapshotting = True

    def write(self, changes: list[Change]) -> None:
        if not changes:
            return
        self._tx()
        groups: dict[str, list[Change]] = {}
        for ch in changes:
            groups.setdefault(ch.table.stream, []).append(ch)
        for chs in groups.values():
            last_t = None
            for i, ch in enumerate(chs):
                if ch.op == "t":
                    last_t = i
            if last_t is not None:
                self._truncate(self._ensure(chs[last_t].table), chs[last_t])
                chs = chs[last_t + 1 :]
            if not chs:
                continue
            d: _Dest | None = None
            seen: set[int] = set()
            for ch in chs:
                if id(ch.table) not in seen:
                    seen.add(id(ch.table))
                    d = self._ensure(ch.table)
            assert d is not None
            if self._snapshotting and all(ch.op == "r" for ch in chs):
                self._copy_rows(d, chs)
            elif not d.key:
                self._apply_keyless(d, chs)
            else:
                self._apply_keyed(d, chs)

    def commit(self, state: CdcState) -> None:
        self._tx()
        self._exec(
            f"INSERT INTO {qname(self.schema, STATE_TABLE)} (pipeline, stream, state, run_id, updated_at) "
            "VALUES (%s, %s, %s::jsonb, NULL, now()) ON CONFLICT (pipeline, stream) DO UPDATE SET "
            "state = EXCLUDED.state, updated_at = EXCLUDED.updated_at",
            (self.pipeline, STATE_STREAM, state.to_stream_state().to_json()),
        )
        import psycopg

        try:
            self.conn.commit()
        except psycopg.Error as e:
            raise RetriableError(f"cdc postgres sink: commit failed: {sanitize(str(e), self.config)}") from e
        self._in_tx = False
        self._snapshotting = False
        for d in self._dest.values():
            d.stage_used = False

    def rollback(self) -> None:
        if self.conn is not None and not self.conn.closed:
            try:
                self.conn.rollback()
            except Exception:  # a broken connection: drop it
                self.conn.close()
        self._in_tx = False
        self._snapshotting = False
        self._dest.clear()  # DDL and temp tables of the transaction are gone

    def clear_state(self) -> None:
        self._tx()
        self._exec(
            f"DELETE FROM {qname(self.schema, STATE_TABLE)} WHERE pipeline = %s AND stream = %s",
            (self.pipeline, STATE_STREAM),
        )
        self.conn.commit()
        self._in_tx = False

    def close(self) -> None:
        if self.conn is not None:
            self.rollback()
            self.conn.close()
            self.conn = None

    def describe(self) -> dict[str, Any]:
        return {"sink": self.name, "schema": self.schema, "deletes": self.deletes}

    # -- applying

    def _aligned(self, d: _Dest, ch: Change, values: tuple[Any, ...]) -> list[Any]:
        """Values in destination column order; columns the change's table does not have are UNCHANGED."""
        pos = {n: i for i, n in enumerate(d.columns)}
        row = [UNCHANGED] * len(pos)
        for name, v in zip(ch.table.names, values, strict=True):
            row[pos[name]] = v
        return row

    def _copy_rows(self, d: _Dest, chs: list[Change]) -> None:
        t = qname(self.schema, d.table)
        by_shape: dict[int, list[Change]] = {}
        for ch in chs:
            by_shape.setdefault(id(ch.table), []).append(ch)
        for group in by_shape.values():
            cols = ", ".join(qi(n) for n in group[0].table.names)
            with self.conn.cursor() as cur, cur.copy(f"COPY {t} ({cols}) FROM STDIN") as cp:
                for ch in group:
                    assert ch.after is not None
                    cp.write_row([None if v is UNCHANGED else v for v in ch.after])

    def _truncate(self, d: _Dest, ch: Change) -> None:
        t = qname(self.schema, d.table)
        if self.deletes == "soft":
            self._exec(
                f"UPDATE {t} SET {qi(DELETED_AT)} = {_TS.format(int(ch.commit_ts_us))} WHERE {qi(DELETED_AT)} IS NULL"
            )
        else:
            self._exec(f"TRUNCATE {t}")

    def _apply_keyed(self, d: _Dest, chs: list[Change]) -> None:
        """Collapse to the last change per key; MERGE the upserts, then delete the deletes.

        The two sets have no key in common, so their order does not change the result; upserts
        go first because the create half of a key change may need the old key's row (for the
        TOASTed values PostgreSQL did not send again) before its delete removes it.
        """
        names = list(d.columns)
        latest: dict[tuple[Any, ...], _Entry] = {}
        for ch in chs:
            key = ch.key_values()
            if ch.op == "d":
                latest[key] = _Entry("d", None, ch.commit_ts_us, key, latest.get(key))
                continue
            assert ch.after is not None
            row = self._aligned(d, ch, ch.after)
            base = key
            if any(v is UNCHANGED for v in row):
                prev = latest.get(key)
                if ch.moved_from is not None:
                    gone = latest.get(ch.moved_from)
                    prev = gone.was if gone is not None and gone.op == "d" else None
                    base = ch.moved_from
                if prev is not None and prev.row is not None:
                    row = [p if v is UNCHANGED else v for v, p in zip(row, prev.row, strict=True)]
                    base = prev.base
            latest[key] = _Entry("u", row, ch.commit_ts_us, base, None)
        stage = self._stage(d)
        key_pos = [names.index(k) for k in d.key]
        any_unchanged = any_moved = has_delete = has_upsert = False
        cols = ", ".join(qi(n) for n in names)
        with (
            self.conn.cursor() as cur,
            cur.copy(f"COPY {qi(stage)} (_op, _ts, _unch, _from, {cols}) FROM STDIN") as cp,
        ):
            for key, e in latest.items():
                if e.row is None:
                    vals: list[Any] = [None] * len(names)
                    for p, v in zip(key_pos, key, strict=True):
                        vals[p] = v
                    cp.write_row(["d", e.ts, None, None, *vals])
                    has_delete = True
                    continue
                unch = [names[i] for i, v in enumerate(e.row) if v is UNCHANGED]
                any_unchanged = any_unchanged or bool(unch)
                src = list(e.base) if unch and e.base != key else None
                any_moved = any_moved or src is not None
                cp.write_row(["u", e.ts, unch or None, src, *(None if v is UNCHANGED else v for v in e.row)])
                has_upsert = True
        t = qname(self.schema, d.table)
        typed = {n: f"s.{qi(n)}::{d.columns[n]}" for n in names}
        if has_upsert:
            self._merge(d, stage, names, typed, any_unchanged, any_moved)
        if has_delete:
            on = " AND ".join(f"t.{qi(k)} = {typed[k]}" for k in d.key)
            if self.deletes == "soft":
                self._exec(
                    f"UPDATE {t} AS t SET {qi(DELETED_AT)} = {_TS.format('s._ts')} FROM {qi(stage)} AS s "
                    f"WHERE s._op = 'd' AND {on} AND t.{qi(DELETED_AT)} IS NULL"
                )
            else:
                self._exec(f"DELETE FROM {t} AS t USING {qi(stage)} AS s WHERE s._op = 'd' AND {on}")

    def _merge(
        self, d: _Dest, stage: str, names: list[str], typed: dict[str, str], unchanged: bool, moved: bool
    ) -> None:
        t = qname(self.schema, d.table)
        select = ["s._unch", "s._from IS NOT NULL AS _moved"]
        for n in names:
            if moved and n not in d.key:
                # The row moved to a new key: an unchanged TOASTed value is in the old key's row.
                select.append(
                    f"CASE WHEN s._from IS NOT NULL AND {lit(n)} = ANY(s._unch) THEN o.{qi(n)} "
                    f"ELSE {typed[n]} END AS {qi(n)}"
                )
            else:
                select.append(f"{typed[n]} AS {qi(n)}")
        source = f"{qi(stage)} AS s"
        if moved:
            old_key = " AND ".join(
                f"o.{qi(k)} = (s._from[{i + 1}])::{d.columns[k]}" for i, k in enumerate(d.key)
            )
            source += f" LEFT JOIN {t} AS o ON s._from IS NOT NULL AND {old_key}"
        sets = []
        for n in names:
            if n in d.key:
                continue
            if unchanged:
                sets.append(
                    f"{qi(n)} = CASE WHEN NOT s._moved AND s._unch IS NOT NULL AND {lit(n)} = ANY(s._unch) "
                    f"THEN t.{qi(n)} ELSE s.{qi(n)} END"
                )
            else:
                sets.append(f"{qi(n)} = s.{qi(n)}")
        if self.deletes == "soft":
            sets.append(f"{qi(DELETED_AT)} = NULL")
        if not sets:
            sets.append(f"{qi(d.key[0])} = s.{qi(d.key[0])}")
        merge_on = " AND ".join(f"t.{qi(k)} = s.{qi(k)}" for k in d.key)
        cols = ", ".join(qi(n) for n in names)
        self._exec(
            f"MERGE INTO {t} AS t USING (SELECT {', '.join(select)} FROM {source} WHERE s._op = 'u') AS s "
            f"ON {merge_on} WHEN MATCHED THEN UPDATE SET {', '.join(sets)} "
            f"WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({', '.join(f's.{qi(n)}' for n in names)})"
        )

    def _apply_keyless(self, d: _Dest, chs: list[Change]) -> None:
        t = qname(self.schema, d.table)
        names = list(d.columns)
        i = 0
        while i < len(chs):
            j = i
            deleting = chs[i].op == "d"
            while j < len(chs) and (chs[j].op == "d") == deleting:
                j += 1
            run = chs[i:j]
            i = j
            if not deleting:
                with (
                    self.conn.cursor() as cur,
                    cur.copy(f"COPY {t} ({', '.join(qi(n) for n in names)}) FROM STDIN") as cp,
                ):
                    for ch in run:
                        assert ch.after is not None
                        cp.write_row([None if v is UNCHANGED else v for v in self._aligned(d, ch, ch.after)])
                continue
            for ch in run:
                assert ch.before is not None
                row = self._aligned(d, ch, ch.before)
                conds, params = [], []
                for n, v in zip(names, row, strict=True):
                    if v is UNCHANGED:
                        continue
                    conds.append(f"{qi(n)}::text IS NOT DISTINCT FROM %s::text")
                    params.append(v)
                if self.deletes == "soft":
                    conds.append(f"{qi(DELETED_AT)} IS NULL")
                    pick = f"SELECT ctid FROM {t} WHERE {' AND '.join(conds)} LIMIT 1"
                    sql = f"UPDATE {t} SET {qi(DELETED_AT)} = {_TS.format(int(ch.commit_ts_us))} WHERE ctid = ({pick})"
                else:
                    pick = f"SELECT ctid FROM {t} WHERE {' AND '.join(conds) or 'true'} LIMIT 1"
                    sql = f"DELETE FROM {t} WHERE ctid = ({pick})"
                self._exec(sql, params)
