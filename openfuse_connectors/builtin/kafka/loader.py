"""Kafka destination: one topic per table, keyed by the primary key, state in a compacted topic.

Messages
    Table ``t`` goes to topic ``topic_prefix + t``. Each row is one message: a JSON object
    (``format: json``; decimals as exact text, times as ISO 8601, bytes as base64) or a Kafka
    Connect envelope (``format: json_schema``). The key is the JSON object of the primary-key
    columns (``{"id":7}``), so a key's messages share a partition and a compacted topic keeps the
    newest; streams without a primary key send unkeyed messages. Quarantined rows go to
    ``quarantine_topic``, keyed by ``<pipeline>/<stream>``.

Modes
    ``full_refresh_append``, ``incremental_append`` and ``incremental_dedupe`` (keyed messages; the
    topic's consumers - or compaction - keep the newest per key). ``full_refresh_overwrite`` is
    refused: a topic is a log and cannot be replaced.

State, and what a commit guarantees (at-least-once)
    Kafka has no transaction this load could share with a state table, so :meth:`commit` first
    flushes the producer (idempotent, ``acks=all``) and checks that every message's delivery
    report succeeded - a failed delivery raises and the stream fails with its state unchanged -
    and only then writes the new stream state to ``state_topic`` (``_openfuse_state``, keyed by
    ``<pipeline>/<stream>``; create it with ``cleanup.policy=compact``) and waits for that too.
    A run that fails, or a crash between the data flush and the state write, leaves the state
    where it was, so the next run sends those rows again: the topic receives every row **at least
    once**, duplicates carrying the same key (consumers that upsert by key, and compaction, see
    each row once). Messages a failed run delivered before it failed stay in the topic.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from typing import Any

import pyarrow as pa

from openfuse_connectors.builtin.kafka import client
from openfuse_connectors.builtin.kafka.config import KafkaConfig, valid_topic
from openfuse_connectors.builtin.kafka.errors import KafkaDeliveryError
from openfuse_connectors.builtin.kafka.payload import Decoder, Encoder, RawMessage, build_batch
from openfuse_connectors.errors import ConfigError, FatalError
from openfuse_connectors.loader import Disposition, Loader, LoadTransaction, QuarantinedRow, WriteJob
from openfuse_connectors.state import StreamState

__all__ = ["KafkaLoader"]

log = logging.getLogger(__name__)
_CHUNK = 5_000


class KafkaLoader(Loader):
    """Kafka topics, one per table: JSON messages keyed by primary key; at-least-once."""

    name = "kafka"
    config_model = KafkaConfig
    config: KafkaConfig

    def __init__(self, config: KafkaConfig):
        super().__init__(config)
        config.check_extra("destination")
        self._producer: Any = None

    def producer(self) -> Any:
        if self._producer is None:
            self._producer = client.producer(self.config)
        return self._producer

    def discard_producer(self) -> None:
        """Drop a producer that hit a fatal error (an idempotent producer cannot continue after one)."""
        self._producer = None

    def topic(self, table: str) -> str:
        name = self.config.topic_prefix + table
        if not valid_topic(name):
            raise ConfigError(
                f"kafka: {name!r} is not a valid topic name (letters, digits, '.', '_', '-'; at most 249)",
                field="destination.config.topic_prefix",
                value=name,
            )
        return name

    def check(self) -> None:
        c = client.consumer(self.config)
        try:
            client.topics(c, self.config)
        finally:
            c.close()

    # -- state

    def _state_records(self) -> dict[str, dict[str, Any] | None]:
        """The newest value of every key of the state topic (None for a deleted key)."""
        latest: dict[str, tuple[tuple[int, int], dict[str, Any] | None]] = {}
        for m in self._read_topic(self.config.state_topic):
            key = m.key_text()
            if key is None:
                continue
            order = (m.timestamp_ms or 0, m.offset)
            if key in latest and latest[key][0] > order:
                continue
            value = None
            if m.value is not None:
                try:
                    value = json.loads(m.value)
                except json.JSONDecodeError:
                    log.warning("kafka: unreadable state record %r at offset %d; ignored", key, m.offset)
                    continue
            latest[key] = (order, value)
        return {k: v for k, (_, v) in latest.items()}

    def read_state(self, pipeline: str, stream: str) -> StreamState | None:
        rec = self._state_records().get(state_key(pipeline, stream))
        if not rec:
            return None
        return StreamState.from_json(json.dumps(rec.get("state")))

    def table_schema(self, table: str) -> pa.Schema | None:
        """The schema the last committed load of ``table`` prepared (from its state record)."""
        best: tuple[str, str] | None = None
        for rec in self._state_records().values():
            if rec and rec.get("table") == table and rec.get("schema"):
                cand = (str(rec.get("committed_at", "")), str(rec["schema"]))
                best = cand if best is None or cand[0] > best[0] else best
        if best is None:
            return None
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(best[1])))

    # -- loading

    def open(self, job: WriteJob) -> LoadTransaction:
        if job.disposition is Disposition.OVERWRITE:
            raise ConfigError(
                f"kafka destination cannot replace topic {self.topic(job.table)!r} (a topic is an "
                "append-only log); use full_refresh_append, incremental_append or incremental_dedupe",
                field=f"streams[{job.stream.name}].mode",
                value=job.stream.mode.value,
            )
        return _KafkaLoad(self, job)

    # -- reading back (tests, checks)

    def _read_topic(self, topic: str) -> list[RawMessage]:
        c = client.consumer(self.config, group_id="openfuse-reader")
        try:
            parts = client.partitions(c, self.config, topic, missing_ok=True)
            if not parts:
                return []
            marks = client.watermarks(c, self.config, topic, parts)
            reader = client.RangeReader(
                c,
                topic,
                {p: low for p, (low, _) in marks.items()},
                {p: high for p, (_, high) in marks.items()},
                idle_timeout_s=self.config.idle_timeout_s,
            )
            return [RawMessage.of(m) for chunk in reader.chunks(_CHUNK) for m in chunk]
        finally:
            c.close()

    def count_rows(self, table: str) -> int:
        return sum(1 for m in self._read_topic(self.topic(table)) if m.value is not None)

    def read_table(self, table: str) -> pa.Table:
        """The topic's message values as a table (whole topic; for tests and small topics)."""
        msgs = [m for m in self._read_topic(self.topic(table)) if m.value is not None]
        decoder = Decoder(self.config.format)
        rows = []
        for m in msgs:
            d = decoder.decode(m.value)
            if d.row is None:
                raise FatalError(
                    f"kafka: message at {table=} partition={m.partition} offset={m.offset}: {d.error}"
                )
            rows.append(d.row)
        schema = self.table_schema(table) or pa.schema(decoder.fields(decoder.decode(m.value) for m in msgs))
        batch = build_batch(msgs, rows, schema, keep_extra=True)
        return pa.Table.from_batches([batch])

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.config.flush_timeout_s)
            self._producer = None


