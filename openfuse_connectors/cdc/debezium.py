"""Change events as Debezium writes them (PostgreSQL connector, JsonConverter without schemas).

A change to ``public.orders`` goes to topic ``<prefix>.public.orders``, keyed by the primary
key as a JSON object (``{"id":7}``), with the value::

    {"before": {...} | null, "after": {...} | null, "op": "c" | "u" | "d" | "r" | "t",
     "ts_ms": <processing time>, "transaction": null,
     "source": {"version", "connector": "postgresql", "name": <prefix>, "ts_ms": <commit time>,
                "snapshot": "true" | "last" | "false", "db", "schema", "table", "txId",
                "lsn": <LSN of the change>, "xmin": null, "sequence": "[\"<commit LSN>\",\"<LSN>\"]",
                "commit_lsn": <LSN of the commit record>}}

A delete is followed by a tombstone (same key, null value) so a compacted topic forgets the key.
A primary-key change is a delete of the old key and a create of the new one (as Debezium does).
A keyless table (REPLICA IDENTITY FULL, no key) is keyed by the whole row. Truncates have no key.

``source.lsn`` with ``source.commit_lsn`` identifies a change: a duplicate (at-least-once
delivery after a crash) carries the same key and the same pair, so a consumer drops it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from openfuse_connectors.cdc.changes import UNCHANGED, Change, TableInfo
from openfuse_connectors.cdc.values import UNAVAILABLE, converter

__all__ = ["VERSION", "DebeziumEncoder", "Record"]

VERSION = "openfuse-cdc-1"

#: (topic, key, value): value None is a tombstone.
Record = tuple[str, bytes | None, bytes | None]

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class DebeziumEncoder:
    def __init__(self, *, topic_prefix: str, database: str, tombstones: bool = True):
        self.topic_prefix = topic_prefix
        self.database = database
        self.tombstones = tombstones

    def topic(self, table: TableInfo) -> str:
        # Debezium replaces characters Kafka does not allow in topic names with "_". Cached per
        # table (and prefix): it was ~12% of the runner's time on single-row transactions.
        key = f"debezium_topic:{self.topic_prefix}"
        got = table.extra.get(key)
        if got is None:
            name = f"{self.topic_prefix}.{table.schema}.{table.name}"
            got = table.extra[key] = "".join(
                ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_" for ch in name
            )
        return str(got)

    def _convs(self, table: TableInfo) -> tuple[Callable[[str], Any], ...]:
        convs = table.extra.get("debezium")
        if convs is None:
            convs = table.extra["debezium"] = tuple(converter(c.type_oid) for c in table.columns)
        return convs

    def row(self, table: TableInfo, values: tuple[Any, ...] | None) -> dict[str, Any] | None:
        if values is None:
            return None
        out: dict[str, Any] = {}
        for name, conv, v in zip(table.names, self._convs(table), values, strict=True):
            out[name] = None if v is None else UNAVAILABLE if v is UNCHANGED else conv(v)
        return out

    def key(self, change: Change) -> bytes | None:
        if change.op == "t":
            return None
        table = change.table
        convs = self._convs(table)
        values = change.key_values()
        doc = {}
        for i, v in zip(table.key_index, values, strict=True):
            doc[table.names[i]] = None if v is None or v is UNCHANGED else convs[i](v)
        return _dumps(doc).encode()

    def records(self, change: Change, now_ms: int | None = None) -> list[Record]:
        table = change.table
        topic = self.topic(table)
        key = self.key(change)
        value = {
            "before": self.row(table, change.before),
            "after": self.row(table, change.after),
            "source": {
                "version": VERSION,
                "connector": "postgresql",
                "name": self.topic_prefix,
                "ts_ms": change.commit_ts_us // 1000,
                "snapshot": change.snapshot,
                "db": self.database,
                "sequence": f'["{change.commit_lsn}","{change.lsn}"]',
                "schema": table.schema,
                "table": table.name,
                "txId": change.xid,
                "lsn": change.lsn,
                "xmin": None,
                "commit_lsn": change.commit_lsn,
            },
            "op": change.op,
            "ts_ms": now_ms if now_ms is not None else int(time.time() * 1000),
            "transaction": None,
        }
        out: list[Record] = [(topic, key, _dumps(value).encode())]
        if change.op == "d" and self.tombstones:
            out.append((topic, key, None))
        return out
