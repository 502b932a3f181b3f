"""Kafka Connect JSON envelopes: ``{"schema": ..., "payload": ...}`` as JsonConverter writes them
with ``schemas.enable=true``.

Schema types map to Arrow as: int8/int16/int32/int64 -> the same, float -> float32,
double -> float64, boolean -> bool, string -> string, bytes -> binary (base64 in the payload),
array -> list, struct -> struct, map -> JSON text. Logical types: ``Decimal`` -> decimal128
(precision from ``connect.decimal.precision``, else 38; the payload is base64 of the unscaled
two's-complement integer, or a number with ``decimal.format=NUMERIC``), ``Date`` -> date32,
``Time`` -> time32[ms], ``Timestamp`` -> timestamp[ms, UTC]; Debezium's ``ZonedTimestamp``
(an ISO-8601 string) -> timestamp[us, UTC].

The destination writes the reverse mapping; timestamps finer than milliseconds are written as
``ZonedTimestamp`` strings, since Connect's ``Timestamp`` would truncate them.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

__all__ = [
    "EnvelopeError",
    "arrow_to_connect",
    "connect_to_arrow",
    "envelope_fields",
    "from_connect",
    "to_connect",
]

DECIMAL = "org.apache.kafka.connect.data.Decimal"
DATE = "org.apache.kafka.connect.data.Date"
TIME = "org.apache.kafka.connect.data.Time"
TIMESTAMP = "org.apache.kafka.connect.data.Timestamp"
ZONED = "io.debezium.time.ZonedTimestamp"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_DATE = dt.date(1970, 1, 1)
_INTS = {"int8": pa.int8(), "int16": pa.int16(), "int32": pa.int32(), "int64": pa.int64()}
_RANGES = {"int8": 7, "int16": 15, "int32": 31, "int64": 63}


class EnvelopeError(ValueError):
    """A message is not a valid envelope, or its payload does not match its schema."""


def envelope_fields(schema: Any) -> list[pa.Field]:
    """The columns of an envelope: the fields of its top-level struct."""
    if not isinstance(schema, dict) or schema.get("type") != "struct":
        raise EnvelopeError(f"the envelope's schema must be a struct, got {_short(schema)}")
    return [pa.field(_name(f), connect_to_arrow(f)) for f in _fields(schema)]


def _fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    fields = schema.get("fields")
    if not isinstance(fields, list) or not all(isinstance(f, dict) for f in fields):
        raise EnvelopeError(f"struct schema without a fields list: {_short(schema)}")
    return fields


def _name(f: dict[str, Any]) -> str:
    name = f.get("field")
    if not isinstance(name, str) or not name:
        raise EnvelopeError(f"struct field without a name: {_short(f)}")
    return name


def connect_to_arrow(schema: dict[str, Any]) -> pa.DataType:
    """The Arrow type of one Connect schema."""
    t, name = schema.get("type"), schema.get("name")
    if name == DECIMAL:
        scale, precision = _decimal_params(schema)
        return pa.decimal128(precision, scale)
    if name == DATE:
        return pa.date32()
    if name == TIME:
        return pa.time32("ms")
    if name == TIMESTAMP:
        return pa.timestamp("ms", tz="UTC")
    if name == ZONED:
        return pa.timestamp("us", tz="UTC")
    if t in _INTS:
        return _INTS[t]
    simple = {
        "float": pa.float32(),
        "double": pa.float64(),
        "boolean": pa.bool_(),
        "string": pa.string(),
        "bytes": pa.binary(),
    }
    if t in simple:
        return simple[t]
    if t == "array":
        items = schema.get("items")
        if not isinstance(items, dict):
            raise EnvelopeError(f"array schema without items: {_short(schema)}")
        return pa.list_(connect_to_arrow(items))
    if t == "struct":
        return pa.struct([pa.field(_name(f), connect_to_arrow(f)) for f in _fields(schema)])
    if t == "map":
        return pa.string()
    raise EnvelopeError(f"unknown Connect schema type {t!r}")


def _decimal_params(schema: dict[str, Any]) -> tuple[int, int]:
    params = schema.get("parameters") or {}
    try:
        scale = int(params.get("scale", 0))
        precision = int(params.get("connect.decimal.precision", 38))
    except (TypeError, ValueError) as e:
        raise EnvelopeError(f"Decimal schema with unreadable parameters {params!r}") from e
    if not 0 <= scale <= precision <= 38:
        raise EnvelopeError(f"Decimal({precision}, {scale}) does not fit decimal128 (precision <= 38)")
    return scale, precision


def from_connect(value: Any, schema: dict[str, Any], path: str = "$") -> Any:
    """The Python value (Decimal, date, datetime, bytes, dict, list, ...) of one payload value."""
    if value is None:
        if schema.get("optional", False) or "default" in schema:
            return schema.get("default")
        raise EnvelopeError(f"{path}: null for a required (non-optional) field")
    t, name = schema.get("type"), schema.get("name")
    try:
        if name == DECIMAL:
            scale, _ = _decimal_params(schema)
            if isinstance(value, str):
                unscaled = int.from_bytes(base64.b64decode(value, validate=True), "big", signed=True)
                return Decimal(unscaled).scaleb(-scale)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return Decimal(str(value))
            raise EnvelopeError(f"{path}: Decimal must be base64 text or a number, got {_short(value)}")
        if name == DATE:
            return _EPOCH_DATE + dt.timedelta(days=_int(value, "int32", path))
        if name == TIME:
            return (_EPOCH + dt.timedelta(milliseconds=_int(value, "int32", path))).time()
        if name == TIMESTAMP:
            return _EPOCH + dt.timedelta(milliseconds=_int(value, "int64", path))
        if name == ZONED:
            stamp = dt.datetime.fromisoformat(_str(value, path))
            return (stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
        if t in _INTS:
            return _int(value, t, path)
        if t in ("float", "double"):
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            if value in ("NaN", "Infinity", "-Infinity"):
                return float(value.replace("Infinity", "inf"))
            raise EnvelopeError(f"{path}: expected a number, got {_short(value)}")
        if t == "boolean":
            if isinstance(value, bool):
                return value
            raise EnvelopeError(f"{path}: expected a boolean, got {_short(value)}")
        if t == "string":
            return _str(value, path)
        if t == "bytes":
            return base64.b64decode(_str(value, path), validate=True)
        if t == "array":
            if not isinstance(value, list):
                raise EnvelopeError(f"{path}: expected an array, got {_short(value)}")
            return [from_connect(v, schema["items"], f"{path}[{i}]") for i, v in enumerate(value)]
        if t == "struct":
            if not isinstance(value, dict):
                raise EnvelopeError(f"{path}: expected an object, got {_short(value)}")
            known = {_name(f) for f in _fields(schema)}
            extra = sorted(set(value) - known)
            if extra:
                raise EnvelopeError(f"{path}: fields not in the schema: {extra}")
            return {
                _name(f): from_connect(value.get(_name(f)), f, f"{path}.{_name(f)}") for f in _fields(schema)
            }
        if t == "map":
            return json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (ValueError, InvalidOperation, OverflowError, TypeError) as e:
        if isinstance(e, EnvelopeError):
            raise
        raise EnvelopeError(f"{path}: {_short(value)} is not a valid {name or t}: {e}") from e
    raise EnvelopeError(f"{path}: unknown Connect schema type {t!r}")


def _int(value: Any, t: str, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise EnvelopeError(f"{path}: expected an {t}, got {_short(value)}")
    bits = _RANGES[t]
    if not -(1 << bits) <= value < (1 << bits):
        raise EnvelopeError(f"{path}: {value} is out of range for {t}")
    return int(value)


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise EnvelopeError(f"{path}: expected a string, got {_short(value)}")
    return value


# -- the destination's side: Arrow -> Connect


def arrow_to_connect(f: pa.Field) -> dict[str, Any]:
    """The Connect schema of one Arrow field (``field`` and ``optional`` included)."""
    out = _connect_type(f.type)
    out["optional"] = f.nullable
    out["field"] = f.name
    return out


def _connect_type(t: pa.DataType) -> dict[str, Any]:
    ints = {8: "int8", 16: "int16", 32: "int32", 64: "int64"}
    if pa.types.is_signed_integer(t):
        return {"type": ints[t.bit_width]}
    if pa.types.is_unsigned_integer(t):
        if t.bit_width == 64:
            return _decimal_schema(20, 0)
        return {"type": ints[t.bit_width * 2]}
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return {"type": "float"}
    if pa.types.is_float64(t):
        return {"type": "double"}
    if pa.types.is_boolean(t):
        return {"type": "boolean"}
    if pa.types.is_decimal(t) and t.precision <= 38:
        return _decimal_schema(t.precision, t.scale)
    if pa.types.is_date(t):
        return {"type": "int32", "name": DATE, "version": 1}
    if pa.types.is_timestamp(t):
        if t.unit in ("s", "ms"):
            return {"type": "int64", "name": TIMESTAMP, "version": 1}
        return {"type": "string", "name": ZONED, "version": 1}
    if pa.types.is_time32(t):
        return {"type": "int32", "name": TIME, "version": 1}
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return {"type": "bytes"}
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        items = _connect_type(t.value_type)
        items["optional"] = True
        return {"type": "array", "items": items}
    if pa.types.is_struct(t):
        return {"type": "struct", "fields": [arrow_to_connect(t.field(i)) for i in range(t.num_fields)]}
    return {"type": "string"}  # everything else travels as its text (or JSON) rendering


def _decimal_schema(precision: int, scale: int) -> dict[str, Any]:
    return {
        "type": "bytes",
        "name": DECIMAL,
        "version": 1,
        "parameters": {"scale": str(scale), "connect.decimal.precision": str(precision)},
    }


def to_connect(value: Any, t: pa.DataType) -> Any:
    """A Python value of Arrow type ``t`` as the payload value of its :func:`arrow_to_connect` schema."""
    if value is None:
        return None
    if pa.types.is_decimal(t) or (pa.types.is_unsigned_integer(t) and t.bit_width == 64):
        d = Decimal(value)
        scale = t.scale if pa.types.is_decimal(t) else 0
        unscaled = int(d.scaleb(scale))
        n = max(1, (unscaled.bit_length() + 8) // 8)
        return base64.b64encode(unscaled.to_bytes(n, "big", signed=True)).decode()
    if pa.types.is_date(t):
        return (value - _EPOCH_DATE).days
    if pa.types.is_timestamp(t):
        stamp = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        if t.unit in ("s", "ms"):
            return (stamp - _EPOCH) // dt.timedelta(milliseconds=1)
        return stamp.astimezone(dt.UTC).isoformat()
    if pa.types.is_time32(t):
        return (value.hour * 3600 + value.minute * 60 + value.second) * 1000 + value.microsecond // 1000
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return base64.b64encode(value).decode()
    if pa.types.is_floating(t) and isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return [to_connect(v, t.value_type) for v in value]
    if pa.types.is_struct(t):
        return {
            t.field(i).name: to_connect(value.get(t.field(i).name), t.field(i).type)
            for i in range(t.num_fields)
        }
    if isinstance(value, str | int | float | bool):
        return value
    return json_text(value)


def json_text(value: Any) -> str:
    """Text rendering of a value with no JSON type of its own."""
    if isinstance(value, dt.date | dt.time | dt.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return json.dumps(value, default=str, ensure_ascii=False)


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
