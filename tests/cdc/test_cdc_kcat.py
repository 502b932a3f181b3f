"""PostgreSQL -> Kafka, read back by an outside client: ``kcat`` (librdkafka's command-line tool).

The Kafka sink publishes to librdkafka's mock cluster (no broker runs here); ``kcat -C ... -J``,
a separate process speaking the Kafka protocol over TCP, reads the topics back. What a consumer
that is not OpenFuse (nor Python) sees must be Debezium's envelope: the op, before/after, the
primary key as the message key, ``source.lsn`` inside the transaction's WAL range, a tombstone
right after each delete, and the position the sink committed in the state topic.

kcat is a system package (`deployments/local/install-system-deps.sh` installs it); without it
the test fails instead of skipping, so CI cannot pass without running it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

import pytest
from cdc_support import consume, pg, rows

from openfuse_connectors.builtin.kafka.config import KafkaConfig
from openfuse_connectors.builtin.postgres.config import PostgresConfig
from openfuse_connectors.cdc import CdcSettings, KafkaChangeSink, parse_lsn, run_cdc


@dataclass
class Record:
    partition: int
    offset: int
    key: Any
    value: Any

    @property
    def op(self) -> str | None:
        return None if self.value is None else self.value["op"]


def kcat(servers: str, topic: str, *, json_keys: bool = True) -> list[Record]:
    """Every message of ``topic``, read from the beginning by a kcat process; ends at the end."""
    exe = shutil.which("kcat")
    if exe is None:
        pytest.fail(
            "kcat is not installed: run deployments/local/install-system-deps.sh (apt-get install kcat)"
        )
    # -e: exit once every partition reached its end; -J: one JSON object per message, with
    # partition, offset, key and payload (null for a tombstone).
    proc = subprocess.run(
        [exe, "-C", "-b", servers, "-t", topic, "-o", "beginning", "-e", "-J", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"kcat exited with {proc.returncode}: {proc.stderr[-2000:]}"
    out = []
    for line in proc.stdout.splitlines():
        m = json.loads(line)
        assert m["topic"] == topic
        key = m["key"] if m["key"] is None or not json_keys else json.loads(m["key"])
        value = None if m["payload"] is None else json.loads(m["payload"])
        out.append(Record(m["partition"], m["offset"], key, value))
    return sorted(out, key=lambda r: (r.partition, r.offset))


def wal_lsn(url: str) -> int:
    return parse_lsn(rows(url, "SELECT pg_current_wal_insert_lsn()::text")[0][0])


def test_kcat_reads_debezium_events_of_inserts_updates_deletes_and_tombstones(
    source_db: str, kafka_cluster: str, prefix: str
) -> None:
    pg(
        source_db,
        "CREATE TABLE orders (id int PRIMARY KEY, status text, qty int)",
        "ALTER TABLE orders REPLICA IDENTITY FULL",  # updates and deletes carry the whole old row
    )
    s = CdcSettings(
        pipeline="kcat", source=PostgresConfig(dsn=source_db), tables=("public.orders",), snapshot="never"
    )

    def sink() -> KafkaChangeSink:
        return KafkaChangeSink(
            KafkaConfig(bootstrap_servers=(kafka_cluster,)), pipeline="kcat", topic_prefix=prefix
        )

    run_cdc(s, [sink()], until_caught_up=True, handle_signals=False)  # creates the slot
    statements = [
        "INSERT INTO orders VALUES (1, 'new', 1), (2, 'new', 2)",
        "UPDATE orders SET status = 'paid', qty = 10 WHERE id = 1",
        "DELETE FROM orders WHERE id = 2",
        "UPDATE orders SET id = 3 WHERE id = 1",  # a key change: delete of 1, create of 3
    ]
    marks = [wal_lsn(source_db)]
    for sql in statements:  # one transaction each; the WAL position after each bounds its changes
        pg(source_db, sql)
        marks.append(wal_lsn(source_db))
    summary = run_cdc(s, [sink()], until_caught_up=True, handle_signals=False)
    assert summary.transactions == 4 and summary.changes == 6

    topic = f"{prefix}.public.orders"
    got = kcat(kafka_cluster, topic)
    # kcat sees exactly what a client of the same library as the sink sees.
    assert [(r.partition, r.offset, r.key, r.value) for r in got] == [
        (m.partition, m.offset, m.key, m.value) for m in consume(kafka_cluster, topic)
    ]

    # A tombstone directly follows its delete in the same partition, with the same key.
    for r in got:
        if r.value is None:
            prev = next(p for p in got if p.partition == r.partition and p.offset == r.offset - 1)
            assert prev.op == "d" and prev.key == r.key
    # Source order: by LSN; a key change's delete and create share one LSN, the delete comes first.
    events = sorted(
        (r for r in got if r.value is not None), key=lambda r: (r.value["source"]["lsn"], r.op != "d")
    )
    assert len(got) - len(events) == 2  # two deletes, two tombstones

    # Per change: op, key (= primary key), before/after, and the statement whose WAL range holds it.
    def stmt(r: Record) -> int:
        lsn = r.value["source"]["lsn"]
        return next(i for i in range(len(statements)) if marks[i] <= lsn < marks[i + 1])

    new1, new2 = {"id": 1, "status": "new", "qty": 1}, {"id": 2, "status": "new", "qty": 2}
    paid1 = {"id": 1, "status": "paid", "qty": 10}
    assert [(stmt(r), r.op, r.key, r.value["before"], r.value["after"]) for r in events] == [
        (0, "c", {"id": 1}, None, new1),
        (0, "c", {"id": 2}, None, new2),
        (1, "u", {"id": 1}, new1, paid1),
        (2, "d", {"id": 2}, new2, None),
        (3, "d", {"id": 1}, paid1, None),
        (3, "c", {"id": 3}, None, {"id": 3, "status": "paid", "qty": 10}),
    ]
    for r in events:
        src = r.value["source"]
        assert src["connector"] == "postgresql" and src["name"] == prefix and src["snapshot"] == "false"
        assert (src["schema"], src["table"], src["db"]) == ("public", "orders", source_db.rsplit("/", 1)[1])
        assert src["lsn"] < src["commit_lsn"] < marks[stmt(r) + 1]  # the commit follows its changes
        assert src["sequence"] == json.dumps([str(src["commit_lsn"]), str(src["lsn"])], separators=(",", ":"))
        assert src["ts_ms"] > 0 and r.value["ts_ms"] >= src["ts_ms"] and r.value["transaction"] is None
    # The key change is one source change: both events carry its LSN and one transaction id.
    moved_from, moved_to = events[4], events[5]
    assert moved_from.value["source"]["lsn"] == moved_to.value["source"]["lsn"]
    assert moved_from.value["source"]["txId"] == moved_to.value["source"]["txId"]

    # The committed position, in the state topic, covers the last transaction.
    state = [
        r for r in kcat(kafka_cluster, "_openfuse_state", json_keys=False) if r.key == "kcat/@cdc" and r.value
    ]
    assert state, "no state record for pipeline kcat"
    committed = parse_lsn(state[-1].value["state"]["extra"]["cdc"]["lsn"])
    assert max(r.value["source"]["commit_lsn"] for r in events) < committed <= wal_lsn(source_db)


def test_kcat_sees_no_tombstones_when_they_are_switched_off(
    source_db: str, kafka_cluster: str, prefix: str
) -> None:
    pg(source_db, "CREATE TABLE notes (id int PRIMARY KEY, body text)")
    s = CdcSettings(
        pipeline="notes", source=PostgresConfig(dsn=source_db), tables=("public.notes",), snapshot="never"
    )

    def sink() -> KafkaChangeSink:
        return KafkaChangeSink(
            KafkaConfig(bootstrap_servers=(kafka_cluster,)),
            pipeline="notes",
            topic_prefix=prefix,
            tombstones=False,
        )

    run_cdc(s, [sink()], until_caught_up=True, handle_signals=False)
    pg(source_db, "INSERT INTO notes VALUES (1, 'a'), (2, 'b')", "DELETE FROM notes")
    run_cdc(s, [sink()], until_caught_up=True, handle_signals=False)
    got = kcat(kafka_cluster, f"{prefix}.public.notes")
    assert sorted((r.op, r.key["id"]) for r in got) == [("c", 1), ("c", 2), ("d", 1), ("d", 2)]
    deleted = {r.key["id"]: r.value["before"] for r in got if r.op == "d"}
    assert deleted == {1: {"id": 1, "body": None}, 2: {"id": 2, "body": None}}  # DEFAULT identity: key only
