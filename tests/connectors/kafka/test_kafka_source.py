"""Kafka source -> DuckDB through the real engine, against librdkafka's mock cluster (see conftest)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from openfuse_connectors.builtin.kafka import CONNECTOR, KafkaExtractor
from openfuse_connectors.engine import StreamResult, run_pipeline
from openfuse_connectors.errors import ConfigError, SourceUnreachableError
from openfuse_connectors.extractor import Extractor
from openfuse_connectors.registry import Registry
from openfuse_connectors.spec import PipelineSpec, StreamSpec, parse_pipeline
from openfuse_connectors.state import StreamState
from openfuse_connectors.testing import SourceConformance, sample_rows

Produce = Callable[..., None]  # the `produce` fixture


def spec(servers: str, topic: str, db: Path, *, batch_size: int = 4, **source: Any) -> PipelineSpec:
    return parse_pipeline(
        {
            "name": "kafka_test",
            "source": {
                "connector": "kafka",
                "config": {"bootstrap_servers": servers, "group_id": f"g_{topic}", **source},
            },
            "destination": {"connector": "duckdb", "config": {"path": str(db)}},
            "batch_size": batch_size,
            "streams": [{"name": topic, "mode": "incremental_append", "cursor_field": "_kafka_offset"}],
        }
    )


def run(reg: Registry, s: PipelineSpec, *, hook: bool = False, seen: list[int] | None = None) -> StreamResult:
    """run_pipeline; with ``hook``, then what the proposed engine hook does after the commit.
    ``seen`` collects the engine's progress reports (rows read so far)."""
    [result] = run_pipeline(
        s, registry=reg, progress=lambda _, n: seen.append(n) if seen is not None else None
    )
    if hook and result.ok:
        loader = reg.loader(s.destination.connector, s.destination.config)
        state = loader.read_state(s.name, s.streams[0].state_key)
        loader.close()
        assert state is not None
        ex = reg.extractor(s.source.connector, s.source.config)
        ex.after_commit(s.streams[0], state)  # type: ignore[attr-defined]
        ex.close()
    return result


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def group_offsets(servers: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets, asked by a consumer of the test's own."""
    import logging

    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": servers, "group.id": group, "logger": logging.getLogger("tests")})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        got = c.committed([TopicPartition(topic, p) for p in parts], timeout=10)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def high_watermarks(servers: str, topic: str) -> dict[int, int]:
    import logging

    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": servers, "group.id": "tests", "logger": logging.getLogger("tests")})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    finally:
        c.close()


def orders(ids: range) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"order {i} é", "amount": i * 1.5, "tags": ["a", i]} for i in ids]


def test_incremental_runs_load_every_message_exactly_once(
    registry: Registry, kafka_cluster: str, produce: Produce, topic: str, tmp_path: Path
) -> None:
    db = tmp_path / "w.duckdb"
    produce(topic, orders(range(10)))
    s = spec(kafka_cluster, topic, db)
    first = run(registry, s)
    assert first.ok, first.error
    assert first.rows_written == 10
    produce(topic, orders(range(10, 17)), keys=[f"k{i}" for i in range(10, 17)])
    second = run(registry, s)
    assert second.ok, second.error
    assert (second.rows_read, second.rows_written) == (7, 7)
    assert run(registry, s).rows_read == 0
    rows = query(db, f'SELECT id, _kafka_partition, _kafka_offset, _kafka_key, tags FROM "{topic}"')
    assert sorted(r[0] for r in rows) == list(range(17))
    assert len({(r[1], r[2]) for r in rows}) == 17
    assert {r[0]: r[3] for r in rows}[12] == "k12"
    assert {r[0]: r[4] for r in rows}[3] == '["a", 3]'
    [(raw,)] = query(db, "SELECT state FROM _openfuse_state")
    state = json.loads(raw)
    offsets = {int(p): o for p, o in state["extra"]["source"]["offsets"].items()}
    assert offsets == high_watermarks(kafka_cluster, topic)