def state_key(pipeline: str, stream: str) -> str:
    # Pipeline names are identifiers (no "/"), so the first "/" separates them from the stream.
    return f"{pipeline}/{stream}"


class _Deliveries:
    """Counts the delivery reports of one load."""

    def __init__(self) -> None:
        self.failed = 0
        self.fatal = False
        self.first: str | None = None

    def __call__(self, err: Any, msg: Any) -> None:
        if err is None:
            return
        self.failed += 1
        self.fatal = self.fatal or err.fatal()
        if self.first is None:
            self.first = f"partition={msg.partition()}: {err.str()}"


class _KafkaLoad(LoadTransaction):
    def __init__(self, loader: KafkaLoader, job: WriteJob):
        self.loader = loader
        self.job = job
        self.topic = loader.topic(job.table)
        self.encoder: Encoder | None = None
        self.schema: pa.Schema | None = None
        self.reports = _Deliveries()
        self.rows = 0

    def prepare(self, schema: pa.Schema) -> None:
        c = client.consumer(self.loader.config)
        try:
            client.topics(c, self.loader.config)  # fail fast (bounded) when the cluster is unreachable
        finally:
            c.close()
        self.schema = schema
        key = tuple(k for k in self.job.primary_key if k in schema.names)
        self.encoder = Encoder(
            schema, envelope=self.loader.config.format == "json_schema", key=key, name=self.job.table
        )

    def _produce(self, topic: str, key: bytes | None, value: bytes) -> None:
        from confluent_kafka import KafkaException

        p = self.loader.producer()
        while True:
            try:
                p.produce(topic, value=value, key=key, on_delivery=self.reports)
                break
            except BufferError:
                p.poll(0.1)  # the local queue is full: wait for deliveries (bounded memory)
            except KafkaException as e:
                raise KafkaDeliveryError(
                    topic=topic, failed=1, reason=str(e.args[0] if e.args else e)
                ) from None
        p.poll(0)

    def write(self, batch: pa.RecordBatch) -> None:
        assert self.encoder is not None
        for key, value in self.encoder.encode(batch):
            self._produce(self.topic, key, value)
        self.rows += batch.num_rows

    def quarantine(self, rows: list[QuarantinedRow]) -> None:
        key = state_key(self.job.pipeline, self.job.stream.name).encode()
        for r in rows:
            doc = {
                "pipeline": self.job.pipeline,
                "stream": self.job.stream.name,
                "run_id": self.job.run_id,
                "position": r.position,
                "field": r.field,
                "value": r.value,
                "reason": r.reason,
                "record": r.record,
            }
            self._produce(
                self.loader.config.quarantine_topic,
                key,
                json.dumps(doc, default=str, ensure_ascii=False).encode(),
            )

    def _flush(self, what: str) -> None:
        p = self.loader.producer()
        # message.timeout.ms is flush_timeout_s: by then every message has a definite report.
        left = p.flush(self.loader.config.flush_timeout_s + 5)
        if self.reports.fatal:
            self.loader.discard_producer()
        if left:
            raise KafkaDeliveryError(
                topic=what,
                failed=left,
                reason=f"no delivery report within flush_timeout_s={self.loader.config.flush_timeout_s:g}",
            )
        if self.reports.failed:
            raise KafkaDeliveryError(topic=what, failed=self.reports.failed, reason=self.reports.first or "")

    def commit(self, state: StreamState) -> None:
        assert self.schema is not None
        self._flush(self.topic)
        record = {
            "pipeline": self.job.pipeline,
            "stream": self.job.stream.state_key,
            "table": self.job.table,
            "topic": self.topic,
            "run_id": self.job.run_id,
            "rows": self.rows,
            "state": json.loads(state.to_json()),
            "schema": base64.b64encode(self.schema.serialize().to_pybytes()).decode(),
            "committed_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        key = state_key(self.job.pipeline, self.job.stream.state_key).encode()
        self._produce(self.loader.config.state_topic, key, json.dumps(record, ensure_ascii=False).encode())
        self._flush(self.loader.config.state_topic)

    def rollback(self) -> None:
        p = self.loader._producer
        if p is None:
            return
        # Drop what is still queued locally; messages already sent cannot be taken back (at-least-once).
        p.purge(in_queue=True, in_flight=False, blocking=True)
        p.flush(0)
