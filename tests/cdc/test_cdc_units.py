"""Units of the CDC package: the pgoutput decoder, LSNs, value conversions, the Debezium envelope,
and the light import path (no driver loaded by importing the package)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest

from openfuse_connectors.cdc import (
    UNCHANGED,
    Change,
    Column,
    DebeziumEncoder,
    TableInfo,
    format_lsn,
    parse_lsn,
)
from openfuse_connectors.cdc import pgoutput as po
from openfuse_connectors.cdc.values import converter, parse_array
from openfuse_connectors.errors import ConfigError


def _tuple(*values: object) -> bytes:
    out = struct.pack("!h", len(values))
    for v in values:
        if v is None:
            out += b"n"
        elif v is UNCHANGED:
            out += b"u"
        else:
            raw = str(v).encode()
            out += b"t" + struct.pack("!i", len(raw)) + raw
    return out


def test_lsn_round_trip() -> None:
    assert parse_lsn("16/B374D848") == 0x16B374D848
    assert format_lsn(0x16B374D848) == "16/B374D848"
    assert format_lsn(parse_lsn("0/0")) == "0/0"
    with pytest.raises(ConfigError):
        parse_lsn("nope")


def test_pgoutput_messages_decode() -> None:
    begin = po.decode(b"B" + struct.pack("!QqI", 0x100, 1_000_000, 42))
    assert begin == po.Begin(0x100, 946_684_800_000_000 + 1_000_000, 42)
    commit = po.decode(b"C" + struct.pack("!BQQq", 0, 0x100, 0x130, 0))
    assert isinstance(commit, po.Commit) and commit.end_lsn == 0x130
    rel = po.decode(
        b"R" + struct.pack("!I", 16385) + b"public\x00t\x00d" + struct.pack("!h", 2)
        + b"\x01id\x00" + struct.pack("!Ii", 23, -1) + b"\x00v\x00" + struct.pack("!Ii", 25, -1)
    )  # fmt: skip
    assert rel == po.Relation(
        16385, "public", "t", "d", (po.RelColumn(True, "id", 23, -1), po.RelColumn(False, "v", 25, -1))
    )
    ins = po.decode(b"I" + struct.pack("!I", 16385) + b"N" + _tuple(1, "ä"))
    assert ins == po.Insert(16385, ("1", "ä"))
    upd = po.decode(b"U" + struct.pack("!I", 16385) + b"K" + _tuple(1, None) + b"N" + _tuple(2, UNCHANGED))
    assert isinstance(upd, po.Update) and upd.old_kind == "K" and upd.old == ("1", None)
    assert upd.new[1] is UNCHANGED
    assert po.decode(b"U" + struct.pack("!I", 1) + b"N" + _tuple(3)) == po.Update(1, None, None, ("3",))
    assert po.decode(b"D" + struct.pack("!I", 1) + b"O" + _tuple(3)) == po.Delete(1, "O", ("3",))
    assert po.decode(b"T" + struct.pack("!iBII", 2, 1, 5, 6)) == po.Truncate((5, 6), True, False)
    msg = po.decode(b"M\x00" + struct.pack("!Q", 9) + b"p\x00" + struct.pack("!i", 2) + b"hi")
    assert msg == po.Message(False, 9, "p", b"hi")
    with pytest.raises(po.DecodeError, match="unknown message type"):
        po.decode(b"S\x00\x00")
    with pytest.raises(po.DecodeError):
        po.decode(b"I\x00")


def test_values_convert_like_debezium() -> None:
    assert converter(16)("t") is True
    assert converter(20)("9007199254740993") == 9007199254740993
    assert converter(701)("1.5") == 1.5 and converter(701)("NaN") == "NaN"
    assert converter(1700)("12.340") == "12.340"
    assert converter(1082)("1970-01-02") == 1 and converter(1082)("infinity") == "infinity"
    assert converter(1114)("1970-01-01 00:00:01.000002") == 1_000_002
    assert converter(1184)("2024-05-01 10:00:00+02") == "2024-05-01T08:00:00Z"
    assert converter(1083)("01:00:00.5") == 3_600_500_000
    assert converter(1266)("10:00:00+02") == "08:00:00Z"
    assert converter(17)("\\x00ff") == "AP8="
    assert converter(3802)('{"a": 1}') == '{"a": 1}'
    assert converter(1007)("{1,NULL,3}") == [1, None, 3]
    assert converter(1009)('{a,"b c","d\\"e",NULL}') == ["a", "b c", 'd"e', None]
    assert converter(1007)("{{1,2},{3,4}}") == [[1, 2], [3, 4]]
    assert converter(1007)("[0:1]={1,2}") == "[0:1]={1,2}"  # bounds: kept as text
    assert parse_array("{}") == []


def test_debezium_envelope_and_key() -> None:
    t = TableInfo(
        1, "public", "orders", (Column("id", 23, -1, "integer"), Column("note", 25, -1, "text")), ("id",)
    )
    enc = DebeziumEncoder(topic_prefix="shop", database="db")
    ch = Change("d", t, ("7", None), None, lsn=100, commit_lsn=200, xid=5, commit_ts_us=1_700_000_000_123_456)
    (topic, key, value), tomb = enc.records(ch, now_ms=1)
    assert topic == "shop.public.orders" and key == b'{"id":7}' and tomb == (topic, key, None)
    doc = json.loads(value)  # type: ignore[arg-type]
    assert doc["op"] == "d" and doc["before"] == {"id": 7, "note": None} and doc["after"] is None
    assert doc["source"]["ts_ms"] == 1_700_000_000_123 and doc["source"]["lsn"] == 100
    assert doc["source"]["txId"] == 5 and doc["source"]["sequence"] == '["200","100"]'
    keyless = TableInfo(2, "s", "weird name", t.columns, ())
    c = Change("c", keyless, None, ("1", UNCHANGED), 1, 1, 1, 0)
    [(topic, key, value)] = enc.records(c)
    assert topic == "shop.s.weird_name" and json.loads(key or b"") == {"id": 1, "note": None}
    assert json.loads(value or b"")["after"]["note"] == "__debezium_unavailable_value"
    [(_, key, _)] = enc.records(Change("t", t, None, None, 1, 1, 1, 0))
    assert key is None


def test_importing_the_cdc_package_loads_no_driver() -> None:
    code = "import sys, json, openfuse_connectors.cdc; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60)
    loaded = {m.split(".")[0] for m in json.loads(out.stdout)}
    assert not loaded & {"psycopg", "psycopg2", "confluent_kafka", "adbc_driver_manager", "dagster"}