def test_discover_infers_the_schema_from_a_sample(
    registry: Registry, kafka_cluster: str, produce: Produce, topic: str
) -> None:
    produce(topic, [{"id": 1, "price": 2, "ok": True, "meta": {"a": 1}}, {"id": 2, "price": 2.5, "ok": None}])
    ex = registry.extractor("kafka", {"bootstrap_servers": kafka_cluster})
    infos = {i.name: i for i in ex.discover()}
    schema = infos[topic].schema
    assert [(f.name, str(f.type)) for f in schema] == [
        ("id", "int64"),
        ("price", "double"),
        ("ok", "bool"),
        ("meta", "string"),
        ("_kafka_partition", "int32"),
        ("_kafka_offset", "int64"),
        ("_kafka_timestamp", "timestamp[ms, tz=UTC]"),
        ("_kafka_key", "string"),
    ]
    assert not any(name.startswith("_") for name in infos)


def test_group_offsets_are_committed_only_after_the_destination_commit(
    registry: Registry, kafka_cluster: str, produce: Produce, topic: str, tmp_path: Path
) -> None:
    db = tmp_path / "w.duckdb"
    group = f"g_{topic}"
    produce(topic, orders(range(8)))
    s = spec(kafka_cluster, topic, db)
    # Before any run nothing is committed to the group.
    assert set(group_offsets(kafka_cluster, group, topic).values()) == {-1001}
    assert run(registry, s).ok
    # The engine's after_commit hook acknowledges exactly what the destination committed.
    first = high_watermarks(kafka_cluster, topic)
    assert _state_offsets(db) == first
    assert group_offsets(kafka_cluster, group, topic) == first
    produce(topic, orders(range(8, 12)))
    assert run(registry, s).rows_written == 4
    assert (
        _state_offsets(db)
        == group_offsets(kafka_cluster, group, topic)
        == high_watermarks(kafka_cluster, topic)
    )


def _state_offsets(db: Path) -> dict[int, int]:
    [(raw,)] = query(db, "SELECT state FROM _openfuse_state")
    return {int(p): o for p, o in json.loads(raw)["extra"]["source"]["offsets"].items()}


def test_a_failed_destination_commits_nothing_and_the_rerun_loads_each_message_once(
    registry: Registry, kafka_cluster: str, produce: Produce, topic: str, tmp_path: Path
) -> None:
    db = tmp_path / "w.duckdb"
    produce(topic, orders(range(12)), keys=["k"] * 12)  # one partition, so row 7 comes 8th
    # A real destination failure: the table exists with a CHECK that row 7 breaks, mid-run.
    con = duckdb.connect(str(db))
    con.execute(
        f'CREATE TABLE "{topic}" (id BIGINT CHECK (id <> 7), name VARCHAR, amount DOUBLE, tags VARCHAR, '
        "_kafka_partition INTEGER, _kafka_offset BIGINT, _kafka_timestamp TIMESTAMPTZ, _kafka_key VARCHAR)"
    )
    con.close()
    s = spec(kafka_cluster, topic, db, batch_size=2)
    seen: list[int] = []
    failed = run(registry, s, hook=True, seen=seen)
    # (DuckDB reports "transaction is aborted" here: its loader's cleanup masks the CHECK error.)
    assert not failed.ok and failed.error
    assert seen == [2, 4, 6]  # three batches were read and written before the failure
    assert query(db, f'SELECT count(*) FROM "{topic}"') == [(0,)]
    assert set(group_offsets(kafka_cluster, f"g_{topic}", topic).values()) == {-1001}
    con = duckdb.connect(str(db))
    con.execute(f'DROP TABLE "{topic}"')
    con.close()
    ok = run(registry, s, hook=True)
    assert ok.ok, ok.error
    rows = query(db, f'SELECT id FROM "{topic}" ORDER BY id')
    assert [r[0] for r in rows] == list(range(12))
    assert group_offsets(kafka_cluster, f"g_{topic}", topic) == high_watermarks(kafka_cluster, topic)


