"""PostgreSQL text renderings -> JSON values, the way Debezium's PostgreSQL connector writes them.

Debezium settings this matches (with Kafka Connect's JsonConverter, ``schemas.enable=false``):

=====================  ==========================================  ==============================
PostgreSQL             JSON                                        Debezium setting / type
=====================  ==========================================  ==============================
smallint/int/bigint    number                                      INT16/INT32/INT64
real/double            number; ``"NaN"``/``"Infinity"`` as text     FLOAT32/FLOAT64
numeric                string, exact                               ``decimal.handling.mode=string``
boolean                true/false                                  BOOLEAN
date                   days since 1970-01-01                       ``io.debezium.time.Date``
timestamp              microseconds since the epoch                ``io.debezium.time.MicroTimestamp``
timestamptz            ISO 8601 string in UTC, ``...Z``            ``io.debezium.time.ZonedTimestamp``
time                   microseconds since midnight                 ``io.debezium.time.MicroTime``
timetz                 ISO 8601 string in UTC                      ``io.debezium.time.ZonedTime``
interval               ISO 8601 duration string                    ``interval.handling.mode=string``
bytea                  base64 string                               ``binary.handling.mode=bytes``
json/jsonb/uuid/text   string                                      ``io.debezium.data.Json``/``Uuid``
1-D arrays of these    JSON array                                  ARRAY
anything else          PostgreSQL's text rendering                 (enums, ranges, inet, money...)
=====================  ==========================================  ==============================

Values that have no such form (``infinity`` timestamps, BC dates, years past 9999, arrays with
bounds) are sent as PostgreSQL's text rendering rather than guessed. The renderings come from
sessions with ``TimeZone=UTC``, ``DateStyle=ISO`` and ``IntervalStyle=iso_8601`` (see
:data:`SESSION_OPTIONS`).
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from typing import Any

__all__ = ["SESSION_OPTIONS", "UNAVAILABLE", "converter"]

#: GUCs of every source session (stream and snapshot) and of the SQL destination session, so
#: the text renderings are the same on both sides and parse back exactly.
SESSION_OPTIONS = "-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=iso_8601 -c extra_float_digits=3"

#: Debezium's placeholder for an unchanged TOASTed value it was not sent.
UNAVAILABLE = "__debezium_unavailable_value"

Convert = Callable[[str], Any]

_EPOCH_DATE = dt.date(1970, 1, 1)
_EPOCH = dt.datetime(1970, 1, 1)


def _bool(v: str) -> Any:
    return v == "t"


def _float(v: str) -> Any:
    f = float(v)
    return v if f != f or f in (float("inf"), float("-inf")) else f


def _date(v: str) -> Any:
    try:
        return (dt.date.fromisoformat(v) - _EPOCH_DATE).days
    except ValueError:
        return v  # infinity, BC, beyond year 9999


def _timestamp(v: str) -> Any:
    try:
        d = dt.datetime.fromisoformat(v) - _EPOCH
    except ValueError:
        return v
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


def _timestamptz(v: str) -> Any:
    try:
        t = dt.datetime.fromisoformat(v)
    except ValueError:
        return v
    t = t.astimezone(dt.UTC)
    return t.replace(tzinfo=None).isoformat() + "Z"


def _time(v: str) -> Any:
    try:
        hh, mm, rest = v.split(":")
        sec, _, frac = rest.partition(".")
        return ((int(hh) * 60 + int(mm)) * 60 + int(sec)) * 1_000_000 + int((frac + "000000")[:6])
    except ValueError:
        return v


def _timetz(v: str) -> Any:
    # "10:11:12.5+00" -> "10:11:12.5Z"; other offsets are converted to UTC.
    for i in range(len(v) - 1, 0, -1):
        if v[i] in "+-":
            clock, offset = v[:i], v[i:]
            break
    else:
        return v
    try:
        sign = -1 if offset[0] == "-" else 1
        parts = [int(p) for p in offset[1:].split(":")] + [0, 0]
        shift = sign * (parts[0] * 3600 + parts[1] * 60 + parts[2])
        micros = _time(clock)
        if not isinstance(micros, int):
            return v
        utc = (micros - shift * 1_000_000) % 86_400_000_000
        t = (dt.datetime(2000, 1, 1) + dt.timedelta(microseconds=utc)).time()
        return t.isoformat() + "Z"
    except (ValueError, IndexError):
        return v


def _bytea(v: str) -> Any:
    if v.startswith("\\x"):
        return base64.b64encode(bytes.fromhex(v[2:])).decode("ascii")
    return v


def _text(v: str) -> Any:
    return v


def _array(element: Convert) -> Convert:
    def convert(v: str) -> Any:
        parsed = parse_array(v)
        if parsed is None:
            return v
        return _map(parsed, element)

    return convert


def _map(items: list[Any], element: Convert) -> list[Any]:
    return [None if x is None else _map(x, element) if isinstance(x, list) else element(x) for x in items]


def parse_array(text: str) -> list[Any] | None:
    """Parse PostgreSQL's array text output (``{1,NULL,"a b",{2,3}}``); None when it has bounds."""
    if not text.startswith("{"):
        return None  # "[1:3]={...}": explicit bounds, kept as text
    pos = 0

    def parse() -> list[Any]:
        nonlocal pos
        assert text[pos] == "{"
        pos += 1
        out: list[Any] = []
        if text[pos] == "}":
            pos += 1
            return out
        while True:
            ch = text[pos]
            if ch == "{":
                out.append(parse())
            elif ch == '"':
                pos += 1
                buf = []
                while text[pos] != '"':
                    if text[pos] == "\\":
                        pos += 1
                    buf.append(text[pos])
                    pos += 1
                pos += 1
                out.append("".join(buf))
            else:
                start = pos
                while text[pos] not in ",}":
                    pos += 1
                word = text[start:pos]
                out.append(None if word == "NULL" else word)
            if text[pos] == ",":
                pos += 1
                continue
            pos += 1  # "}"
            return out

    try:
        result = parse()
    except (IndexError, AssertionError):
        return None
    return result if pos == len(text) else None


_SCALAR: dict[int, Convert] = {
    16: _bool,
    20: int,
    21: int,
    23: int,
    26: int,
    700: _float,
    701: _float,
    1082: _date,
    1083: _time,
    1114: _timestamp,
    1184: _timestamptz,
    1266: _timetz,
    17: _bytea,
}

#: Array type OID -> element type OID (built-in types only).
_ARRAYS: dict[int, int] = {
    1000: 16,
    1005: 21,
    1007: 23,
    1016: 20,
    1028: 26,
    1021: 700,
    1022: 701,
    1182: 1082,
    1183: 1083,
    1115: 1114,
    1185: 1184,
    1270: 1266,
    1001: 17,
    1231: 1700,
    1009: 25,
    1015: 1043,
    1014: 1042,
    2951: 2950,
    199: 114,
    3807: 3802,
    1187: 1186,
}


def converter(type_oid: int) -> Convert:
    """The text -> JSON conversion of a column type (identity for text-like and unknown types)."""
    if type_oid in _SCALAR:
        return _SCALAR[type_oid]
    if type_oid in _ARRAYS:
        return _array(_SCALAR.get(_ARRAYS[type_oid], _text))
    return _text
