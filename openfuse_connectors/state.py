"""Stream state: the cursor a stream has loaded up to, committed with the data.

Incremental reads are *inclusive* (``cursor >= last``) so rows that share the boundary value
and were committed after the last run are not lost; rows already loaded at exactly the boundary
value are recognised by a digest of the whole row (``boundary_keys``, a multiset) and skipped,
so they are not duplicated either; a row updated without moving its cursor has a new digest and
is loaded again.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from openfuse_connectors.errors import StateError

__all__ = ["Cursor", "StreamState", "key_digests"]


class Cursor(BaseModel):
    """A typed cursor value, stored as Arrow's canonical string rendering plus the Arrow type."""

    model_config = ConfigDict(frozen=True)

    field: str
    type: str
    value: str

    @classmethod
    def from_scalar(cls, field: str, scalar: pa.Scalar) -> Cursor:
        # Cast in Arrow, not via Python objects: nanosecond timestamps have no exact Python value.
        text = scalar.cast(pa.string()).as_py()
        return cls(field=field, type=str(scalar.type), value=text)

    def arrow_type(self) -> pa.DataType:
        return _parse_type(self.type)

    def to_scalar(self) -> pa.Scalar:
        try:
            return pa.array([self.value], pa.string()).cast(self.arrow_type())[0]
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise StateError(
                f"stored cursor {self.field}={self.value!r} is not a valid {self.type}: {e}"
            ) from e

    def as_py(self) -> Any:
        return self.to_scalar().as_py()


class StreamState(BaseModel):
    """What one stream has committed in the destination."""

    model_config = ConfigDict(frozen=True)

    cursor: Cursor | None = None
    boundary_keys: tuple[str, ...] = Field(
        default=(), description="Digests of the rows loaded at exactly the cursor value."
    )
    extra: dict[str, Any] = Field(default_factory=dict, description="Connector-specific state.")

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes | None) -> StreamState | None:
        if not text:
            return None
        try:
            return cls.model_validate_json(text)
        except ValueError as e:
            raise StateError(f"stored stream state is not readable: {e}") from e


def key_digests(batch: pa.RecordBatch | pa.Table, key: list[str]) -> list[str]:
    """Stable digests of each row's values in the ``key`` columns.

    Columns are taken in name order and values by their text rendering, so the same row digests
    the same whether a source delivered a value typed (``2``) or as text (``"2"``), and whatever
    the column order.
    """
    names = sorted(key)
    cols = [batch.column(k).to_pylist() for k in names]
    out = []
    for row in zip(*cols, strict=True):
        text = json.dumps(names + [None if v is None else str(v) for v in row])
        out.append(hashlib.blake2b(text.encode(), digest_size=12).hexdigest())
    return out


def max_scalar(column: pa.Array | pa.ChunkedArray) -> pa.Scalar:
    return pc.max(column)


_SIMPLE: dict[str, pa.DataType] = {
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "string": pa.string(),
    "large_string": pa.large_string(),
    "date32[day]": pa.date32(),
    "date64[ms]": pa.date64(),
    "bool": pa.bool_(),
}


def _parse_type(text: str) -> pa.DataType:
    if text in _SIMPLE:
        return _SIMPLE[text]
    if text.startswith("timestamp["):
        inner = text[len("timestamp[") : -1]
        unit, _, tz = inner.partition(",")
        tz = tz.strip()
        return pa.timestamp(unit.strip(), tz=tz[len("tz=") :] if tz.startswith("tz=") else None)
    if text.startswith("decimal128("):
        p, s = text[len("decimal128(") : -1].split(",")
        return pa.decimal128(int(p), int(s))
    raise StateError(f"unsupported cursor type {text!r}; use a timestamp, date, integer or string cursor")
