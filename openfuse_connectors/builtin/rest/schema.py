"""JSON records to Arrow: type names, schema inference, and record batches that never refuse a value.

Inference (when a resource has no explicit ``schema``) looks at the records of the first page(s):

* booleans -> ``bool``; integers -> ``int64``; integers mixed with decimals -> ``double``;
* strings that all parse as ISO 8601 date-times with an offset (``2024-01-01T10:00:00Z``) ->
  ``timestamp[us, tz=UTC]``, without one -> ``timestamp[us]``; ``YYYY-MM-DD`` -> ``date32``;
* objects and arrays -> their JSON text (``string``); anything mixed or only null -> ``string``.

Every column is nullable: a record missing a field (even its primary key) gets NULL there, and the
engine quarantines rows whose key is NULL instead of this source dropping them.

Building batches never fails on a value: records holding a value that does not convert to its
column's type are handed over in a batch of their own where that column is text, and the
engine's ``conform()`` casts it to the destination type, quarantining exactly those rows (with
field, value and reason). Strings that hold a number are numbers (``"5"`` fits ``int64``), and
``2.0`` fits an integer column; ``2.5`` does not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["infer_schema", "infer_type", "parse_type", "to_batches"]

_ALIASES: dict[str, pa.DataType] = {
    "json": pa.string(),
    "text": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
_TIMESTAMP = re.compile(r"^timestamp\[\s*(s|ms|us|ns)\s*(?:,\s*tz\s*=\s*([^\]\s]+)\s*)?\]$")
_DECIMAL = re.compile(r"^decimal(?:128)?\(\s*(\d+)\s*,\s*(\d+)\s*\)$")


def parse_type(text: str) -> pa.DataType:
    """An Arrow type from its name: Arrow's aliases (``int64``, ``string``, ``date32``, ``float64``),
    ``timestamp[us]``, ``timestamp[us, tz=UTC]``, ``decimal128(12, 2)``, plus ``json`` (JSON text)."""
    name = text.strip()
    low = name.lower()
    if low in _ALIASES:
        return _ALIASES[low]
    if m := _TIMESTAMP.match(name):
        return pa.timestamp(m.group(1), tz=m.group(2))
    if m := _DECIMAL.match(low):
        precision, scale = int(m.group(1)), int(m.group(2))
        if not 1 <= precision <= 38 or scale > precision:
            raise ValueError(f"decimal precision must be 1..38 and scale <= precision, got {name!r}")
        return pa.decimal128(precision, scale)
    try:
        return pa.type_for_alias(low)
    except ValueError:
        raise ValueError(
            f"unknown Arrow type name {name!r}; use e.g. int64, double, bool, string, json, date32, "
            "timestamp[us, tz=UTC], decimal128(12, 2)"
        ) from None


_ISO_TZ = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})$")
_ISO_NAIVE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INT64 = (-(2**63), 2**63 - 1)


def infer_type(values: Iterable[Any]) -> pa.DataType:
    """The Arrow type for the non-null JSON values of one field (see the module docstring)."""
    seen = [v for v in values if v is not None]
    if not seen:
        return pa.string()
    if all(isinstance(v, bool) for v in seen):
        return pa.bool_()
    if all(isinstance(v, int) and not isinstance(v, bool) for v in seen):
        return pa.int64() if all(_INT64[0] <= v <= _INT64[1] for v in seen) else pa.string()
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in seen):
        return pa.float64()
    if all(isinstance(v, str) for v in seen):
        for pattern, typ in (
            (_ISO_TZ, pa.timestamp("us", tz="UTC")),
            (_ISO_NAIVE, pa.timestamp("us")),
            (_ISO_DATE, pa.date32()),
        ):
            if all(pattern.match(v) for v in seen) and _casts(seen, typ):
                return typ
    return pa.string()


def infer_schema(
    records: list[dict[str, Any]],
    *,
    explicit: dict[str, pa.DataType] | None = None,
    required: Iterable[str] = (),
) -> pa.Schema:
    """A schema for ``records``: ``explicit`` types as given (all of them, in their order), other
    fields inferred in first-seen order when ``explicit`` is None. ``required`` names (key and
    cursor columns) are added as ``string`` if no record has them, so NULL keys stay visible."""
    fields: list[pa.Field] = []
    if explicit is not None:
        fields = [pa.field(n, t) for n, t in explicit.items()]
    else:
        names: dict[str, None] = {}
        for r in records:
            for k in r:
                names.setdefault(k, None)
        fields = [pa.field(n, infer_type(r.get(n) for r in records)) for n in names]
    have = {f.name for f in fields}
    fields += [pa.field(n, pa.string()) for n in dict.fromkeys(required) if n not in have]
    return pa.schema(fields)


def to_batches(records: list[dict[str, Any]], schema: pa.Schema, *, keep_extra: bool) -> list[pa.RecordBatch]:
    """``records`` as Arrow: ``schema``'s columns (NULL where a record lacks the field), then, if
    ``keep_extra``, fields not in the schema (types inferred from these records).

    Records with a value that does not convert to its column's type come last, in a batch of
    their own where such columns are text. The first batch stays fully typed, so a row's values
    (and the digest the engine keeps of rows at the cursor boundary) do not depend on whether a
    misfit shared its page.
    """
    fields = list(schema)
    if keep_extra:
        known = set(schema.names)
        extra: dict[str, None] = {}
        for r in records:
            if len(r) > len(known) or not known.issuperset(r):
                for k in r:
                    if k not in known:
                        extra.setdefault(k, None)
        fields += [pa.field(k, infer_type(r.get(k) for r in records)) for k in extra]
    arrays = []
    bad: set[int] = set()
    for f in fields:
        arr, misfits = _typed([r.get(f.name) for r in records], f.type)
        arrays.append(arr)
        bad |= misfits
    typed = pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))
    if not bad:
        return [typed]
    out = []
    if len(bad) < len(records):
        out.append(typed.filter(pa.array([i not in bad for i in range(len(records))])))
    rest = [records[i] for i in sorted(bad)]
    texts = []
    for f in fields:
        values = _exact([r.get(f.name) for r in rest], f.type)
        arr, misfits = _typed(values, f.type)
        texts.append(pa.array([_text(v) for v in values], pa.string()) if misfits else arr)
    out.append(pa.RecordBatch.from_arrays(texts, names=[f.name for f in fields]))
    return out


_VIA_TEXT = (pa.types.is_temporal, pa.types.is_decimal, pa.types.is_binary, pa.types.is_large_binary)


def _typed(values: list[Any], typ: pa.DataType) -> tuple[pa.Array, set[int]]:
    """``values`` as a ``typ`` array, and the positions of values that do not convert exactly
    (NULL in the array)."""
    if pa.types.is_integer(typ):
        values = _exact(values, typ)
        # pyarrow would truncate 1.5 into an integer column silently: floats go the checked way.
        direct = not any(type(v) is float for v in values)
    else:
        direct = not any(t(typ) for t in _VIA_TEXT)
    if direct:
        try:
            return pa.array(values, typ), set()
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
            pass
    text = [_text(v) for v in values]
    if typ == pa.string():
        return pa.array(text, pa.string()), set()
    try:
        return pc.cast(pa.array(text, pa.string()), typ, safe=True), set()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    bad = {i for i, t in enumerate(text) if t is not None and not _casts([t], typ)}
    kept = [None if i in bad else t for i, t in enumerate(text)]
    return pc.cast(pa.array(kept, pa.string()), typ, safe=True), bad


def _exact(values: list[Any], typ: pa.DataType) -> list[Any]:
    """Integral floats (``2.0``) as ints for an integer column: the value is exact."""
    if not pa.types.is_integer(typ):
        return values
    return [int(v) if type(v) is float and v.is_integer() else v for v in values]


def _text(v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"))


def _casts(values: list[str], typ: pa.DataType) -> bool:
    try:
        pc.cast(pa.array(values, pa.string()), typ, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True
