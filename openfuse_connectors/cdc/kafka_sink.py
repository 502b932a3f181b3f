"""Publishes change events to Kafka, one topic per table, at least once.

Topics are ``<topic_prefix>.<schema>.<table>``, messages keyed by the primary key (Debezium key
JSON) with Debezium's envelope as the value (see :mod:`openfuse_connectors.cdc.debezium`); the
producer is idempotent with ``acks=all`` and partitions keys with ``murmur2_random``, the Java
client's partitioner, so a key lands where a Debezium (Java) producer would put it.

Commit protocol: :meth:`KafkaChangeSink.flush` waits until every message of the batch has a
successful delivery report (any failure raises and nothing is committed); only then does
:meth:`KafkaChangeSink.commit` write the position to the compacted state topic (key
``<pipeline>/@cdc``) and wait for that too; the runner confirms the slot after that. A crash
anywhere before the state record is delivered replays the batch from the slot: consumers may see
a change twice, with the same key and the same ``source.lsn``/``source.commit_lsn`` (drop
duplicates on those), never a gap. Kafka transactions would not make this exactly once either,
since the slot cannot join them.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from openfuse_connectors.builtin.kafka import client
from openfuse_connectors.builtin.kafka.config import KafkaConfig, valid_topic
from openfuse_connectors.builtin.kafka.errors import KafkaDeliveryError
from openfuse_connectors.cdc.catalog import SourceInfo
from openfuse_connectors.cdc.changes import Change, TableInfo
from openfuse_connectors.cdc.debezium import DebeziumEncoder
from openfuse_connectors.cdc.sink import STATE_STREAM, CdcState, ChangeSink
from openfuse_connectors.errors import ConfigError
from openfuse_connectors.state import StreamState

__all__ = ["KafkaChangeSink"]

log = logging.getLogger(__name__)


class _Reports:
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
            self.first = f"topic={msg.topic()} partition={msg.partition()}: {err.str()}"


class KafkaChangeSink(ChangeSink):
    """Debezium-compatible change events on Kafka topics; at-least-once, keyed, ordered per key."""

    name = "kafka"

    def __init__(
        self,
        config: KafkaConfig,
        *,
        pipeline: str,
        topic_prefix: str,
        tombstones: bool = True,
        database: str | None = None,
    ):
        if not topic_prefix or not valid_topic(topic_prefix):
            raise ConfigError(
                "cdc: topic_prefix must be a valid topic name part (letters, digits, '.', '_', '-')",
                field="cdc.kafka.topic_prefix",
                value=topic_prefix,
            )
        config.check_extra("destination")
        self.config = config
        self.pipeline = pipeline
        self.topic_prefix = topic_prefix
        self.encoder = DebeziumEncoder(
            topic_prefix=topic_prefix, database=database or "", tombstones=tombstones
        )
        self._producer: Any = None
        self._reports = _Reports()
        self.sent = 0

    @property
    def state_key(self) -> bytes:
        return f"{self.pipeline}/{STATE_STREAM}".encode()

    def open(self, source: SourceInfo) -> None:
        self.encoder.database = source.database

    def topic(self, table: TableInfo) -> str:
        return self.encoder.topic(table)

    def producer(self) -> Any:
        if self._producer is None:
            settings = self.config.producer_settings()
            settings.setdefault("partitioner", "murmur2_random")
            settings.setdefault("linger.ms", 5)
            from confluent_kafka import KafkaException, Producer

            try:
                self._producer = Producer(settings)
            except KafkaException as e:
                raise ConfigError(f"kafka: invalid client settings: {e}", field="extra") from None
        return self._producer

    def _produce(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        from confluent_kafka import KafkaException

        p = self.producer()
        while True:
            try:
                p.produce(topic, value=value, key=key, on_delivery=self._reports)
                break
            except BufferError:
                p.poll(0.05)  # local queue full: wait for deliveries (bounded memory)
            except KafkaException as e:
                raise KafkaDeliveryError(
                    topic=topic, failed=1, reason=str(e.args[0] if e.args else e)
                ) from None
        self.sent += 1
        if self.sent % 1000 == 0:
            p.poll(0)

    # -- the sink contract

    def read_state(self) -> CdcState | None:
        rec = self._read_state_record()
        if not rec:
            return None
        return CdcState.from_stream_state(StreamState.model_validate(rec.get("state") or {}))

    def _read_state_record(self) -> dict[str, Any] | None:
        c = client.consumer(self.config, group_id="openfuse-cdc-state")
        try:
            topic = self.config.state_topic
            parts = client.partitions(c, self.config, topic, missing_ok=True)
            if not parts:
                return None
            marks = client.watermarks(c, self.config, topic, parts)
            reader = client.RangeReader(
                c,
                topic,
                {p: low for p, (low, _) in marks.items()},
                {p: high for p, (_, high) in marks.items()},
                idle_timeout_s=self.config.idle_timeout_s,
            )
            latest: tuple[int, int] | None = None
            found: dict[str, Any] | None = None
            for chunk in reader.chunks(5_000):
                for m in chunk:
                    if m.key() != self.state_key:
                        continue
                    order = (m.partition(), m.offset())
                    if latest is not None and order < latest:
                        continue
                    latest = order
                    found = json.loads(m.value()) if m.value() is not None else None
            return found
        finally:
            c.close()

    def begin_snapshot(self, tables: list[TableInfo]) -> None:
        for t in tables:
            self.topic(t)  # validates names before anything is sent

    def write(self, changes: list[Change]) -> None:
        for ch in changes:
            for topic, key, value in self.encoder.records(ch):
                self._produce(topic, key, value)

    def flush(self) -> None:
        if self._producer is None:
            return
        left = self._producer.flush(self.config.flush_timeout_s + 5)
        reports, self._reports = self._reports, _Reports()
        if reports.fatal:
            self._producer = None  # an idempotent producer cannot go on after a fatal error
        if left:
            raise KafkaDeliveryError(
                topic=f"{self.topic_prefix}.*",
                failed=left,
                reason=f"no delivery report within flush_timeout_s={self.config.flush_timeout_s:g}",
            )
        if reports.failed:
            raise KafkaDeliveryError(
                topic=f"{self.topic_prefix}.*", failed=reports.failed, reason=reports.first or ""
            )

    def commit(self, state: CdcState) -> None:
        self.flush()
        record = {
            "pipeline": self.pipeline,
            "stream": STATE_STREAM,
            "state": json.loads(state.to_stream_state().to_json()),
            "committed_at": state.updated_at,
        }
        self._produce(self.config.state_topic, self.state_key, json.dumps(record).encode())
        self.flush()

    def rollback(self) -> None:
        p = self._producer
        self._reports = _Reports()
        if p is None:
            return
        # Drop what is still queued here; what was sent stays in the topics (at-least-once).
        p.purge(in_queue=True, in_flight=False, blocking=True)
        p.flush(0)

    def clear_state(self) -> None:
        self._produce(self.config.state_topic, self.state_key, None)
        self.flush()

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.config.flush_timeout_s)
            self._producer = None

    def describe(self) -> dict[str, Any]:
        return {"sink": self.name, "topic_prefix": self.topic_prefix, "brokers": self.config.where()}
