"""Kafka destination: MemorySource -> kafka through the real engine, read back with a separate
consumer, against librdkafka's mock cluster (see conftest)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from openfuse_connectors.builtin.kafka.errors import KafkaDeliveryError
from openfuse_connectors.engine import StreamResult, run_pipeline
from openfuse_connectors.loader import Disposition, QuarantinedRow, WriteJob
from openfuse_connectors.registry import Registry
from openfuse_connectors.spec import PipelineSpec, SchemaDrift, StreamSpec, parse_pipeline
from openfuse_connectors.state import StreamState
from openfuse_connectors.testing import SAMPLE_SCHEMA, MemorySource, sample_rows


def sink_spec(dataset: str, dest: dict[str, Any], **stream: Any) -> PipelineSpec:
    return parse_pipeline(
        {
            "name": "to_kafka",
            "source": {"connector": "memory", "config": {"dataset": dataset}},
            "destination": {"connector": "kafka", "config": dest},
            "streams": [{"name": "items", **stream}],
        }
    )


def run(reg: Registry, s: PipelineSpec) -> StreamResult:
    [result] = run_pipeline(s, registry=reg)
    return result


def consume_all(servers: str, topic: str) -> list[tuple[str | None, dict[str, Any]]]:
    """(key, value) of every message of ``topic``, read by a consumer of the test's own."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": "tests-reader",
            "enable.auto.commit": False,
            "logger": logging.getLogger("tests"),
        }
    )
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        out = []
        left = sum(ends.values())
        while left:
            for m in c.consume(left, 5):
                assert m.error() is None, m.error()
                key = m.key().decode() if m.key() is not None else None
                out.append((key, json.loads(m.value())))
                left -= 1
        return out
    finally:
        c.close()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}_"


def test_rows_become_keyed_messages_and_the_state_is_readable(
    registry: Registry, kafka_cluster: str, prefix: str
) -> None:
    dataset = uuid.uuid4().hex
    dest = {"bootstrap_servers": kafka_cluster, "topic_prefix": prefix}
    s = sink_spec(dataset, dest, mode="incremental_append", cursor_field="updated_at", primary_key=["id"])
    MemorySource.put(dataset, "items", sample_rows(range(1, 7)))
    r = run(registry, s)
    assert r.ok, r.error
    assert r.rows_written == 6
    MemorySource.put(dataset, "items", sample_rows(range(1, 10)))
    r2 = run(registry, s)
    assert r2.ok, r2.error
    assert r2.rows_written == 3  # only the rows past the committed cursor

    msgs = consume_all(kafka_cluster, prefix + "items")
    assert sorted(json.loads(k)["id"] for k, _ in msgs if k) == list(range(1, 10))
    for key, value in msgs:
        assert key == json.dumps({"id": value["id"]}, separators=(",", ":"))
    by_id = {v["id"]: v for _, v in msgs}
    want = sample_rows([4])[0]
    assert by_id[4] == {
        "id": 4,
        "name": want["name"],
        "amount": "5.00",
        "updated_at": want["updated_at"].isoformat(),
        "active": True,
    }

    loader = registry.loader("kafka", dest)
    state = loader.read_state("to_kafka", "items")
    assert state is not None and state.cursor is not None
    assert state.cursor.as_py() == sample_rows([9])[0]["updated_at"]
    assert loader.table_schema("items") == SAMPLE_SCHEMA
    assert loader.count_rows("items") == 9
    table = loader.read_table("items")
    assert sorted(table.column("id").to_pylist()) == list(range(1, 10))
    assert table.schema.field("amount").type == pa.decimal128(12, 2)
    loader.close()
    assert registry.loader("kafka", dest).read_state("to_kafka", "other") is None


def test_envelopes_round_trip_through_the_kafka_source(
    registry: Registry, kafka_cluster: str, prefix: str, tmp_path: Path
) -> None:
    dataset = uuid.uuid4().hex
    dest = {"bootstrap_servers": kafka_cluster, "topic_prefix": prefix, "format": "json_schema"}
    rows = sample_rows(range(1, 6))
    MemorySource.put(dataset, "items", rows)
    r = run(registry, sink_spec(dataset, dest, mode="full_refresh_append", primary_key=["id"]))
    assert r.ok, r.error
    [(_, first)] = consume_all(kafka_cluster, prefix + "items")[:1]
    fields = {f["field"]: f for f in first["schema"]["fields"]}
    assert fields["amount"]["name"] == "org.apache.kafka.connect.data.Decimal"
    assert fields["amount"]["parameters"] == {"scale": "2", "connect.decimal.precision": "12"}

    db = tmp_path / "w.duckdb"
    back = parse_pipeline(
        {
            "name": "from_kafka",
            "source": {"connector": "kafka", "config": {**dest, "topic_prefix": ""}},
            "destination": {"connector": "duckdb", "config": {"path": str(db)}},
            "streams": [
                {"name": prefix + "items", "destination_table": "items", "columns": list(SAMPLE_SCHEMA.names)}
            ],
        }
    )
    r = run(registry, back)
    assert r.ok, r.error
    con = duckdb.connect(str(db), read_only=True)
    got = con.execute("SELECT id, name, amount, updated_at, active FROM items ORDER BY id").fetchall()
    con.close()
    assert got == [(w["id"], w["name"], w["amount"], w["updated_at"], w["active"]) for w in rows]
    assert isinstance(got[0][2], Decimal) and got[0][3].tzinfo is not None


