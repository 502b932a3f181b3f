"""Kafka source: topics as streams, read up to the end observed at the start of the run.

Streams
    A stream is a topic. :meth:`KafkaExtractor.discover` lists every topic except internal ones
    (names starting with ``_``). Columns are the payload's fields plus ``_kafka_partition``
    (int32), ``_kafka_offset`` (int64), ``_kafka_timestamp`` (timestamp[ms, UTC], NULL when the
    message has none) and ``_kafka_key`` (the key as UTF-8 text). A payload field with one of
    those names is shadowed by the Kafka value.

Schema
    ``json``: inferred from a sample (``sample_size``) of the newest messages of each partition.
    ``json_schema``: the topic's JSON Schema in ``schemas``, or the Connect envelopes' schemas of
    the sample, merged. A field that first appears in messages after the sample cannot be loaded
    in this run: its rows are quarantined (never dropped), and the next run's sample adds it.

Where a read starts and ends
    Per partition, a read starts at the offsets stored in the stream state
    (``state.extra["source"]["offsets"]``, the next offset to read), which the engine commits in
    the destination's transaction with the data. Without state an incremental stream starts at the
    consumer group's committed offsets (``start_offsets: group``, falling back to earliest),
    earliest or latest; full-refresh modes read from the earliest retained offset. A read ends at
    the high watermark each partition had when the read started, so a run ends. (A ``--full-refresh``
    of an incremental stream reaches the source as "no state", so it starts per
    ``start_offsets``: set ``start_offsets: earliest`` to re-read the whole retained topic.)

Exactly once, and the cursor
    Because positions are stored with the data, every message is loaded exactly once into a
    transactional destination, also when a run fails half-way: a failed run commits nothing and
    the next one starts from the same offsets. Once offsets are stored, the pipeline's
    ``cursor_field`` does not select messages (offsets are per partition; one cursor cannot say
    where each partition stands); only a state without them (written by another tool) falls back
    to the usual ``cursor_field >= cursor`` filter. Use ``cursor_field: _kafka_offset`` with
    ``incremental_append``. It is never NULL, keeps the
    engine's boundary set to at most one row per partition, and with ``incremental_dedupe`` on
    ``primary_key: [_kafka_key]`` the newest message of a key wins (a key's messages share a
    partition, so their offsets order them).

Consumer-group offsets
    The group's offsets are never committed by a read. They are committed, for lag monitoring,
    from the state the destination committed: by :meth:`KafkaExtractor.after_commit` (an engine
    hook, called after the destination commit) and, until every engine calls it, at the start of
    the next read. They are never used to resume a stream that has state.

Bad input
    A value that is not valid JSON (or not an object, or does not match its schema) never becomes
    a row and is never dropped: :meth:`KafkaExtractor.take_rejects` hands it to the engine, which
    quarantines it with the topic, partition, offset, the value as text and the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from openfuse_connectors.builtin.kafka import client
from openfuse_connectors.builtin.kafka.config import KafkaConfig
from openfuse_connectors.builtin.kafka.errors import KafkaCommitError
from openfuse_connectors.builtin.kafka.payload import (
    META_FIELDS,
    META_NAMES,
    OFFSET,
    TIMESTAMP,
    Decoded,
    Decoder,
    RawMessage,
    build_batch,
)
from openfuse_connectors.catalog import StreamInfo
from openfuse_connectors.errors import StateError
from openfuse_connectors.extractor import Extractor, _select
from openfuse_connectors.loader import QuarantinedRow
from openfuse_connectors.spec import StreamSpec
from openfuse_connectors.state import StreamState

__all__ = ["KafkaExtractor", "stored_offsets"]

log = logging.getLogger(__name__)
_CHUNK = 5_000  # messages per consume() call


class KafkaExtractor(Extractor):
    """Kafka topics of JSON messages; offsets are committed with the data, exactly once."""

    name = "kafka"
    config_model = KafkaConfig
    config: KafkaConfig

    def __init__(self, config: KafkaConfig):
        super().__init__(config)
        config.check_extra("source")
        self._infos: dict[str, StreamInfo] = {}
        self._rejects: list[QuarantinedRow] = []
        self._checkpoint: dict[str, Any] | None = None
        self._since: tuple[str, pa.Scalar] | None = None

    # -- catalog

    def check(self) -> None:
        c = client.consumer(self.config)
        try:
            client.topics(c, self.config)
        finally:
            c.close()

    def discover(self) -> list[StreamInfo]:
        c = client.consumer(self.config)
        try:
            return [self._info(c, t) for t in client.topics(c, self.config)]
        finally:
            c.close()

    def stream_info(self, stream: StreamSpec) -> StreamInfo:
        if stream.name not in self._infos:
            c = client.consumer(self.config)
            try:
                self._info(c, stream.name)
            finally:
                c.close()
        return _select(self._infos[stream.name], stream)

    def _decoder(self, topic: str) -> Decoder:
        return Decoder(self.config.format, self.config.schemas.get(topic))

    def _info(self, c: Any, topic: str) -> StreamInfo:
        if topic in self._infos:
            return self._infos[topic]
        parts = client.partitions(c, self.config, topic)
        decoder = self._decoder(topic)
        sample: list[Decoded] = []
        if decoder.schema is None:
            marks = client.watermarks(c, self.config, topic, parts)
            per = -(-self.config.sample_size // max(1, len(parts)))
            starts = {p: max(low, high - per) for p, (low, high) in marks.items()}
            reader = client.RangeReader(
                c,
                topic,
                starts,
                {p: high for p, (_, high) in marks.items()},
                idle_timeout_s=min(self.config.idle_timeout_s, self.config.connect_timeout_s),
            )
            for chunk in reader.chunks(_CHUNK):
                sample.extend(decoder.decode(m.value()) for m in chunk)
        payload = [f for f in decoder.fields(sample) if f.name not in META_NAMES]
        schema = pa.schema([*payload, *META_FIELDS])
        info = StreamInfo(
            topic,
            schema,
            ("_kafka_partition", OFFSET),
            (OFFSET, TIMESTAMP),
            {"partitions": len(parts), "format": self.config.format, "sampled": len(sample)},
        )
        self._infos[topic] = info
        return info

    # -- reading

    def read(
        self, stream: StreamSpec, state: StreamState | None, *, batch_size: int = 100_000
    ) -> Iterator[pa.RecordBatch]:
        self._rejects = []
        self._checkpoint = None
        topic = stream.name
        info = self.stream_info(stream)
        decoder = self._decoder(topic)
        keep_extra = stream.columns is None
        c = client.consumer(self.config, strict_offsets=True)
        try:
            parts = client.partitions(c, self.config, topic)
            marks = client.watermarks(c, self.config, topic, parts)
            stored = stored_offsets(state, topic)
            if stored:
                # Offsets in the state are committed in the destination: acknowledge them to the
                # group too (the after_commit hook does this right after the commit).
                self._commit_group(c, topic, stored, best_effort=True)
            starts = self._starts(c, stream, topic, marks, stored)
            self._since = _cursor_filter(stream, state, stored)
            reader = client.RangeReader(
                c,
                topic,
                starts,
                {p: high for p, (_, high) in marks.items()},
                idle_timeout_s=self.config.idle_timeout_s,
            )
            position = 0
            msgs: list[RawMessage] = []
            nbytes = 0
            for chunk in reader.chunks(min(_CHUNK, batch_size)):
                for m in chunk:
                    raw = RawMessage.of(m)
                    msgs.append(raw)
                    nbytes += len(raw.value or b"")
                    if len(msgs) >= batch_size or nbytes >= self.config.max_batch_bytes:
                        batch = self._batch(topic, msgs, decoder, info.schema, keep_extra, position)
                        position += batch.num_rows
                        msgs, nbytes = [], 0
                        yield batch
            if msgs:
                yield self._batch(topic, msgs, decoder, info.schema, keep_extra, position)
            self._checkpoint = {
                "topic": topic,
                "offsets": {str(p): o for p, o in sorted(reader.next_offsets.items())},
            }
        finally:
            c.close()

    def _starts(
        self,
        c: Any,
        stream: StreamSpec,
        topic: str,
        marks: dict[int, tuple[int, int]],
        stored: dict[int, int] | None,
    ) -> dict[int, int]:
        from confluent_kafka import TopicPartition

        starts: dict[int, int] = {}
        committed: dict[int, int] = {}
        if stored is None and stream.mode.incremental and self.config.start_offsets == "group":
            tps = [TopicPartition(topic, p) for p in marks]
            committed = {
                tp.partition: tp.offset for tp in c.committed(tps, timeout=self.config.connect_timeout_s)
            }
        for p, (low, high) in marks.items():
            if stored is not None and p in stored:
                start = stored[p]
                if start > high:
                    raise StateError(
                        f"kafka: stored offset {start} of {topic=} partition={p} is past the end of the "
                        f"partition ({high}); was the topic deleted and re-created? Run the stream with "
                        "a full refresh to start over"
                    )
                if start < low:
                    log.warning(
                        "kafka: %s partition %d: offsets %d..%d were deleted by retention before they "
                        "were loaded; continuing at %d",
                        topic,
                        p,
                        start,
                        low - 1,
                        low,
                    )
                    start = low
            elif stored is not None or not stream.mode.incremental:
                start = low  # a partition added since the last run, or a full refresh
            elif self.config.start_offsets == "latest":
                start = high
            elif committed.get(p, -1) >= 0:
                start = min(max(committed[p], low), high)
            else:
                start = low
            starts[p] = start
        return starts

    def _batch(
        self,
        topic: str,
        msgs: list[RawMessage],
        decoder: Decoder,
        schema: pa.Schema,
        keep_extra: bool,
        position: int,
    ) -> pa.RecordBatch:
        good: list[RawMessage] = []
        rows: list[dict[str, Any]] = []
        for m in msgs:
            d = decoder.decode(m.value)
            if d.row is None:
                self._rejects.append(_reject(topic, m, d.error or "undecodable", position + len(good)))
                continue
            good.append(m)
            rows.append(d.row)
        batch = build_batch(good, rows, schema, keep_extra=keep_extra)
        if self._since is None:
            return batch
        return _at_or_after(batch, *self._since)

    def checkpoint(self) -> dict[str, Any] | None:
        """``{"topic": ..., "offsets": {"<partition>": <next offset>}}`` of the finished read."""
        return self._checkpoint

    def take_rejects(self) -> list[QuarantinedRow]:
        """Messages that could not be decoded since the last call, each once.

        Each has ``field=None``, the value as text in ``value``, a reason naming the topic,
        partition and offset, and ``record`` with ``_kafka_topic``, ``_kafka_partition``,
        ``_kafka_offset``, ``_kafka_timestamp`` (ms), ``_kafka_key`` and ``_kafka_value``.
        """
        out, self._rejects = self._rejects, []
        return out

    # -- after the destination commit

    def after_commit(self, stream: StreamSpec, state: StreamState) -> None:
        """Commit the consumer group's offsets to the positions ``state`` (just committed in the
        destination) stores, so lag tools see the progress. The data does not depend on it.

        Raises:
            KafkaCommitError: the brokers refused the commit (e.g. the group has active members).
        """
        offsets = stored_offsets(state, stream.name)
        if not offsets:
            return
        c = client.consumer(self.config)
        try:
            self._commit_group(c, stream.name, offsets, best_effort=False)
        finally:
            c.close()

    def _commit_group(self, c: Any, topic: str, offsets: dict[int, int], *, best_effort: bool) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        tps = [TopicPartition(topic, p, o) for p, o in sorted(offsets.items())]
        try:
            result = c.commit(offsets=tps, asynchronous=False) or []
            errors = [f"partition {tp.partition}: {tp.error}" for tp in result if tp.error is not None]
            if errors:
                raise KafkaCommitError(group=self.config.group_id, topic=topic, reason="; ".join(errors))
        except KafkaException as e:
            err = KafkaCommitError(
                group=self.config.group_id, topic=topic, reason=str(e.args[0] if e.args else e)
            )
            if not best_effort:
                raise err from None
            log.warning("%s", err)
        except KafkaCommitError as err:
            if not best_effort:
                raise
            log.warning("%s", err)


def stored_offsets(state: StreamState | None, topic: str) -> dict[int, int] | None:
    """Next offset per partition from a stream state's source checkpoint, or None."""
    src = state.extra.get("source") if state is not None else None
    if not isinstance(src, dict) or "offsets" not in src:
        return None
    if src.get("topic") not in (None, topic):
        raise StateError(f"kafka: stored state is for topic {src.get('topic')!r}, not {topic!r}")
    try:
        return {int(p): int(o) for p, o in dict(src["offsets"]).items()}
    except (TypeError, ValueError) as e:
        raise StateError(f"kafka: stored offsets of {topic=} are not readable: {src['offsets']!r}") from e