def test_undecodable_messages_are_quarantined_with_their_position(
    registry: Registry, kafka_cluster: str, produce: Produce, topic: str, tmp_path: Path
) -> None:
    db = tmp_path / "w.duckdb"
    bad = [b"{not json", b"[1, 2]", b"\x00\x00\x00\x00\x07" + b'{"id": 99}']
    produce(topic, [*orders(range(3)), *bad], keys=["a", "b", "c", "x", "y", "z"])
    r = run(registry, spec(kafka_cluster, topic, db))
    assert r.ok, r.error
    assert (r.rows_written, r.rows_quarantined) == (3, 3)
    got = query(db, "SELECT value, reason, record FROM _openfuse_quarantine ORDER BY value")
    by_key = {json.loads(rec)["_kafka_key"]: (value, reason, json.loads(rec)) for value, reason, rec in got}
    value, reason, rec = by_key["x"]
    assert value == "{not json" and reason.startswith("invalid JSON")
    assert f"topic={topic} partition={rec['_kafka_partition']} offset={rec['_kafka_offset']}" in reason
    assert rec["_kafka_topic"] == topic and rec["_kafka_value"] == "{not json"
    assert "not an object" in by_key["y"][1]
    assert "Schema Registry" in by_key["z"][1]
    # Quarantined messages count as consumed: the next run neither re-reads nor re-reports them.
    again = run(registry, spec(kafka_cluster, topic, db))
    assert (again.rows_read, again.rows_quarantined) == (0, 0)


def test_fields_the_sample_missed_are_quarantined_not_dropped(
    registry: Registry, kafka_cluster: str, produce: Produce, topic: str, tmp_path: Path
) -> None:
    db = tmp_path / "w.duckdb"
    # One key, so one partition; the sample (1 message per partition) sees only the newest.
    produce(topic, [{"id": 1, "coupon": "X1"}, {"id": 2}, None, {"id": 3}], keys=["k"] * 4)
    r = run(registry, spec(kafka_cluster, topic, db, sample_size=1))
    assert r.ok, r.error
    assert (r.rows_written, r.rows_quarantined) == (3, 1)
    # A tombstone (null value) is a row whose payload columns are NULL.
    assert query(db, f'SELECT id FROM "{topic}" ORDER BY _kafka_offset') == [(2,), (None,), (3,)]
    [(field, value, reason)] = query(db, "SELECT field, value, reason FROM _openfuse_quarantine")
    assert (field, value) == ("coupon", "X1") and "not in the destination" in reason
    # The next run's sample has the field: the table evolves and new messages keep it.
    produce(topic, [{"id": 4, "coupon": "X4"}], keys=["k"])
    assert run(registry, spec(kafka_cluster, topic, db, sample_size=1)).rows_written == 1
    assert query(db, f'SELECT coupon FROM "{topic}" WHERE id = 4') == [("X4",)]


def _envelope(i: int, *, amount: str | None = None) -> dict[str, Any]:
    decimal = {
        "type": "bytes",
        "optional": True,
        "name": "org.apache.kafka.connect.data.Decimal",
        "version": 1,
        "parameters": {"scale": "2", "connect.decimal.precision": "12"},
        "field": "amount",
    }
    schema = {
        "type": "struct",
        "name": "orders",
        "optional": False,
        "fields": [
            {"type": "int64", "optional": False, "field": "id"},
            {"type": "int32", "optional": True, "field": "qty"},
            {"type": "string", "optional": True, "field": "name"},
            {"type": "boolean", "optional": True, "field": "paid"},
            {"type": "float", "optional": True, "field": "ratio"},
            {"type": "double", "optional": True, "field": "score"},
            {"type": "bytes", "optional": True, "field": "blob"},
            decimal,
            {"type": "int32", "optional": True, "name": "org.apache.kafka.connect.data.Date", "field": "day"},
            {
                "type": "int64",
                "optional": True,
                "name": "org.apache.kafka.connect.data.Timestamp",
                "field": "at",
            },
            {
                "type": "struct",
                "optional": True,
                "field": "address",
                "fields": [{"type": "string", "optional": True, "field": "city"}],
            },
        ],
    }
    unscaled = i * 125  # i * 1.25
    payload = {
        "id": i,
        "qty": i * 2,
        "name": f"n{i}",
        "paid": i % 2 == 0,
        "ratio": 0.5,
        "score": i / 4,
        "blob": base64.b64encode(bytes([i, 255])).decode(),
        "amount": amount or base64.b64encode(unscaled.to_bytes(2, "big", signed=True)).decode(),
        "day": 19723 + i,  # 2024-01-01 + i days
        "at": 1_704_067_200_000 + i * 1000,
        "address": {"city": f"c{i}"},
    }
    return {"schema": schema, "payload": payload}