def test_overwrite_is_refused(registry: Registry, kafka_cluster: str, prefix: str) -> None:
    dataset = uuid.uuid4().hex
    MemorySource.put(dataset, "items", sample_rows(range(1, 3)))
    r = run(registry, sink_spec(dataset, {"bootstrap_servers": kafka_cluster, "topic_prefix": prefix}))
    assert not r.ok and "append-only log" in (r.error or "")


def test_a_failed_delivery_fails_the_commit_and_keeps_the_state(registry: Registry) -> None:
    # A cluster of its own, shut down mid-load: the brokers never acknowledge the messages.
    from confluent_kafka import Producer

    owner = Producer({"test.mock.num.brokers": 1, "logger": logging.getLogger("tests.kafka.mock")})
    servers = ",".join(f"{b.host}:{b.port}" for b in owner.list_topics(timeout=10).brokers.values())
    loader = registry.loader("kafka", {"bootstrap_servers": servers, "flush_timeout_s": 1.5})
    stream = StreamSpec(name="items", mode="full_refresh_append")
    job = WriteJob("p", stream, "items", Disposition.APPEND, SchemaDrift.EVOLVE, "run-1", ("id",))
    tx = loader.open(job)
    tx.prepare(SAMPLE_SCHEMA)
    owner.close()
    del owner
    tx.write(pa.RecordBatch.from_pylist(sample_rows(range(1, 4)), schema=SAMPLE_SCHEMA))
    with pytest.raises(KafkaDeliveryError) as ei:
        tx.commit(StreamState())
    assert ei.value.failed == 3 and "timed out" in ei.value.reason
    tx.rollback()


def test_timestamps_keep_their_precision(registry: Registry, kafka_cluster: str, prefix: str) -> None:
    dataset = uuid.uuid4().hex
    rows = sample_rows(range(1, 3))
    rows[0]["updated_at"] = dt.datetime(2024, 1, 1, 0, 0, 0, 123456, tzinfo=dt.UTC)
    MemorySource.put(dataset, "items", rows)
    dest = {"bootstrap_servers": kafka_cluster, "topic_prefix": prefix}
    assert run(registry, sink_spec(dataset, dest, mode="full_refresh_append")).ok
    values = {v["id"]: v for _, v in consume_all(kafka_cluster, prefix + "items")}
    assert values[1]["updated_at"] == "2024-01-01T00:00:00.123456+00:00"


def test_quarantined_rows_go_to_the_quarantine_topic_before_the_state(
    registry: Registry, kafka_cluster: str, prefix: str
) -> None:
    qtopic = prefix + "quarantine"
    dest = {"bootstrap_servers": kafka_cluster, "topic_prefix": prefix, "quarantine_topic": qtopic}
    loader = registry.loader("kafka", dest)
    stream = StreamSpec(name="items", mode="full_refresh_append")
    job = WriteJob("p", stream, "items", Disposition.APPEND, SchemaDrift.EVOLVE, "run-q", ("id",))
    with loader.open(job) as tx:
        tx.prepare(SAMPLE_SCHEMA)
        tx.write(pa.RecordBatch.from_pylist(sample_rows([1]), schema=SAMPLE_SCHEMA))
        tx.quarantine([QuarantinedRow(3, "amount", "abc", "value does not fit", {"id": 3, "amount": "abc"})])
        tx.commit(StreamState(extra={"n": 1}))
    [(key, doc)] = consume_all(kafka_cluster, qtopic)
    assert key == "p/items"
    assert (
        doc["run_id"] == "run-q" and doc["field"] == "amount" and doc["record"] == {"id": 3, "amount": "abc"}
    )
    assert loader.read_state("p", "items") == StreamState(extra={"n": 1})
    loader.close()
