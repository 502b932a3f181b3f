"""confluent-kafka clients for the connector: creating them, cluster metadata with a bounded
timeout, and reading offset ranges of a topic. ``confluent_kafka`` is imported here, lazily."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from openfuse_connectors.builtin.kafka.config import KafkaConfig
from openfuse_connectors.builtin.kafka.errors import KafkaReadError
from openfuse_connectors.errors import ConfigError, SourceUnreachableError

__all__ = ["RangeReader", "consumer", "partitions", "producer", "topics", "watermarks"]

log = logging.getLogger(__name__)
#: How long one consume() call waits; short, so idle and end checks run often.
_POLL_S = 0.1


def consumer(cfg: KafkaConfig, *, group_id: str | None = None, strict_offsets: bool = False) -> Any:
    """A consumer that never commits on its own and never joins the group (partitions are assigned).

    With ``strict_offsets`` a fetch outside the retained range is an error instead of a silent
    jump to the earliest offset.
    """
    from confluent_kafka import Consumer, KafkaException

    settings = cfg.consumer_settings(group_id)
    if strict_offsets:
        settings["auto.offset.reset"] = "error"
    try:
        return Consumer(settings)
    except KafkaException as e:
        raise ConfigError(f"kafka: invalid client settings: {e}", field="extra") from None


def producer(cfg: KafkaConfig) -> Any:
    from confluent_kafka import KafkaException, Producer

    try:
        return Producer(cfg.producer_settings())
    except KafkaException as e:
        raise ConfigError(f"kafka: invalid client settings: {e}", field="extra") from None


def _metadata(client: Any, cfg: KafkaConfig, topic: str | None = None) -> Any:
    from confluent_kafka import KafkaException

    try:
        return client.list_topics(topic, timeout=cfg.connect_timeout_s)
    except KafkaException as e:
        err = e.args[0] if e.args else e
        reason = err.str() if hasattr(err, "str") else str(err)
        raise SourceUnreachableError(
            connector="kafka",
            host=cfg.where(),
            port=None,
            database=None,
            reason=f"no answer within {cfg.connect_timeout_s:g}s ({reason})",
        ) from None


def topics(client: Any, cfg: KafkaConfig) -> list[str]:
    """Every topic, internal ones (``__consumer_offsets``, ``_openfuse_*``, ``_schemas``) left out."""
    md = _metadata(client, cfg)
    return sorted(t for t in md.topics if not t.startswith("_"))


def partitions(client: Any, cfg: KafkaConfig, topic: str, *, missing_ok: bool = False) -> list[int]:
    """The partition ids of ``topic``; a missing topic is a ConfigError (or [] with ``missing_ok``)."""
    from confluent_kafka import KafkaError

    md = _metadata(client, cfg, topic)
    t = md.topics.get(topic)
    if t is None or (t.error is not None and t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
        if missing_ok:
            return []
        raise ConfigError(
            f"kafka: topic {topic!r} does not exist on {cfg.where()}", field="streams.name", value=topic
        )
    if t.error is not None:
        raise KafkaReadError(topic=topic, partition=None, reason=t.error.str())
    return sorted(t.partitions)


def watermarks(client: Any, cfg: KafkaConfig, topic: str, parts: list[int]) -> dict[int, tuple[int, int]]:
    """(low, high) offsets of each partition, asked of the brokers (not cached)."""
    from confluent_kafka import KafkaException, TopicPartition

    out = {}
    for p in parts:
        try:
            low, high = client.get_watermark_offsets(
                TopicPartition(topic, p), timeout=cfg.connect_timeout_s, cached=False
            )
        except KafkaException as e:
            raise KafkaReadError(topic=topic, partition=p, reason=str(e.args[0] if e.args else e)) from None
        out[p] = (int(low), int(high))
    return out


class RangeReader:
    """Reads offsets ``[start, end)`` of some partitions of one topic, then stops.

    ``next_offsets`` holds, per partition, the offset after the last message handed out (or
    ``end`` once the consumer's position passed it, e.g. over transaction markers). The read
    also stops, early, when nothing arrives for ``idle_timeout_s``: what was read is kept and
    the rest is read next time.
    """

    def __init__(
        self,
        client: Any,
        topic: str,
        starts: dict[int, int],
        ends: dict[int, int],
        *,
        idle_timeout_s: float,
    ):
        self.client = client
        self.topic = topic
        self.ends = ends
        self.next_offsets = dict(starts)
        self.idle_timeout_s = idle_timeout_s
        self.stopped_early: list[int] = []

    def chunks(self, max_messages: int) -> Iterator[list[Any]]:
        """Yield lists of at most ``max_messages`` confluent-kafka messages, in partition order."""
        from confluent_kafka import KafkaError, TopicPartition

        remaining = {p for p, s in self.next_offsets.items() if s < self.ends[p]}
        if not remaining:
            return
        self.client.assign([TopicPartition(self.topic, p, self.next_offsets[p]) for p in sorted(remaining)])
        last_progress = time.monotonic()
        try:
            while remaining:
                # Ask for no more than is left, so the call returns as soon as the tail has arrived.
                left = sum(self.ends[p] - self.next_offsets[p] for p in remaining)
                msgs = self.client.consume(num_messages=max(1, min(max_messages, left)), timeout=_POLL_S)
                out = []
                done = []
                for m in msgs:
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            continue
                        raise KafkaReadError(topic=self.topic, partition=m.partition(), reason=err.str())
                    p, off = m.partition(), m.offset()
                    if p not in remaining or off >= self.ends[p] or off < self.next_offsets[p]:
                        continue  # past this run's end (or a redelivery): left for the next run
                    out.append(m)
                    self.next_offsets[p] = off + 1
                    if off + 1 >= self.ends[p]:
                        done.append(p)
                # Transaction markers and compacted-away offsets have no message: trust the position.
                for tp in self.client.position([TopicPartition(self.topic, p) for p in remaining]):
                    if tp.offset >= self.ends[tp.partition] and tp.partition not in done:
                        self.next_offsets[tp.partition] = self.ends[tp.partition]
                        done.append(tp.partition)
                if done:
                    remaining.difference_update(done)
                    self.client.pause([TopicPartition(self.topic, p) for p in done])
                if out or done:
                    last_progress = time.monotonic()
                elif time.monotonic() - last_progress > self.idle_timeout_s:
                    self.stopped_early = sorted(remaining)
                    log.warning(
                        "kafka: no message from topic %r partitions %s for %.0fs; ending this read early "
                        "(the rest is read next run)",
                        self.topic,
                        self.stopped_early,
                        self.idle_timeout_s,
                    )
                    return
                if out:
                    yield out
        finally:
            self.client.unassign()