def _cursor_filter(
    stream: StreamSpec, state: StreamState | None, stored: dict[int, int] | None
) -> tuple[str, pa.Scalar] | None:
    """The cursor rows must reach, for a state without stored offsets (e.g. written by another
    tool): then the read keeps rows with ``cursor_field >= cursor``, as every source does. With
    stored offsets the offsets alone say what is new (a cursor compared across partitions could
    skip messages), and ``_kafka_offset`` is never compared across partitions."""
    if stored is not None or state is None or state.cursor is None or not stream.cursor_field:
        return None
    if stream.cursor_field == OFFSET or state.cursor.field != stream.cursor_field:
        return None
    return stream.cursor_field, state.cursor.to_scalar()


def _at_or_after(batch: pa.RecordBatch, field: str, cursor: pa.Scalar) -> pa.RecordBatch:
    if batch.schema.get_field_index(field) < 0:
        return batch
    col = batch.column(field)
    try:
        keep = pc.fill_null(pc.greater_equal(col, cursor.cast(col.type)), True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return batch  # values that do not compare are kept (and quarantined downstream), not skipped
    return batch.filter(keep)


def _reject(topic: str, m: RawMessage, reason: str, position: int) -> QuarantinedRow:
    text = m.text()
    return QuarantinedRow(
        position=position,
        field=None,
        value=text,
        reason=f"{reason} (topic={topic} partition={m.partition} offset={m.offset})",
        record={
            "_kafka_topic": topic,
            "_kafka_partition": m.partition,
            "_kafka_offset": m.offset,
            "_kafka_timestamp": m.timestamp_ms,
            "_kafka_key": m.key_text(),
            "_kafka_value": text,
        },
    )
