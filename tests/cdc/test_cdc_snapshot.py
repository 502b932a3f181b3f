"""The initial snapshot meets the stream exactly: writes committed while the snapshot is being
read are streamed and not in the snapshot, rows committed before are in the snapshot and not
streamed - no gap, no double - on Kafka and in PostgreSQL."""

from __future__ import annotations

from collections import Counter

import psycopg
from cdc_support import consume, pg, replay, rows

from openfuse_connectors.builtin.kafka.config import KafkaConfig
from openfuse_connectors.builtin.postgres.config import PostgresConfig
from openfuse_connectors.cdc import CdcSettings, KafkaChangeSink, PostgresChangeSink, run_cdc

ROWS = 4000


def test_snapshot_with_concurrent_writes_has_no_gap_and_no_double(
    source_db: str, pg_db: str, kafka_cluster: str, prefix: str
) -> None:
    pg(
        source_db,
        "CREATE TABLE t (id int PRIMARY KEY, v int, note text)",
        f"INSERT INTO t SELECT g, 0, 'before' FROM generate_series(1, {ROWS}) g",
    )
    writer = psycopg.connect(source_db, autocommit=True)
    chunks = 0

    def write_during_snapshot(point: str) -> None:
        # Runs after each snapshot chunk was handed to the sinks: the snapshot is being read.
        nonlocal chunks
        if point != "snapshot_chunk":
            return
        chunks += 1
        k = chunks
        writer.execute(f"INSERT INTO t VALUES ({10_000 + k}, {k}, 'during')")
        writer.execute(f"UPDATE t SET v = {k}, note = 'updated' WHERE id IN ({k * 10}, {ROWS - k * 10})")
        writer.execute(f"DELETE FROM t WHERE id = {k * 10 + 1}")

    settings = CdcSettings(
        pipeline="snap", source=PostgresConfig(dsn=source_db), tables=("public.t",), snapshot_chunk_rows=300
    )
    sinks = [
        KafkaChangeSink(
            KafkaConfig(bootstrap_servers=(kafka_cluster,)), pipeline="snap", topic_prefix=prefix
        ),
        PostgresChangeSink(PostgresConfig(dsn=pg_db, schema="mirror"), pipeline="snap"),
    ]
    summary = run_cdc(settings, sinks, until_caught_up=True, handle_signals=False, hook=write_during_snapshot)
    writer.close()
    assert chunks >= 10
    assert summary.snapshot_rows == ROWS  # the snapshot saw none of the concurrent writes
    assert summary.transactions == 3 * chunks  # the stream saw every one of them

    want = rows(source_db, "SELECT id, v, note FROM t ORDER BY id")
    assert rows(pg_db, "SELECT id, v, note FROM mirror.t ORDER BY id") == want

    msgs = [m for m in consume(kafka_cluster, f"{prefix}.public.t") if m.value is not None]
    ops = Counter((m.key["id"], m.op) for m in msgs)
    for i in range(1, ROWS + 1):
        assert ops[(i, "r")] == 1, i  # every row that existed: read once by the snapshot...
        assert ops[(i, "c")] == 0, i  # ...and never streamed as an insert
    for k in range(1, chunks + 1):
        assert (ops[(10_000 + k, "c")], ops[(10_000 + k, "r")]) == (1, 0)  # streamed only
        assert ops[(k * 10, "u")] == 1 and ops[(k * 10 + 1, "d")] == 1
    snapshot_values = {m.key["id"]: m.value["after"]["v"] for m in msgs if m.op == "r"}
    assert set(snapshot_values.values()) == {0}  # the snapshot is the state before every write
    assert sorted((r["id"], r["v"], r["note"]) for r in replay(msgs).values()) == want
