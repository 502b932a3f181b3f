"""Helpers of the CDC tests: a private PostgreSQL cluster with wal_level=logical, Kafka reading.

The cluster is started from the installed PostgreSQL binaries (initdb, pg_ctl) in a temporary
directory on a free loopback port, so the shared server on 5432 is never touched. initdb refuses
to run as root: then the cluster runs as the `postgres` system user (the directory is chowned).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL binary {name} not found (install postgresql)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    root: str
    port: int
    as_user: list[str]

    @property
    def data(self) -> str:
        return os.path.join(self.root, "data")

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_user, _bin("pg_ctl"), "-D", self.data, *args],
            check=True,
            capture_output=True,
            timeout=120,
        )


#: Settings of the private cluster: logical decoding; durability off (the tests and benchmarks
#: measure CDC, not the shared disk; commits still write WAL and wake the walsender).
CLUSTER_CONF = {
    "wal_level": "logical",
    "max_wal_senders": "20",
    "max_replication_slots": "20",
    "max_connections": "60",
    "fsync": "off",
    "full_page_writes": "off",
    "shared_buffers": "64MB",
}


def start_cluster(extra: dict[str, str] | None = None, *, prefix: str = "openfuse-cdc-pg-") -> Cluster:
    """initdb + start a cluster with :data:`CLUSTER_CONF` (and ``extra`` settings on top)."""
    root = tempfile.mkdtemp(prefix=prefix)
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    cluster = Cluster(root, _free_port(), as_user)
    subprocess.run(
        [*as_user, _bin("initdb"), "-D", cluster.data, "-A", "trust", "-U", "postgres", "-E", "UTF8",
         "--locale=C", "--no-sync"],
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    conf = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(cluster.port),
        "unix_socket_directories": f"'{root}'",
        **CLUSTER_CONF,
        **(extra or {}),
    }
    with open(os.path.join(cluster.data, "postgresql.conf"), "a", encoding="utf-8") as f:
        f.write("".join(f"{k} = {v}\n" for k, v in conf.items()))
    cluster.ctl("-l", os.path.join(root, "server.log"), "-w", "-t", "60", "start")
    return cluster


def stop_cluster(cluster: Cluster) -> None:
    try:
        cluster.ctl("-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(cluster.root, ignore_errors=True)


def pg(url: str, *sql: str) -> None:
    """Run each statement in its own transaction (a string may hold several statements)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for s in sql:
            conn.execute(s)


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


@dataclass
class Msg:
    topic: str
    partition: int
    offset: int
    key: Any
    value: Any

    @property
    def op(self) -> str | None:
        return None if self.value is None else self.value["op"]

    @property
    def ident(self) -> tuple[Any, ...]:
        """What identifies one change: key and LSNs (a duplicate has the same)."""
        src = self.value["source"] if self.value else {}
        return (json.dumps(self.key, sort_keys=True), src.get("lsn"), src.get("commit_lsn"), self.op)


def consume(servers: str, topic: str) -> list[Msg]:
    """Every message of ``topic`` in partition+offset order, read by a consumer of the test's own."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": f"tests-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "logger": logging.getLogger("tests.cdc.consumer"),
        }
    )
    try:
        md = c.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error is not None:
            return []
        parts = sorted(md.partitions)
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        out = []
        left = sum(ends.values())
        deadline = time.monotonic() + 30
        while left and time.monotonic() < deadline:
            for m in c.consume(min(left, 1000), 1):
                assert m.error() is None, m.error()
                key = json.loads(m.key()) if m.key() is not None else None
                value = json.loads(m.value()) if m.value() is not None else None
                out.append(Msg(topic, m.partition(), m.offset(), key, value))
                left -= 1
        assert left == 0, f"{left} messages of {topic} not read"
        return sorted(out, key=lambda m: (m.partition, m.offset))
    finally:
        c.close()


def ordered(msgs: list[Msg]) -> list[Msg]:
    """Messages of all partitions in source order (commit LSN, LSN); a tombstone follows its delete."""
    keyed = []
    last: dict[int, tuple[Any, ...]] = {}
    for m in sorted(msgs, key=lambda m: (m.partition, m.offset)):
        if m.value is not None:
            k = (m.value["source"]["commit_lsn"], m.value["source"]["lsn"], m.op != "d", 0, m.offset)
        else:
            k = (*last.get(m.partition, (0, 0, False))[:3], 1, m.offset)
        last[m.partition] = k
        keyed.append((k, m))
    return [m for _, m in sorted(keyed, key=lambda x: x[0])]


def replay(msgs: list[Msg]) -> dict[str, dict[str, Any]]:
    """The table a consumer rebuilds from a topic: events in (commit_lsn, lsn) order, by key."""
    events = sorted(
        (m for m in msgs if m.value is not None),
        key=lambda m: (m.value["source"]["commit_lsn"], m.value["source"]["lsn"], m.op != "d"),
    )
    table: dict[str, dict[str, Any]] = {}
    for m in events:
        if m.op == "t":
            table.clear()
            continue
        k = json.dumps(m.key, sort_keys=True)
        if m.op == "d":
            table.pop(k, None)
        else:
            table[k] = m.value["after"]
    return table
