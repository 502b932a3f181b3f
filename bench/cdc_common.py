"""Helpers of the CDC benchmarks (`cdc_throughput.py`, `cdc_latency.py`).

- a private PostgreSQL cluster with ``wal_level = logical``: the CDC tests' own
  (``tests/cdc/cdc_support.py``: initdb + pg_ctl from the installed binaries, a temporary
  directory, a free loopback port, as the ``postgres`` system user when run as root) with a
  larger WAL and buffers;
- librdkafka's mock Kafka cluster (no broker runs here): a producer created with
  ``test.mock.num.brokers`` serves the Kafka protocol over TCP on loopback to separate clients,
  topics are created on first produce; it lives as long as that producer;
- the source table and the generators of single-row and large transactions;
- running the CDC runner in a child process (``cdc_child.py``) and reading its summary.

Needs the project's virtualenv (psycopg, confluent_kafka, openfuse_connectors): run the scripts
with ``.venv/bin/python``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "tests" / "cdc"))
import cdc_support as _cdc_support  # noqa: E402 - the tests' cluster helpers (bench may import tests)

pg_bin = _cdc_support._bin
CHILD = BENCH_DIR / "cdc_child.py"
TABLE = "public.cdc_orders"
SRC_DB = "cdc_src"
DST_DB = "cdc_dst"
DST_SCHEMA = "mirror"

#: on top of the tests' cluster settings (logical decoding, fsync and full_page_writes off - the
#: benchmark measures the CDC pipeline, not this shared machine's disk; commits still write WAL and
#: wake the walsender, synchronous_commit stays on): room for the 1M-transaction backlog.
BENCH_CONF = {"shared_buffers": "256MB", "max_wal_size": "8GB", "checkpoint_timeout": "30min"}
CLUSTER_CONF = {**_cdc_support.CLUSTER_CONF, **BENCH_CONF}
Cluster = _cdc_support.Cluster


def settings_note() -> str:
    """The cluster settings that matter for the figures, for the results section."""
    return ", ".join(f"{k} = {v}" for k, v in CLUSTER_CONF.items() if not k.startswith("max_"))


def start_cluster() -> Cluster:
    """The CDC tests' private cluster (tests/cdc/cdc_support.py), with :data:`BENCH_CONF`."""
    return _cdc_support.start_cluster(BENCH_CONF, prefix="openfuse-bench-cdc-pg-")


stop_cluster = _cdc_support.stop_cluster


def pg(url: str, *sql: str) -> None:
    """Run each statement in autocommit (a string may hold several statements)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for s in sql:
            conn.execute(s)


def rows(url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def value(url: str, sql: str, params: Any = None) -> Any:
    return rows(url, sql, params)[0][0]


# --------------------------------------------------------------------------------------------
# The source table and the change generators
# --------------------------------------------------------------------------------------------


def create_source(cluster: Cluster, table_rows: int) -> str:
    """Databases cdc_src and cdc_dst; ``public.cdc_orders`` with ``table_rows`` rows in cdc_src."""
    pg(cluster.url(), f"CREATE DATABASE {SRC_DB}", f"CREATE DATABASE {DST_DB}")
    src = cluster.url(SRC_DB)
    pg(
        src,
        f"""CREATE TABLE {TABLE} (
            id bigint PRIMARY KEY, name text, qty int, amount numeric(12,2), updated_at timestamptz
        ) WITH (fillfactor = 80)""",  # room for HOT updates
        f"""INSERT INTO {TABLE} SELECT g, 'customer ' || (g % 10007), (g % 97) + 1,
            round(((g * 7919) % 100000) / 100.0, 2),
            timestamptz '2024-01-01 00:00:00+00' + g * interval '17 seconds'
            FROM generate_series(1, {table_rows}) g""",
        f"VACUUM (ANALYZE) {TABLE}",
        # n single-row UPDATE transactions (id cycles through the table): one COMMIT each.
        f"""CREATE PROCEDURE gen_single(n int, table_rows int) LANGUAGE plpgsql AS $$
        BEGIN
            FOR i IN 0 .. n - 1 LOOP
                UPDATE {TABLE} SET qty = qty + 1, updated_at = clock_timestamp() WHERE id = i % table_rows + 1;
                COMMIT;
            END LOOP;
        END $$""",
        # n transactions of `size` rows each: a range of ids per transaction.
        f"""CREATE PROCEDURE gen_large(n int, size int, table_rows int) LANGUAGE plpgsql AS $$
        DECLARE lo bigint;
        BEGIN
            FOR i IN 0 .. n - 1 LOOP
                lo := (i::bigint * size) % table_rows;
                UPDATE {TABLE} SET qty = qty + 1, updated_at = clock_timestamp()
                    WHERE id > lo AND id <= lo + size;
                COMMIT;
            END LOOP;
        END $$""",
    )
    return src


def table_digest(url: str, table: str) -> tuple[Any, ...]:
    """Row count and an order-independent digest of every row (to compare source and destination)."""
    return rows(
        url,
        f"SELECT count(*), sum(qty), max(updated_at), "
        f"md5(string_agg(id || ':' || qty || ':' || amount || ':' || updated_at::text, ',' ORDER BY id)) "
        f"FROM {table}",
    )[0]


def slot_backlog(url: str, slot: str) -> int:
    """Bytes of WAL written since the slot's confirmed position."""
    return int(
        value(
            url,
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) FROM pg_replication_slots "
            "WHERE slot_name = %s",
            (slot,),
        )
    )


