"""Fit record batches to the prepared destination schema, diverting rows that do not fit."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from openfuse_connectors.loader import QuarantinedRow

__all__ = ["cast_exact", "conform"]


def cast_exact(col: pa.Array, to: pa.DataType) -> pa.Array:
    """``pc.cast(safe=True)``, plus the exact conversions Arrow refuses by type alone.

    Arrow will not cast int64 to decimal128(10, 2) (the type could overflow) even when every
    value fits; going through decimal128(20, 0) checks the values instead.
    """
    if pa.types.is_integer(col.type) and pa.types.is_decimal(to) and to.precision - to.scale < 20:
        col = pc.cast(col, pa.decimal128(20, 0), safe=True)
    return pc.cast(col, to, safe=True)


def conform(
    batch: pa.RecordBatch,
    target: pa.Schema,
    *,
    offset: int,
    required: tuple[str, ...] = (),
) -> tuple[pa.RecordBatch, list[QuarantinedRow]]:
    """Cast ``batch`` to ``target``; return the rows that fit and the quarantined ones.

    A row is quarantined when a value cannot be cast exactly to the destination type, when it
    has a value in a column the destination does not have, or when a ``required`` (key) column
    is NULL. ``offset`` is the position of the batch's first row in the stream, so quarantined
    rows carry their position in the source.
    """
    n = batch.num_rows
    if batch.schema.equals(target, check_metadata=False):
        bad: dict[int, tuple[str, Any, str]] = {}
        columns = list(batch.columns)
    else:
        bad = {}
        columns = []
        names = batch.schema.names
        for f in target:
            if f.name in names:
                col = batch.column(f.name)
                columns.append(_cast(col, f, bad))
            else:
                columns.append(pa.nulls(n, f.type))
        for name in names:
            if target.get_field_index(name) < 0:
                col = batch.column(name)
                if col.null_count < n:
                    valid = pc.is_valid(col).to_pylist()
                    for i, ok in enumerate(valid):
                        if ok and i not in bad:
                            bad[i] = (
                                name,
                                col[i].as_py(),
                                "column is not in the destination table",
                            )
    for key in required:
        col = batch.column(key) if key in batch.schema.names else None
        if col is None:
            continue
        if col.null_count:
            for i, ok in enumerate(pc.is_valid(col).to_pylist()):
                if not ok and i not in bad:
                    bad[i] = (key, None, "primary key value is missing")
    out = pa.RecordBatch.from_arrays(columns, schema=target)
    if not bad:
        return out, []
    keep = pa.array([i not in bad for i in range(n)])
    records = batch.to_pylist()
    rows = [
        QuarantinedRow(offset + i, field, _render(value), reason, records[i])
        for i, (field, value, reason) in sorted(bad.items())
    ]
    return out.filter(keep), rows


def _cast(col: pa.Array, f: pa.Field, bad: dict[int, tuple[str, Any, str]]) -> pa.Array:
    if col.type == f.type:
        return col
    try:
        return cast_exact(col, f.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as whole:
        # Find the offending values one by one (only on this error path), null them, report them.
        values = col.to_pylist()
        fixed: list[Any] = []
        for i, v in enumerate(values):
            if v is None:
                fixed.append(None)
                continue
            try:
                fixed.append(cast_exact(pa.array([v], col.type), f.type)[0].as_py())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                bad.setdefault(
                    i, (f.name, v, f"value does not fit destination type {f.type}: {_first_line(e)}")
                )
                fixed.append(None)
        if not bad:
            raise whole
        return pa.array(fixed, f.type)


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _render(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return repr(value)
