"""The initial snapshot: every captured table as of the slot's consistent point.

The slot is created over the replication connection with ``EXPORT_SNAPSHOT``: PostgreSQL
returns the consistent point (the LSN streaming starts from) and a snapshot that sees exactly
the transactions committed before it. A second connection imports that snapshot
(``SET TRANSACTION SNAPSHOT`` in a REPEATABLE READ transaction) and reads the tables: a
transaction committed before the consistent point is in the snapshot and is not streamed, one
committed after is streamed and is not in the snapshot - no gap, no double. The replication
connection stays idle until the read is done (its next command ends the export).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from openfuse_connectors.builtin.postgres.config import PostgresConfig
from openfuse_connectors.builtin.postgres.sql import lit, qi, qname
from openfuse_connectors.cdc.catalog import describe_tables, source_connect
from openfuse_connectors.cdc.changes import Change, TableInfo

__all__ = ["SnapshotReader"]


class SnapshotReader:
    def __init__(
        self, cfg: PostgresConfig, *, snapshot_name: str, tables: tuple[str, ...], lsn: int, chunk_rows: int
    ):
        self.cfg = cfg
        self.snapshot_name = snapshot_name
        self.names = tables
        self.lsn = lsn
        self.chunk_rows = chunk_rows
        self.conn: Any = None
        self.tables: list[TableInfo] = []
        self.xmin = 0
        self.rows = 0

    def open(self) -> list[TableInfo]:
        self.conn = source_connect(self.cfg)
        self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        self.conn.execute(f"SET TRANSACTION SNAPSHOT {lit(self.snapshot_name)}")
        # Hold the tables' schema still while they are read (ALTER TABLE waits for us).
        self.tables = describe_tables(self.conn, self.names)
        for t in self.tables:
            self.conn.execute(f"LOCK TABLE {qname(t.schema, t.name)} IN ACCESS SHARE MODE")
        self.tables = describe_tables(self.conn, self.names)
        self.xmin = int(
            self.conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint").fetchone()[0]
        )
        return self.tables

    def chunks(self) -> Iterator[list[Change]]:
        """Snapshot reads (op ``r``) in chunks; the very last one is marked ``snapshot: last``."""
        ts = int(time.time() * 1_000_000)
        buf: list[Change] = []
        for t in self.tables:
            cols = ", ".join(qi(c.name) for c in t.columns)
            with (
                self.conn.cursor() as cur,
                cur.copy(f"COPY (SELECT {cols} FROM {qname(t.schema, t.name)}) TO STDOUT") as cp,
            ):
                for row in cp.rows():
                    buf.append(Change("r", t, None, row, self.lsn, self.lsn, self.xmin, ts, "true"))
                    if len(buf) > self.chunk_rows:
                        # Hold one back so the last row of all can be marked.
                        out, buf = buf[:-1], buf[-1:]
                        self.rows += len(out)
                        yield out
        if buf:
            buf[-1].snapshot = "last"
            self.rows += len(buf)
            yield buf

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.execute("COMMIT")
            finally:
                self.conn.close()
                self.conn = None
