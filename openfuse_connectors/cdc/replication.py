"""A logical replication connection over libpq, through psycopg 3's ``psycopg.pq`` wrapper.

psycopg 3 has no replication API, but its libpq wrapper speaks the protocol we need: replication
commands are plain simple-protocol queries (``PGconn.exec_``) and the stream is COPY BOTH
(``get_copy_data`` / ``put_copy_data``). Doing it here, rather than through psycopg2's
``LogicalReplicationConnection``, keeps one PostgreSQL driver in the project and gives us exact
control of what is confirmed to the server: psycopg2 moves the confirmed position forward on
its own on keepalives, which an exactly-once sink cannot allow (it must confirm only what the
destination has committed).
"""

from __future__ import annotations

import select
import struct
import time
from typing import Any

from openfuse_connectors.builtin.postgres.config import PostgresConfig
from openfuse_connectors.builtin.postgres.sql import qi
from openfuse_connectors.cdc.errors import ReplicationError, SlotInUseError
from openfuse_connectors.cdc.lsn import format_lsn, parse_lsn
from openfuse_connectors.cdc.values import SESSION_OPTIONS
from openfuse_connectors.errors import SourceUnreachableError

__all__ = ["ReplicationConnection", "SystemInfo"]

_PG_EPOCH_US = 946_684_800 * 1_000_000
_STATUS = struct.Struct("!cQQQqB")
_XLOG_HEADER = struct.Struct("!QQq")
_KEEPALIVE = struct.Struct("!QqB")


class SystemInfo:
    def __init__(self, system_id: str, timeline: int, xlogpos: int, dbname: str):
        self.system_id = system_id
        self.timeline = timeline
        self.xlogpos = xlogpos
        self.dbname = dbname


def sanitize(text: str, cfg: PostgresConfig) -> str:
    from psycopg.conninfo import conninfo_to_dict

    secret = cfg.dsn.get_secret_value()
    text = text.replace(secret, "***") if secret else text
    try:
        pw = conninfo_to_dict(secret).get("password")
    except Exception:
        pw = None
    if isinstance(pw, str) and pw:
        text = text.replace(pw, "***")
    return text.strip()


