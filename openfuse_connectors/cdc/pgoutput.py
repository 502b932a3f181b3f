"""A decoder of PostgreSQL's built-in logical replication output plugin, ``pgoutput`` (protocol 1).

Each XLogData payload of a logical replication stream is one message: Begin, Commit, Relation,
Insert, Update, Delete, Truncate, Type, Origin or a logical decoding Message. Column values
arrive in their text rendering (we do not ask for binary), so a decoded tuple is a tuple of
``str``, ``None`` (NULL) or :data:`UNCHANGED` (a TOASTed value the UPDATE did not change).

Reference: "Logical Replication Message Formats" in the PostgreSQL documentation.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from openfuse_connectors.cdc.changes import UNCHANGED
from openfuse_connectors.cdc.errors import DecodeError

__all__ = [
    "Begin",
    "Commit",
    "Delete",
    "Insert",
    "Message",
    "Origin",
    "RelColumn",
    "Relation",
    "Truncate",
    "TypeInfo",
    "Update",
    "decode",
    "pg_time_to_unix_us",
]

#: Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
_PG_EPOCH_US = 946_684_800 * 1_000_000

_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_U32 = struct.Struct("!I")
_I64 = struct.Struct("!q")
_U64 = struct.Struct("!Q")
_BEGIN = struct.Struct("!QqI")
_COMMIT = struct.Struct("!BQQq")


def pg_time_to_unix_us(ts: int) -> int:
    return ts + _PG_EPOCH_US


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: int  # the commit record's LSN
    commit_ts_us: int  # Unix epoch microseconds
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    commit_lsn: int
    end_lsn: int  # the end of the commit record: what a client confirms
    commit_ts_us: int


@dataclass(frozen=True, slots=True)
class RelColumn:
    key: bool  # part of the replica identity
    name: str
    type_oid: int
    typmod: int


@dataclass(frozen=True, slots=True)
class Relation:
    relid: int
    schema: str
    name: str
    replica_identity: str  # d(efault), n(othing), f(ull), i(ndex)
    columns: tuple[RelColumn, ...]


@dataclass(frozen=True, slots=True)
class TypeInfo:
    oid: int
    schema: str
    name: str


@dataclass(frozen=True, slots=True)
class Insert:
    relid: int
    new: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Update:
    relid: int
    #: "K": the old key (key changed, replica identity default/index); "O": the whole old row
    #: (REPLICA IDENTITY FULL); None: no old values sent.
    old_kind: str | None
    old: tuple[Any, ...] | None
    new: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Delete:
    relid: int
    old_kind: str
    old: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Truncate:
    relids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


@dataclass(frozen=True, slots=True)
class Origin:
    lsn: int
    name: str


@dataclass(frozen=True, slots=True)
class Message:
    transactional: bool
    lsn: int
    prefix: str
    content: bytes


Decoded = Begin | Commit | Relation | TypeInfo | Insert | Update | Delete | Truncate | Origin | Message


def _cstring(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.index(b"\x00", pos)
    return buf[pos:end].decode("utf-8"), end + 1


def _tuple(buf: bytes, pos: int) -> tuple[tuple[Any, ...], int]:
    (n,) = _I16.unpack_from(buf, pos)
    pos += 2
    out: list[Any] = []
    append = out.append
    for _ in range(n):
        kind = buf[pos]
        pos += 1
        if kind == 0x74:  # 't' text
            (size,) = _I32.unpack_from(buf, pos)
            pos += 4
            append(buf[pos : pos + size].decode("utf-8"))
            pos += size
        elif kind == 0x6E:  # 'n' null
            append(None)
        elif kind == 0x75:  # 'u' unchanged TOAST
            append(UNCHANGED)
        elif kind == 0x62:  # 'b' binary: only sent when asked for; we never ask
            raise DecodeError(kind="TupleData", reason="binary column values were not requested")
        else:
            raise DecodeError(kind="TupleData", reason=f"unknown column kind {kind!r}")
    return tuple(out), pos


def decode(buf: bytes) -> Decoded:
    """Decode one pgoutput message."""
    try:
        return _decode(buf)
    except DecodeError:
        raise
    except (struct.error, IndexError, ValueError, UnicodeDecodeError) as e:
        kind = chr(buf[0]) if buf else "?"
        raise DecodeError(kind=kind, reason=f"{type(e).__name__}: {e}") from e


def _decode(buf: bytes) -> Decoded:
    kind = buf[0]
    if kind == 0x42:  # B
        final_lsn, ts, xid = _BEGIN.unpack_from(buf, 1)
        return Begin(final_lsn, pg_time_to_unix_us(ts), xid)
    if kind == 0x43:  # C
        _flags, commit_lsn, end_lsn, ts = _COMMIT.unpack_from(buf, 1)
        return Commit(commit_lsn, end_lsn, pg_time_to_unix_us(ts))
    if kind == 0x49:  # I
        (relid,) = _U32.unpack_from(buf, 1)
        if buf[5] != 0x4E:
            raise DecodeError(kind="I", reason=f"expected 'N', got {buf[5]!r}")
        new, _ = _tuple(buf, 6)
        return Insert(relid, new)
    if kind == 0x55:  # U
        (relid,) = _U32.unpack_from(buf, 1)
        pos = 5
        old_kind: str | None = None
        old = None
        if buf[pos] in (0x4B, 0x4F):  # K / O
            old_kind = chr(buf[pos])
            old, pos = _tuple(buf, pos + 1)
        if buf[pos] != 0x4E:
            raise DecodeError(kind="U", reason=f"expected 'N', got {buf[pos]!r}")
        new, _ = _tuple(buf, pos + 1)
        return Update(relid, old_kind, old, new)
    if kind == 0x44:  # D
        (relid,) = _U32.unpack_from(buf, 1)
        old_kind = chr(buf[5])
        old, _ = _tuple(buf, 6)
        return Delete(relid, old_kind, old)
    if kind == 0x52:  # R
        (relid,) = _U32.unpack_from(buf, 1)
        schema, pos = _cstring(buf, 5)
        name, pos = _cstring(buf, pos)
        ident = chr(buf[pos])
        (ncols,) = _I16.unpack_from(buf, pos + 1)
        pos += 3
        cols = []
        for _ in range(ncols):
            flags = buf[pos]
            cname, pos = _cstring(buf, pos + 1)
            (oid,) = _U32.unpack_from(buf, pos)
            (typmod,) = _I32.unpack_from(buf, pos + 4)
            pos += 8
            cols.append(RelColumn(bool(flags & 1), cname, oid, typmod))
        return Relation(relid, schema, name, ident, tuple(cols))
    if kind == 0x54:  # T
        (n,) = _I32.unpack_from(buf, 1)
        options = buf[5]
        relids = struct.unpack_from(f"!{n}I", buf, 6)
        return Truncate(tuple(relids), bool(options & 1), bool(options & 2))
    if kind == 0x59:  # Y
        (oid,) = _U32.unpack_from(buf, 1)
        schema, pos = _cstring(buf, 5)
        name, _ = _cstring(buf, pos)
        return TypeInfo(oid, schema, name)
    if kind == 0x4F:  # O
        (lsn,) = _U64.unpack_from(buf, 1)
        name, _ = _cstring(buf, 9)
        return Origin(lsn, name)
    if kind == 0x4D:  # M
        flags = buf[1]
        (lsn,) = _U64.unpack_from(buf, 2)
        prefix, pos = _cstring(buf, 10)
        (size,) = _I32.unpack_from(buf, pos)
        return Message(bool(flags & 1), lsn, prefix, bytes(buf[pos + 4 : pos + 4 + size]))
    raise DecodeError(
        kind=chr(kind),
        reason="unknown message type (streamed or two-phase transactions are not requested)",
    )