def test_connect_envelopes_are_typed_by_their_schema(
    registry: Registry, kafka_cluster: str, produce: Produce, topic: str, tmp_path: Path
) -> None:
    db = tmp_path / "w.duckdb"
    broken = _envelope(9)
    broken["payload"]["id"] = None  # not optional
    produce(topic, [_envelope(1), _envelope(2), broken, {"id": 3}])
    r = run(registry, spec(kafka_cluster, topic, db, format="json_schema"))
    assert r.ok, r.error
    assert (r.rows_written, r.rows_quarantined) == (2, 2)
    types = dict(
        query(
            db, f"SELECT column_name, data_type FROM information_schema.columns WHERE table_name = '{topic}'"
        )
    )
    assert types["amount"] == "DECIMAL(12,2)"
    assert (types["qty"], types["ratio"], types["blob"], types["day"]) == ("INTEGER", "FLOAT", "BLOB", "DATE")
    assert types["at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["address"].startswith("STRUCT")
    row = query(
        db, f'SELECT id, qty, name, paid, score, blob, amount, day, "at", address FROM "{topic}" WHERE id = 2'
    )[0]
    assert row[:5] == (2, 4, "n2", True, 0.5)
    assert row[5] == bytes([2, 255])
    assert row[6] == Decimal("2.50")
    assert row[7] == dt.date(2024, 1, 3)
    assert row[8] == dt.datetime(2024, 1, 1, 0, 0, 2, tzinfo=dt.UTC)
    assert row[9] == {"city": "c2"}
    reasons = sorted(r[0] for r in query(db, "SELECT reason FROM _openfuse_quarantine"))
    assert any("null for a required" in x for x in reasons)
    assert any("not a Kafka Connect envelope" in x for x in reasons)


def test_inline_json_schema_validates_and_types_plain_json(
    registry: Registry, kafka_cluster: str, produce: Produce, topic: str, tmp_path: Path
) -> None:
    db = tmp_path / "w.duckdb"
    schema = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "status": {"type": ["string", "null"], "enum": ["new", "paid", None]},
        },
        "required": ["id", "at"],
    }
    produce(
        topic,
        [
            {"id": 1, "at": "2024-05-01T10:00:00Z", "status": "new"},
            {"id": 2, "at": "2024-05-01T12:00:00+02:00", "status": None},
            {"id": 3, "status": "new"},
            {"id": 4, "at": "2024-05-01T10:00:00Z", "status": "lost"},
        ],
    )
    r = run(registry, spec(kafka_cluster, topic, db, format="json_schema", schemas={topic: schema}))
    assert r.ok, r.error
    assert (r.rows_written, r.rows_quarantined) == (2, 2)
    rows = query(db, f'SELECT id, "at" FROM "{topic}" ORDER BY id')
    assert rows == [
        (1, dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)),
        (2, dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)),
    ]
    reasons = " | ".join(r[0] for r in query(db, "SELECT reason FROM _openfuse_quarantine"))
    assert "required property 'at' is missing" in reasons and "'lost' is not one of" in reasons


def test_unreachable_brokers_fail_fast_naming_the_servers(registry: Registry) -> None:
    cfg = {"bootstrap_servers": "127.0.0.1:1,127.0.0.1:2", "connect_timeout_s": 1}
    for client in (registry.extractor("kafka", cfg), registry.loader("kafka", cfg)):
        t0 = time.monotonic()
        with pytest.raises(SourceUnreachableError) as ei:
            client.check()
        assert time.monotonic() - t0 < 5
        assert "127.0.0.1:1,127.0.0.1:2" in str(ei.value)


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({"extra": {"enable.auto.commit": True}}, "auto commit"),
        ({"extra": {"isolation.level": "read_uncommitted"}}, "aborted transactions"),
        ({"extra": {"acks": 1}}, "acks=all"),
        ({"extra": {"sasl.password": "hunter2"}}, "set sasl_password"),
        ({"security_protocol": "SASL_SSL"}, "needs sasl_mechanism"),
        ({"sasl_password": "hunter2"}, "sasl_password needs security_protocol"),
        ({"bootstrap_servers": "no-port"}, "host:port"),
        ({"format": "json_schema", "schemas": {"t": {"oneOf": []}}}, "unsupported JSON Schema keyword"),
    ],
)
def test_config_refuses_settings_that_break_the_guarantees(
    registry: Registry, config: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ConfigError) as ei:
        registry.extractor("kafka", {"bootstrap_servers": "b:9092", **config})
    assert needle in str(ei.value)
    assert ei.value.field and ei.value.field.startswith("source.config.")
    assert "hunter2" not in str(ei.value) and "hunter2" not in repr(ei.value.value)


