"""Schema drift: compare the source schema with the destination and decide what to do.

* ``evolve``: add new columns, widen types to one that holds both (never narrower, never lossy).
* ``freeze``: any difference fails the stream with a readable diff.
* ``quarantine``: keep the destination schema; rows that do not fit go to the quarantine table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from openfuse_connectors.errors import SchemaDriftError
from openfuse_connectors.spec import SchemaDrift

__all__ = ["DriftPlan", "plan_schema", "widen"]


@dataclass
class DriftPlan:
    target: pa.Schema
    changes: list[str] = field(default_factory=list)


_INT_ORDER = [pa.int8(), pa.int16(), pa.int32(), pa.int64()]


def widen(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """The narrowest type that holds every value of both ``a`` and ``b`` exactly."""
    if a == b:
        return a
    if pa.types.is_signed_integer(a) and pa.types.is_signed_integer(b):
        return max(a, b, key=_INT_ORDER.index)
    if pa.types.is_floating(a) and pa.types.is_floating(b):
        return pa.float64()
    if pa.types.is_decimal(a) and pa.types.is_decimal(b):
        scale = max(a.scale, b.scale)
        ints = max(a.precision - a.scale, b.precision - b.scale)
        if ints + scale <= 38:
            return pa.decimal128(ints + scale, scale)
        return pa.string()
    if {str(a), str(b)} <= {"string", "large_string"}:
        return pa.large_string()
    if (pa.types.is_decimal(a) and pa.types.is_integer(b)) or (
        pa.types.is_integer(a) and pa.types.is_decimal(b)
    ):
        d = a if pa.types.is_decimal(a) else b
        ints = max(d.precision - d.scale, 19)
        if ints + d.scale <= 38:
            return pa.decimal128(ints + d.scale, d.scale)
    if pa.types.is_date(a) and pa.types.is_timestamp(b):
        return b
    if pa.types.is_timestamp(a) and pa.types.is_date(b):
        return a
    # No exact common numeric/temporal type: text holds every value's rendering exactly.
    return pa.string()


def plan_schema(
    stream: str,
    source: pa.Schema,
    existing: pa.Schema | None,
    policy: SchemaDrift,
    *,
    replace: bool,
    storage_type: Callable[[pa.DataType], pa.DataType] = lambda t: t,
) -> DriftPlan:
    """Decide the schema to prepare in the destination.

    Args:
        stream: for messages.
        source: the schema the rows arrive with (after transforms).
        existing: the destination table's schema, None if it does not exist yet.
        policy: the pipeline's drift policy.
        replace: the load replaces the table (full refresh overwrite).
        storage_type: the loader's mapping of an Arrow type to the type it reads back, so a
            lossless round trip (e.g. int32 stored as SQLite INTEGER -> int64) is not drift.
    """
    if existing is None:
        return DriftPlan(source)
    ex = {f.name: f for f in existing}
    src = {f.name: f for f in source}
    added = [f for f in source if f.name not in ex]
    removed = [f for f in existing if f.name not in src]
    changed = [
        (f, ex[f.name]) for f in source if f.name in ex and not _same(storage_type(f.type), ex[f.name].type)
    ]
    diff = (
        [f"+ {f.name}: {f.type} (new column in source)" for f in added]
        + [f"- {f.name}: {f.type} (no longer in source)" for f in removed]
        + [f"~ {s.name}: {d.type} in destination, {s.type} in source" for s, d in changed]
    )
    if policy == SchemaDrift.FREEZE and diff:
        raise SchemaDriftError(stream, diff)
    if policy == SchemaDrift.QUARANTINE:
        return DriftPlan(existing, diff)
    if replace:
        return DriftPlan(source, diff)
    fields: list[pa.Field] = []
    for f in existing:
        if f.name in src:
            s = src[f.name]
            if _same(storage_type(s.type), f.type):
                # The destination already stores this type: keep the source's, the loader maps it.
                fields.append(pa.field(f.name, s.type, f.nullable, s.metadata))
                continue
            t = widen(f.type, s.type)
            fields.append(pa.field(f.name, t, True, s.metadata if t == s.type else f.metadata))
        else:
            fields.append(f.with_nullable(True))
    fields.extend(f.with_nullable(True) for f in added)
    return DriftPlan(pa.schema(fields), diff)


def _same(a: pa.DataType, b: pa.DataType) -> bool:
    if a == b:
        return True
    strings = {"string", "large_string"}
    return str(a) in strings and str(b) in strings
