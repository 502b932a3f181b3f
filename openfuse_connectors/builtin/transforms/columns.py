"""Column-shape transforms: select, drop, rename, cast."""

from __future__ import annotations

import contextlib
import re

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from openfuse_connectors.conform import cast_exact
from openfuse_connectors.errors import ConfigError
from openfuse_connectors.transformer import Transformer


class _Columns(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    columns: list[str] = Field(min_length=1)


class _Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    columns: dict[str, str] = Field(min_length=1)


def require(transform: str, schema: pa.Schema, names: list[str] | tuple[str, ...]) -> None:
    """Fail early, naming the transform and column, when a column is not in the stream."""
    for n in names:
        if schema.get_field_index(n) < 0:
            raise ConfigError(
                f"transform {transform!r}: column {n!r} is not in the stream (columns: {', '.join(schema.names)})",
                field=f"transforms[{transform}].columns",
                value=n,
            )


class Select(Transformer):
    """Keep only these columns, in this order."""

    name = "select"
    row_level = False
    options_model = _Columns
    opts: _Columns

    def transform_schema(self, schema: pa.Schema) -> pa.Schema:
        require(self.name, schema, self.opts.columns)
        return pa.schema([schema.field(c) for c in self.opts.columns])

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return batch.select(self.opts.columns)


class Drop(Transformer):
    """Remove columns."""

    name = "drop"
    row_level = False
    options_model = _Columns
    opts: _Columns

    def transform_schema(self, schema: pa.Schema) -> pa.Schema:
        require(self.name, schema, self.opts.columns)
        return pa.schema([f for f in schema if f.name not in self.opts.columns])

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return batch.drop_columns(self.opts.columns)


class Rename(Transformer):
    """Rename columns: ``columns: {old: new}``."""

    name = "rename"
    row_level = False
    options_model = _Mapping
    opts: _Mapping

    def transform_schema(self, schema: pa.Schema) -> pa.Schema:
        require(self.name, schema, list(self.opts.columns))
        names = [self.opts.columns.get(n, n) for n in schema.names]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ConfigError(
                f"transform 'rename': two columns would be named {sorted(dup)}",
                field="transforms[rename].columns",
                value=sorted(dup)[0],
            )
        return pa.schema([f.with_name(self.opts.columns.get(f.name, f.name)) for f in schema])

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return batch.rename_columns([self.opts.columns.get(n, n) for n in batch.schema.names])


_SIMPLE: dict[str, pa.DataType] = {
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "double": pa.float64(),
    "float": pa.float32(),
    "string": pa.string(),
    "text": pa.string(),
    "bool": pa.bool_(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "binary": pa.binary(),
    "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}


def parse_type(text: str, *, field: str) -> pa.DataType:
    """`int64`, `decimal(12,2)`, `timestamp[us, tz=UTC]`, ... -> Arrow type; ConfigError otherwise."""
    t = text.strip().lower().replace(" ", "")
    if t in _SIMPLE:
        return _SIMPLE[t]
    m = re.fullmatch(r"decimal(?:128)?\((\d+),(\d+)\)", t)
    if m and 1 <= int(m.group(1)) <= 38 and int(m.group(2)) <= int(m.group(1)):
        return pa.decimal128(int(m.group(1)), int(m.group(2)))
    m = re.fullmatch(r"timestamp\[(s|ms|us|ns)(?:,tz=([a-z0-9_/+:-]+))?\]", t)
    if m:
        tz = text[text.lower().index("tz=") + 3 : -1].strip() if m.group(2) else None
        return pa.timestamp(m.group(1), tz=tz)
    raise ConfigError(
        f"unknown type {text!r}; use int8..int64, uint8..uint64, float32, float64, string, bool, date, time, "
        "timestamp, timestamptz, timestamp[us, tz=UTC], decimal(p,s), binary",
        field=field,
        value=text,
    )


class Cast(Transformer):
    """Change column types: ``columns: {amount: "decimal(12,2)"}``.

    Values that do not convert are not altered here: the engine quarantines those rows (with the
    field, value and position) when it fits the batch to the declared type.
    """

    name = "cast"
    options_model = _Mapping
    opts: _Mapping

    def transform_schema(self, schema: pa.Schema) -> pa.Schema:
        require(self.name, schema, list(self.opts.columns))
        self.types = {
            c: parse_type(t, field=f"transforms[cast].columns.{c}") for c, t in self.opts.columns.items()
        }
        return pa.schema(
            [
                f.with_type(self.types[f.name]).with_metadata(None) if f.name in self.types else f
                for f in schema
            ]
        )

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        cols = []
        for name, col in zip(batch.schema.names, batch.columns, strict=True):
            t = self.types.get(name)
            if t is not None and col.type != t:
                # Left as is when it fails: conform() quarantines exactly the values that do not fit.
                with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    col = cast_exact(col, t)
            cols.append(col)
        return pa.RecordBatch.from_arrays(cols, names=batch.schema.names)