def test_secrets_stay_secret(registry: Registry) -> None:
    cfg = {
        "bootstrap_servers": "b:9092",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "PLAIN",
        "sasl_username": "u",
        "sasl_password": "hunter2",
    }
    ex = registry.extractor("kafka", cfg)
    assert "hunter2" not in repr(ex.config)
    assert ex.config.client_settings()["sasl.password"] == "hunter2"  # type: ignore[attr-defined]
    schema = ex.config_model.json_schema()
    assert schema["properties"]["sasl_password"]["writeOnly"] is True
    with pytest.raises(ConfigError) as ei:  # a bad value next to the password does not show it
        registry.extractor("kafka", {**cfg, "sasl_mechanism": "GSSAPI"})
    assert "hunter2" not in str(ei.value) and "hunter2" not in repr(ei.value.value)


def test_a_stored_offset_wins_over_the_group_offset(
    registry: Registry, kafka_cluster: str, produce: Produce, topic: str
) -> None:
    produce(topic, orders(range(6)))
    ex = registry.extractor("kafka", {"bootstrap_servers": kafka_cluster, "group_id": f"g_{topic}"})
    assert isinstance(ex, KafkaExtractor)
    stream = StreamSpec(name=topic, mode="incremental_append", cursor_field="_kafka_offset")
    ends = high_watermarks(kafka_cluster, topic)
    # The group says "all read"; the destination's state says "nothing read": the state wins.
    ex.after_commit(stream, StreamState(extra={"source": {"topic": topic, "offsets": ends}}))
    state = StreamState(extra={"source": {"topic": topic, "offsets": {str(p): 0 for p in ends}}})
    ids = sorted(i for b in ex.read(stream, state) for i in b.column("id").to_pylist())
    assert ids == list(range(6))
    assert ex.checkpoint() == {"topic": topic, "offsets": {str(p): o for p, o in sorted(ends.items())}}


def test_importing_the_connector_does_not_load_the_driver() -> None:
    code = (
        "import sys, openfuse_connectors.builtin.kafka as k;"
        "from openfuse_connectors.registry import Registry;"
        "r = Registry(); r.add(k.CONNECTOR); r.extractor('kafka', {'bootstrap_servers': 'b:1'});"
        "r.loader('kafka', {'bootstrap_servers': 'b:1'});"
        "print('confluent_kafka' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False"


_SAMPLE_JSON_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": ["string", "null"]},
        "amount": {"type": "string"},
        "updated_at": {"type": "string", "format": "date-time"},
        "active": {"type": "boolean"},
    },
    "required": ["id", "updated_at"],
}


class TestKafkaSourceConformance(SourceConformance):
    connector = "kafka"

    @pytest.fixture
    def source(self, kafka_cluster: str, produce: Produce, topic: str) -> tuple[dict[str, Any], str]:
        rows = [
            {**r, "amount": str(r["amount"]), "updated_at": r["updated_at"].isoformat()}
            for r in sample_rows(range(1, 11))
        ]
        produce(topic, rows)
        config = {
            "bootstrap_servers": kafka_cluster,
            "format": "json_schema",
            "schemas": {topic: _SAMPLE_JSON_SCHEMA},
        }
        return config, topic

    def extractor(self, config: dict[str, Any]) -> Extractor:
        reg = Registry.from_entry_points()  # until pyproject.toml declares the kafka entry point
        reg.add(CONNECTOR, origin="tests")
        return reg.extractor(self.connector, config)

    def test_missing_config_is_a_config_error(self) -> None:
        with pytest.raises(ConfigError) as ei:
            self.extractor({"no_such_key": 1})
        assert ei.value.field is not None and ei.value.field.startswith("source.config.")
