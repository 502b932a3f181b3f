"""Message values <-> rows: decoding (json, JSON Schema, Connect envelope), schema inference,
Arrow batches with the ``_kafka_*`` columns, and encoding rows for the destination."""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from openfuse_connectors.builtin.kafka import connect, json_schema
from openfuse_connectors.drift import widen

__all__ = [
    "META_FIELDS",
    "Decoded",
    "Decoder",
    "Encoder",
    "RawMessage",
    "build_batch",
    "infer_fields",
]

PARTITION, OFFSET, TIMESTAMP, KEY = "_kafka_partition", "_kafka_offset", "_kafka_timestamp", "_kafka_key"
META_FIELDS = (
    pa.field(PARTITION, pa.int32(), False),
    pa.field(OFFSET, pa.int64(), False),
    pa.field(TIMESTAMP, pa.timestamp("ms", tz="UTC")),
    pa.field(KEY, pa.string()),
)
META_NAMES = frozenset(f.name for f in META_FIELDS)
#: Confluent Schema Registry framing: magic byte 0 and a 4-byte schema id before the data.
_SR_MAGIC = b"\x00"


@dataclass(frozen=True)
class RawMessage:
    """What the source keeps of one Kafka message."""

    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None

    @classmethod
    def of(cls, msg: Any) -> RawMessage:
        ts_type, ts = msg.timestamp()
        return cls(msg.partition(), msg.offset(), ts if ts_type != 0 else None, msg.key(), msg.value())

    def text(self) -> str | None:
        return None if self.value is None else self.value.decode("utf-8", errors="backslashreplace")

    def key_text(self) -> str | None:
        return None if self.key is None else self.key.decode("utf-8", errors="backslashreplace")


@dataclass(frozen=True)
class Decoded:
    """A decoded value: the row (column -> Python value), or why it could not be decoded."""

    row: dict[str, Any] | None
    error: str | None = None
    #: For envelopes: the Arrow fields of the message's own schema.
    fields: tuple[pa.Field, ...] | None = None


class Decoder:
    """Turns message values into rows in one of the payload formats.

    * ``json``: the value must be a JSON object; nested objects and arrays become JSON text.
    * ``json_schema`` with a schema: a JSON object valid against it (``date``/``date-time``
      strings become dates/timestamps).
    * ``json_schema`` without one: a Kafka Connect envelope.

    A tombstone (null value) decodes to an empty row: its payload columns are NULL.
    """

    def __init__(self, fmt: str, schema: dict[str, Any] | None = None):
        self.fmt = fmt
        self.schema = schema

    @property
    def envelope(self) -> bool:
        return self.fmt == "json_schema" and self.schema is None

    def decode(self, value: bytes | None) -> Decoded:
        if value is None:
            return Decoded({})
        if value[:1] == _SR_MAGIC and len(value) > 5:
            return Decoded(
                None,
                "value starts with the Schema Registry magic byte (Confluent wire format with a "
                "schema id); this connector reads plain JSON values",
            )
        try:
            doc = json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            return Decoded(None, f"invalid JSON: {e}")
        if not isinstance(doc, dict):
            return Decoded(None, f"value is JSON but not an object (got {type(doc).__name__})")
        if self.fmt == "json":
            return Decoded(doc)
        if self.schema is not None:
            problem = json_schema.validate(doc, self.schema)
            if problem:
                return Decoded(None, f"does not match the JSON Schema: {problem}")
            return Decoded(self._typed(doc))
        if set(doc) != {"schema", "payload"}:
            return Decoded(None, 'not a Kafka Connect envelope: expected exactly {"schema", "payload"}')
        try:
            fields = connect.envelope_fields(doc["schema"])
            row = connect.from_connect(doc["payload"], doc["schema"])
        except connect.EnvelopeError as e:
            return Decoded(None, f"envelope payload does not match its schema: {e}")
        if row is None:  # an optional struct with a null payload
            row = {}
        return Decoded(row, fields=tuple(fields))

    def _typed(self, doc: dict[str, Any]) -> dict[str, Any]:
        assert self.schema is not None
        props = self.schema.get("properties") or {}
        out = dict(doc)
        for name, sub in props.items():
            fmt = sub.get("format")
            v = out.get(name)
            if isinstance(v, str) and fmt in ("date", "date-time"):
                out[name] = json_schema.parse_format(v, fmt)
        return out

    def fields(self, sample: Iterable[Decoded]) -> list[pa.Field]:
        """The payload columns: from the configured schema, else inferred from decoded samples."""
        if self.schema is not None:
            return json_schema.arrow_fields(self.schema)
        good = [d for d in sample if d.row is not None]
        if self.envelope:
            merged: dict[str, pa.DataType] = {}
            for d in good:
                for f in d.fields or ():
                    merged[f.name] = widen(merged[f.name], f.type) if f.name in merged else f.type
            return [pa.field(n, t) for n, t in merged.items()]
        return infer_fields(d.row for d in good if d.row is not None)