def drop_slot(url: str, slot: str) -> None:
    pg(url, f"SELECT pg_drop_replication_slot('{slot}') FROM pg_replication_slots WHERE slot_name = '{slot}'")
    pg(url, f"DROP PUBLICATION IF EXISTS {slot}")


# --------------------------------------------------------------------------------------------
# Kafka: librdkafka's mock cluster
# --------------------------------------------------------------------------------------------


class MockKafka:
    """A three-broker mock cluster, reachable over TCP at ``servers`` while this object lives."""

    def __init__(self, brokers: int = 3):
        from confluent_kafka import Producer

        self._owner = Producer(
            {"test.mock.num.brokers": brokers, "logger": logging.getLogger("bench.cdc.mock")}
        )
        found = self._owner.list_topics(timeout=10).brokers.values()
        self.servers = ",".join(f"{b.host}:{b.port}" for b in sorted(found, key=lambda b: b.id))

    def close(self) -> None:
        del self._owner  # the cluster (and every message it holds) goes with its producer

    def message_count(self, topic: str) -> int:
        """Messages in ``topic`` (sum of the partitions' high watermarks; the cluster never deletes)."""
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer(
            {
                "bootstrap.servers": self.servers,
                "group.id": "bench-count",
                "logger": logging.getLogger("bench.cdc.consumer"),
            }
        )
        try:
            md = c.list_topics(topic, timeout=10).topics.get(topic)
            if md is None or md.error is not None:
                return 0
            return sum(
                c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in md.partitions
            )
        finally:
            c.close()


# --------------------------------------------------------------------------------------------
# The runner in a child process
# --------------------------------------------------------------------------------------------


def child_argv(
    *,
    sink: str,
    pipeline: str,
    source: str,
    dest: str,
    snapshot: str = "never",
    until_caught_up: bool = True,
    batch_delay_ms: int | None = None,
) -> list[str]:
    """argv of ``cdc_child.py``: the CDC runner with one sink (``kafka``: dest = bootstrap servers;
    ``postgres``: dest = destination URL, schema ``mirror``)."""
    argv = [sys.executable, str(CHILD), "--sink", sink, "--pipeline", pipeline, "--source", source,
            "--dest", dest, "--snapshot", snapshot]  # fmt: skip
    if until_caught_up:
        argv.append("--until-caught-up")
    if batch_delay_ms is not None:
        argv += ["--batch-delay-ms", str(batch_delay_ms)]
    return argv


def child_summary(log: Path) -> dict[str, Any] | None:
    """The JSON summary ``cdc_child.py`` prints last (``SUMMARY {...}``), or None."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith("SUMMARY "):
            return json.loads(line[len("SUMMARY ") :])
    return None


class ServerCpu(threading.Thread):
    """CPU seconds of the cluster's walsenders and of the CDC sink's backends (``application_name``
    openfuse-cdc), sampled from /proc every 0.2 s while a runner streams (the last < 0.2 s of a
    process that exits is missed)."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.walsender: dict[int, int] = {}  # pid -> CPU ticks last seen
        self.sink: dict[int, int] = {}
        self.stop = threading.Event()

    @staticmethod
    def _ticks(pid: int) -> int | None:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return None
        return int(fields[11]) + int(fields[12])  # utime + stime

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                for pid, kind in conn.execute(
                    "SELECT pid, backend_type FROM pg_stat_activity "
                    "WHERE backend_type = 'walsender' OR application_name = 'openfuse-cdc'"
                ).fetchall():
                    ticks = self._ticks(pid)
                    if ticks is not None:
                        (self.walsender if kind == "walsender" else self.sink)[pid] = ticks
                self.stop.wait(0.2)

    def seconds(self) -> tuple[float, float]:
        """(walsender CPU s, sink backend CPU s) of the processes seen."""
        hz = os.sysconf("SC_CLK_TCK")
        return sum(self.walsender.values()) / hz, sum(self.sink.values()) / hz


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))
    return s[k]


def openfuse_version() -> str:
    try:
        from importlib.metadata import version

        return f"openfuse {version('openfuse')}"
    except Exception:
        return "openfuse (version unknown)"


def kafka_versions() -> str:
    import confluent_kafka

    v = confluent_kafka.version()  # a string in confluent-kafka 2.x, (string, int) before
    return (
        f"confluent-kafka {v if isinstance(v, str) else v[0]}, librdkafka {confluent_kafka.libversion()[0]}"
    )
