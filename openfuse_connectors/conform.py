"""Fit record batches to the prepared destination schema, diverting rows that do not fit."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from openfuse_connectors.loader import QuarantinedRow

__all__ = ["ValueCheck", "cast_exact", "conform", "float_exact", "outside_iso_years"]

#: A destination's check of one conformed column (already of its target type): row -> (the value
#: as text, why the destination cannot store it exactly). Such rows are quarantined.
ValueCheck = Callable[[pa.Array, pa.Field], dict[int, tuple[str, str]]]


def cast_exact(col: pa.Array, to: pa.DataType) -> pa.Array:
    """``pc.cast(safe=True)``, plus the exact conversions Arrow refuses by type alone.

    Arrow will not cast int64 to decimal128(10, 2) (the type could overflow) even when every
    value fits; going through decimal128(20, 0) checks the values instead. And Arrow parses text
    into float64 whatever its number of digits, rounding without a word; text that float64 does
    not hold exactly (``"0.1000000000000000000001"``) does not fit here.
    """
    if pa.types.is_integer(col.type) and pa.types.is_decimal(to) and to.precision - to.scale < 20:
        col = pc.cast(col, pa.decimal128(20, 0), safe=True)
    out = pc.cast(col, to, safe=True)
    if pa.types.is_float64(to) and (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        inexact = _inexact_floats(col, out)
        if inexact:
            raise pa.ArrowInvalid(f"float64 does not hold {col[inexact[0]].as_py()!r} exactly")
    return out


def float_exact(d: Decimal) -> bool:
    """Whether a float64 holds the number ``d`` exactly, as its shortest text (0.1 yes,
    0.1000000000000000000001 no); NaN and ±infinity are floats."""
    if not d.is_finite():
        return True
    f = float(d)
    return math.isfinite(f) and Decimal(repr(f)) == d


def _inexact_floats(text: pa.Array, cast: pa.Array) -> list[int]:
    """Rows whose text the float64 it parsed into does not hold exactly."""
    # Text equal to the float's shortest form is exact; only the rest ("1.50", "0.0000000001",
    # too many digits) is compared as numbers, one by one.
    same = pc.equal(pc.cast(cast, text.type), pc.utf8_lower(pc.utf8_trim_whitespace(text)))
    out = []
    for i in pc.indices_nonzero(pc.invert(pc.fill_null(same, True))).to_pylist():
        raw = text[i].as_py().strip()
        try:
            ok = float_exact(Decimal(raw))
        except InvalidOperation:
            ok = raw.lower().lstrip("+-") in ("inf", "infinity", "nan")
        if not ok:
            out.append(i)
    return out


def conform(
    batch: pa.RecordBatch,
    target: pa.Schema,
    *,
    offset: int,
    required: tuple[str, ...] = (),
    check: ValueCheck | None = None,
) -> tuple[pa.RecordBatch, list[QuarantinedRow]]:
    """Cast ``batch`` to ``target``; return the rows that fit and the quarantined ones.

    A row is quarantined when a value cannot be cast exactly to the destination type, when it
    has a value in a column the destination does not have, or when a ``required`` (key) column
    is NULL. ``offset`` is the position of the batch's first row in the stream, so quarantined
    rows carry their position in the source. ``check`` is the destination's own test of the
    conformed values (a value of the right Arrow type it still cannot store exactly, such as a
    timestamp beyond year 9999 in a format that keeps ISO 8601 text).
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
    if check is not None:
        for f, col in zip(target, columns, strict=True):
            for i, (text, why) in sorted(check(col, f).items()):
                bad.setdefault(i, (f.name, text, f"value does not fit destination type {f.type}: {why}"))
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
    rows = [
        QuarantinedRow(offset + i, field, _render(value), reason, _record(batch, i))
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


def _record(batch: pa.RecordBatch, i: int) -> dict[str, Any]:
    """Row ``i`` as a dict; a value Python cannot hold (a timestamp beyond year 9999) as its text."""
    row = batch.slice(i, 1)
    try:
        return row.to_pylist()[0]
    except (OverflowError, ValueError):
        return {f.name: _py(col) for f, col in zip(row.schema, row.columns, strict=True)}


def _py(one: pa.Array) -> Any:
    try:
        return one[0].as_py()
    except (OverflowError, ValueError):
        if pa.types.is_timestamp(one.type) or pa.types.is_date(one.type):
            return _raw_temporal(one.type, one.view(_STORAGE[one.type.bit_width])[0].as_py())
        return str(one[0])


_STORAGE = {32: pa.int32(), 64: pa.int64()}
#: 0001-01-01 and 9999-12-31 in days since 1970-01-01 (the years ISO 8601 text and Python hold).
_MIN_DAY, _MAX_DAY = -719_162, 2_932_896
_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


def _raw_temporal(t: pa.DataType, n: int) -> str:
    unit = "days" if pa.types.is_date32(t) else t.unit
    return f"{n} {unit} from 1970-01-01 (outside years 1..9999)"


def outside_iso_years(col: pa.Array, f: pa.Field) -> dict[int, tuple[str, str]]:
    """Dates and timestamps outside years 1..9999, which have no ISO 8601 text (a :data:`ValueCheck`).

    Arrow holds them (a DuckDB or PostgreSQL ``infinity`` arrives as the largest int64), but a
    destination that stores dates as text cannot write them, nor read them back.
    """
    t = col.type
    if pa.types.is_date32(t):
        lo, hi = _MIN_DAY, _MAX_DAY
    elif pa.types.is_date64(t):
        lo, hi = _MIN_DAY * _PER_DAY["ms"], (_MAX_DAY + 1) * _PER_DAY["ms"] - 1
    elif pa.types.is_timestamp(t):
        per = _PER_DAY[t.unit]
        lo, hi = max(_MIN_DAY * per, -(2**63)), min((_MAX_DAY + 1) * per - 1, 2**63 - 1)
    else:
        return {}
    ints = col.view(_STORAGE[t.bit_width])
    outside = pc.or_(pc.less(ints, lo), pc.greater(ints, hi))
    rows = pc.indices_nonzero(pc.fill_null(outside, False)).to_pylist()
    why = "no ISO 8601 text for a year outside 1..9999"
    return {i: (_raw_temporal(t, ints[i].as_py()), why) for i in rows}


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