def infer_fields(rows: Iterable[dict[str, Any]]) -> list[pa.Field]:
    """Arrow fields for plain JSON objects: bool, int64, float64, else text (objects and arrays
    as JSON text). A field never seen with a value is text."""
    kinds: dict[str, set[str]] = {}
    for row in rows:
        for name, v in row.items():
            seen = kinds.setdefault(name, set())
            if v is None:
                continue
            if isinstance(v, bool):
                seen.add("bool")
            elif isinstance(v, int):
                seen.add("int" if -(1 << 63) <= v < (1 << 63) else "text")
            elif isinstance(v, float):
                seen.add("float")
            else:
                seen.add("text")
    out = []
    for name, seen in kinds.items():
        if seen == {"bool"}:
            t = pa.bool_()
        elif seen == {"int"}:
            t = pa.int64()
        elif seen and seen <= {"int", "float"}:
            t = pa.float64()
        else:
            t = pa.string()
        out.append(pa.field(name, t))
    return out


def build_batch(
    messages: list[RawMessage], rows: list[dict[str, Any]], schema: pa.Schema, *, keep_extra: bool
) -> pa.RecordBatch:
    """A batch of ``schema``'s columns (payload and ``_kafka_*``), one row per message.

    A value that does not fit its column's type makes the whole column text for this batch, so
    the engine's conform step quarantines exactly the rows that do not cast. With ``keep_extra``
    fields the schema does not know are added as text columns, so those rows are quarantined
    too (the destination has no column for them) instead of being dropped.
    """
    meta = {
        PARTITION: pa.array([m.partition for m in messages], pa.int32()),
        OFFSET: pa.array([m.offset for m in messages], pa.int64()),
        TIMESTAMP: pa.array([m.timestamp_ms for m in messages], pa.timestamp("ms", tz="UTC")),
        KEY: pa.array([m.key_text() for m in messages], pa.string()),
    }
    arrays: list[pa.Array] = []
    fields: list[pa.Field] = []
    for f in schema:
        if f.name in meta:
            arrays.append(meta[f.name])
            fields.append(f)
            continue
        col = _column([r.get(f.name) for r in rows], f.type)
        arrays.append(col)
        fields.append(f if col.type == f.type else pa.field(f.name, col.type, True))
    if keep_extra:
        known = set(schema.names) | META_NAMES
        extra: list[str] = []
        for r in rows:
            extra.extend(k for k in r if k not in known and k not in extra)
        for name in extra:
            arrays.append(pa.array([_text(r.get(name)) for r in rows], pa.string()))
            fields.append(pa.field(name, pa.string()))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def _column(values: list[Any], t: pa.DataType) -> pa.Array:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pa.array([_text(v) for v in values], t)
    try:
        return pa.array(values, t)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        pass
    texts = pa.array([_text(v) for v in values], pa.string())
    if not (pa.types.is_nested(t) or pa.types.is_binary(t)):
        try:  # ISO date-times, decimals written as text, ...: exact casts from text are fine
            return pc.cast(texts, t, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return texts


def _text(v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool | int | float | dict | list):
        return json.dumps(v, ensure_ascii=False, default=connect.json_text)
    return connect.json_text(v)


# -- the destination's side


class Encoder:
    """Rows of an Arrow schema as message values (plain JSON objects or Connect envelopes) and keys."""

    def __init__(self, schema: pa.Schema, *, envelope: bool, key: tuple[str, ...], name: str):
        self.schema = schema
        self.envelope = envelope
        self.key = key
        self.connect_schema = {
            "type": "struct",
            "fields": [connect.arrow_to_connect(f) for f in schema],
            "optional": False,
            "name": name,
        }

    def encode(self, batch: pa.RecordBatch) -> list[tuple[bytes | None, bytes]]:
        """(key, value) for each row; the key is the JSON object of the primary-key columns."""
        columns = []
        for i, f in enumerate(self.schema):
            col = batch.column(i)
            if self.envelope:
                columns.append([connect.to_connect(v, f.type) for v in _pylist(col)])
            else:
                columns.append([_json_value(v, f.type) for v in _pylist(col)])
        names = self.schema.names
        key_idx = [names.index(k) for k in self.key]
        out = []
        for values in zip(*columns, strict=True) if columns else iter(()):
            obj = dict(zip(names, values, strict=True))
            doc: Any = {"schema": self.connect_schema, "payload": obj} if self.envelope else obj
            key = None
            if key_idx:
                key = _dumps({names[i]: values[i] for i in key_idx})
            out.append((key, _dumps(doc)))
        return out


def _pylist(col: pa.Array) -> list[Any]:
    if pa.types.is_timestamp(col.type) and col.type.unit == "ns":
        return col.cast(pa.string()).to_pylist()  # exact; Python datetimes stop at microseconds
    return col.to_pylist()


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _json_value(v: Any, t: pa.DataType) -> Any:
    """A value as plain JSON: numbers and booleans as such, decimals as exact text, times as
    ISO 8601, bytes as base64, non-finite floats as "NaN"/"Infinity"."""
    if v is None or isinstance(v, str | bool | int):
        return v
    if isinstance(v, float):
        if math.isfinite(v):
            return v
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, dt.datetime):
        return v.isoformat()
    if isinstance(v, dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    if isinstance(v, dict):
        fields = (
            {t.field(i).name: t.field(i).type for i in range(t.num_fields)} if pa.types.is_struct(t) else {}
        )
        return {k: _json_value(x, fields.get(k, pa.null())) for k, x in v.items()}
    if isinstance(v, list):
        inner = t.value_type if hasattr(t, "value_type") else pa.null()
        if v and isinstance(v[0], tuple):  # a map: [(key, value), ...]
            return {str(k): _json_value(x, inner) for k, x in v}
        return [_json_value(x, inner) for x in v]
    return str(v)
