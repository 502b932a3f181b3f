"""The change model shared by the decoder, the snapshot, and the sinks.

Values are PostgreSQL's text renderings (``str``), ``None`` for NULL, or :data:`UNCHANGED` for a
TOASTed value an UPDATE did not touch (PostgreSQL does not send it). The text form is exact and
type-independent: the SQL applier casts it back to the column type, the Kafka encoder converts
it to JSON the way Debezium does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

__all__ = ["UNCHANGED", "Change", "Column", "TableInfo"]


class _Unchanged:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNCHANGED"


#: An unchanged TOASTed value of an UPDATE (pgoutput's ``u`` column kind).
UNCHANGED: Any = _Unchanged()

#: Type OIDs below this are built into PostgreSQL (``FirstNormalObjectId``).
FIRST_USER_OID = 16384


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type_oid: int
    typmod: int
    #: ``format_type()`` of the column for built-in types; ``text`` for user types (enums,
    #: domains, extension types), which a destination may not have.
    pg_type: str

    @property
    def builtin(self) -> bool:
        return self.type_oid < FIRST_USER_OID


@dataclass(frozen=True)
class TableInfo:
    """One captured table as the stream (or the snapshot) sees it."""

    relid: int
    schema: str
    name: str
    columns: tuple[Column, ...]
    #: Columns identifying a row: the primary key, else the replica identity index; empty when
    #: the table is keyless (REPLICA IDENTITY FULL without a key: the whole row identifies it).
    key: tuple[str, ...]
    replica_identity: str = "d"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def stream(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def keyless(self) -> bool:
        return not self.key

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @cached_property
    def key_index(self) -> tuple[int, ...]:
        """Positions of the key columns; every column for a keyless table."""
        if not self.key:
            return tuple(range(len(self.columns)))
        pos = {c.name: i for i, c in enumerate(self.columns)}
        return tuple(pos[k] for k in self.key)

    def shape(self) -> tuple[Any, ...]:
        return (self.schema, self.name, self.columns, self.key)


@dataclass(slots=True)
class Change:
    """One row change (or a truncate) of one committed source transaction."""

    op: str  # c, u, d, r (snapshot read), t (truncate)
    table: TableInfo
    before: tuple[Any, ...] | None
    after: tuple[Any, ...] | None
    #: LSN of the change record (snapshot reads: the slot's consistent point).
    lsn: int
    #: LSN of the transaction's commit record; orders transactions (commit order).
    commit_lsn: int
    xid: int
    #: Commit time, microseconds since the Unix epoch.
    commit_ts_us: int
    #: Debezium's ``source.snapshot``: "false" when streamed, "true"/"last" in the snapshot.
    snapshot: str = "false"
    #: For the create half of a key change: the old key's values (where unchanged TOASTed
    #: values of the row are to be found). Not part of the event.
    moved_from: tuple[Any, ...] | None = None

    def key_values(self) -> tuple[Any, ...]:
        row = self.before if self.op == "d" else self.after
        assert row is not None, self
        return tuple(row[i] for i in self.table.key_index)