class ReplicationConnection:
    """One ``replication=database`` connection: create a slot, then stream from it."""

    def __init__(self, cfg: PostgresConfig, *, slot: str, application_name: str = "openfuse-cdc"):
        from psycopg import pq
        from psycopg.conninfo import make_conninfo

        self.cfg = cfg
        self.slot = slot
        conninfo = make_conninfo(
            cfg.dsn.get_secret_value(),
            replication="database",
            options=SESSION_OPTIONS,
            connect_timeout=cfg.connect_timeout,
            application_name=application_name,
        )
        self.pg: Any = pq.PGconn.connect(conninfo.encode())
        if self.pg.status != pq.ConnStatus.OK:
            reason = sanitize(self.pg.get_error_message(), cfg) or "connection failed"
            self.pg.finish()
            raise SourceUnreachableError(connector="postgres", reason=reason, **cfg.where())
        self.streaming = False

    # -- commands

    def _command(self, sql: str) -> Any:
        from psycopg import pq

        res = self.pg.exec_(sql.encode())
        if res.status in (
            pq.ExecStatus.FATAL_ERROR,
            pq.ExecStatus.BAD_RESPONSE,
            pq.ExecStatus.NONFATAL_ERROR,
        ):
            code = (res.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode()
            msg = sanitize(res.get_error_message() or self.pg.get_error_message(), self.cfg)
            if code == "55006":  # object_in_use: another walsender holds the slot
                pid = None
                for word in msg.replace(".", " ").split():
                    if word.isdigit():
                        pid = int(word)
                raise SlotInUseError(slot=self.slot, pid=pid)
            raise ReplicationError(slot=self.slot, reason=f"{sql.split()[0]} failed: {msg} (SQLSTATE {code})")
        return res

    def identify_system(self) -> SystemInfo:
        res = self._command("IDENTIFY_SYSTEM")
        get = res.get_value
        return SystemInfo(
            get(0, 0).decode(), int(get(0, 1)), parse_lsn(get(0, 2).decode()), (get(0, 3) or b"").decode()
        )

    def create_slot(self, *, export_snapshot: bool) -> tuple[int, str | None]:
        """Create the pipeline's logical slot; return (consistent point, exported snapshot name).

        The exported snapshot shows exactly the transactions committed before the consistent
        point, and stays usable (``SET TRANSACTION SNAPSHOT``) until this connection runs its
        next command - so read the snapshot, then :meth:`start`.
        """
        mode = "EXPORT_SNAPSHOT" if export_snapshot else "NOEXPORT_SNAPSHOT"
        res = self._command(f"CREATE_REPLICATION_SLOT {qi(self.slot)} LOGICAL pgoutput {mode}")
        lsn = parse_lsn(res.get_value(0, 1).decode())
        snap = res.get_value(0, 2)
        return lsn, snap.decode() if snap else None

    def start(self, *, start_lsn: int, publication: str, messages: bool = True) -> None:
        """START_REPLICATION from ``start_lsn``: transactions committed before it are not sent."""
        pubs = qi(publication).replace("'", "''")
        opts = f"proto_version '1', publication_names '{pubs}'"
        if messages:
            opts += ", messages 'true'"
        self._command(f"START_REPLICATION SLOT {qi(self.slot)} LOGICAL {format_lsn(start_lsn)} ({opts})")
        self.pg.nonblocking = 1
        self.streaming = True

    # -- the stream

    def read(self, timeout: float, max_frames: int = 5_000) -> list[bytes]:
        """The frames available now, waiting up to ``timeout`` seconds for the first one."""
        import psycopg

        out: list[bytes] = []
        waited = False
        try:
            while len(out) < max_frames:
                n, data = self.pg.get_copy_data(1)
                if n > 0:
                    out.append(bytes(data))
                    continue
                if n == 0:
                    if out or waited:
                        break
                    ready, _, _ = select.select([self.pg.socket], [], [], timeout)
                    waited = True
                    if not ready:
                        break
                    self.pg.consume_input()
                    continue
                res = self.pg.get_result()
                reason = res.get_error_message() if res is not None else b""
                raise ReplicationError(
                    slot=self.slot,
                    reason="the server ended the stream"
                    + (f": {sanitize(reason.decode(errors='replace'), self.cfg)}" if reason else ""),
                )
        except psycopg.Error as e:
            raise ReplicationError(slot=self.slot, reason=sanitize(str(e), self.cfg)) from None
        return out

    def send_status(self, *, received: int, flushed: int, reply: bool = False) -> None:
        """Tell the server what we received and what is durably processed (``confirmed_flush_lsn``)."""
        import psycopg

        now = int(time.time() * 1_000_000) - _PG_EPOCH_US
        msg = _STATUS.pack(b"r", received, flushed, flushed, now, 1 if reply else 0)
        try:
            while not self.pg.put_copy_data(msg):
                select.select([], [self.pg.socket], [], 1.0)
            while self.pg.flush():
                select.select([self.pg.socket], [self.pg.socket], [], 1.0)
                self.pg.consume_input()
        except psycopg.Error as e:
            raise ReplicationError(slot=self.slot, reason=sanitize(str(e), self.cfg)) from None

    def close(self) -> None:
        if self.pg is None:
            return
        try:
            self.pg.finish()
        finally:
            self.pg = None


def parse_xlogdata(frame: bytes) -> tuple[int, int, bytes]:
    """A ``w`` frame -> (data start LSN, server WAL end, pgoutput message)."""
    start, wal_end, _ = _XLOG_HEADER.unpack_from(frame, 1)
    return start, wal_end, frame[25:]


def parse_keepalive(frame: bytes) -> tuple[int, bool]:
    """A ``k`` frame -> (server WAL end, reply requested)."""
    wal_end, _, reply = _KEEPALIVE.unpack_from(frame, 1)
    return wal_end, bool(reply)
