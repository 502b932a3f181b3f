"""What a source offers: streams with their Arrow schema, keys and candidate cursor fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

__all__ = ["StreamInfo", "schema_to_json"]


@dataclass(frozen=True)
class StreamInfo:
    """One stream in a source's catalog.

    Attributes:
        name: the stream name used in pipeline files (e.g. ``public.orders``).
        schema: Arrow schema of the records. Field metadata may carry the native type under
            ``b"openfuse.native_type"`` so a like-for-like destination can recreate it exactly.
        primary_key: columns of the primary key, empty when the source has none.
        cursor_candidates: columns that are monotonic-looking (timestamps, integers) and so usable
            as ``cursor_field``.
    """

    name: str
    schema: pa.Schema
    primary_key: tuple[str, ...] = ()
    cursor_candidates: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "columns": schema_to_json(self.schema),
            "primary_key": list(self.primary_key),
            "cursor_candidates": list(self.cursor_candidates),
        }


NATIVE_TYPE = b"openfuse.native_type"


def native_type(f: pa.Field) -> str | None:
    md = f.metadata or {}
    raw = md.get(NATIVE_TYPE)
    return raw.decode() if raw else None


def schema_to_json(schema: pa.Schema) -> list[dict[str, Any]]:
    return [
        {"name": f.name, "type": str(f.type), "nullable": f.nullable, "native_type": native_type(f)}
        for f in schema
    ]


def cursor_candidates(schema: pa.Schema) -> tuple[str, ...]:
    """Columns whose type can order rows: timestamps, dates and integers."""
    out = []
    for f in schema:
        t = f.type
        if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_integer(t):
            out.append(f.name)
    return tuple(out)
