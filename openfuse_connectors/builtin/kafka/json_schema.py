"""The subset of JSON Schema the Kafka source validates plain JSON messages against.

Supported: ``type`` (one or a list, including ``"null"``), ``properties``, ``required``,
``additionalProperties`` (true/false), ``items``, ``enum``, ``const``, ``minimum``/``maximum``,
``minLength``/``maxLength``, ``pattern`` and ``format`` (``date`` and ``date-time`` are checked
and typed; other formats are annotations). Annotations (``title``, ``description``,
``$schema``, ``$id``, ``default``, ``examples``) are ignored. Anything else (``$ref``,
``oneOf``, ``allOf``, ...) is refused when the config is loaded, rather than silently ignored.

Kept in-house (about a hundred lines) instead of adding the ``jsonschema`` dependency.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pyarrow as pa

__all__ = ["arrow_fields", "check_schema", "validate"]

_ANNOTATIONS = frozenset({"title", "description", "$schema", "$id", "$comment", "default", "examples"})
_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "format",
    }
)
_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean", "null"})


def check_schema(schema: Any, path: str = "$") -> str | None:
    """A reason the schema uses something this validator does not support, or None."""
    if not isinstance(schema, dict):
        return f"{path}: a schema must be an object"
    unknown = sorted(set(schema) - _KEYWORDS - _ANNOTATIONS)
    if unknown:
        return (
            f"{path}: unsupported JSON Schema keyword(s) {unknown}; supported: {sorted(_KEYWORDS)} "
            "(or use the json format, or Kafka Connect envelopes)"
        )
    types = _types(schema)
    if types is not None and not set(types) <= _TYPES:
        return f"{path}: unknown type(s) {sorted(set(types) - _TYPES)}"
    if "additionalProperties" in schema and not isinstance(schema["additionalProperties"], bool):
        return f"{path}: additionalProperties must be true or false"
    for name, sub in (schema.get("properties") or {}).items():
        problem = check_schema(sub, f"{path}.{name}")
        if problem:
            return problem
    if "items" in schema:
        return check_schema(schema["items"], f"{path}[]")
    if "pattern" in schema:
        try:
            re.compile(schema["pattern"])
        except re.error as e:
            return f"{path}: pattern {schema['pattern']!r} is not a regular expression: {e}"
    return None


def _types(schema: dict[str, Any]) -> list[str] | None:
    t = schema.get("type")
    if t is None:
        return None
    return [t] if isinstance(t, str) else list(t)


def _is(value: Any, t: str) -> bool:
    if t == "null":
        return value is None
    if t == "boolean":
        return isinstance(value, bool)
    if t == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if t == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if t == "string":
        return isinstance(value, str)
    if t == "array":
        return isinstance(value, list)
    return isinstance(value, dict)  # object


def validate(value: Any, schema: dict[str, Any], path: str = "$") -> str | None:
    """The first way ``value`` breaks ``schema`` (with its JSON path), or None when it is valid."""
    types = _types(schema)
    if types is not None and not any(_is(value, t) for t in types):
        return f"{path}: expected {' or '.join(types)}, got {_kind(value)}"
    if "const" in schema and value != schema["const"]:
        return f"{path}: must be {schema['const']!r}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{path}: {value!r} is not one of {schema['enum']!r}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{path}: {value} is less than the minimum {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{path}: {value} is more than the maximum {schema['maximum']}"
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            return f"{path}: shorter than {schema['minLength']} characters"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"{path}: longer than {schema['maxLength']} characters"
        if "pattern" in schema and not re.search(schema["pattern"], value):
            return f"{path}: does not match {schema['pattern']!r}"
        fmt = schema.get("format")
        if fmt in ("date", "date-time") and parse_format(value, fmt) is None:
            return f"{path}: {value!r} is not a valid {fmt}"
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for name in schema.get("required") or ():
            if name not in value:
                return f"{path}: required property {name!r} is missing"
        if schema.get("additionalProperties") is False:
            extra = sorted(set(value) - set(props))
            if extra:
                return f"{path}: properties not allowed by the schema: {extra}"
        for name, sub in props.items():
            if name in value:
                problem = validate(value[name], sub, f"{path}.{name}")
                if problem:
                    return problem
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problem = validate(item, schema["items"], f"{path}[{i}]")
            if problem:
                return problem
    return None


def parse_format(value: str, fmt: str) -> dt.date | dt.datetime | None:
    """A ``date`` or ``date-time`` string as a Python value (date-times in UTC), or None."""
    try:
        if fmt == "date":
            return dt.date.fromisoformat(value)
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        return None  # RFC 3339 date-times carry an offset
    return stamp.astimezone(dt.UTC)


def arrow_type(schema: dict[str, Any]) -> pa.DataType:
    """The Arrow type of a property: objects and arrays are kept as JSON text."""
    types = [t for t in (_types(schema) or []) if t != "null"]
    if len(types) != 1:
        return pa.string()
    t = types[0]
    if t == "integer":
        return pa.int64()
    if t == "number":
        return pa.float64()
    if t == "boolean":
        return pa.bool_()
    if t == "string":
        fmt = schema.get("format")
        if fmt == "date-time":
            return pa.timestamp("us", tz="UTC")
        if fmt == "date":
            return pa.date32()
    return pa.string()


def arrow_fields(schema: dict[str, Any]) -> list[pa.Field]:
    """One nullable Arrow field per top-level property, in declared order."""
    return [pa.field(name, arrow_type(sub)) for name, sub in (schema.get("properties") or {}).items()]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"
