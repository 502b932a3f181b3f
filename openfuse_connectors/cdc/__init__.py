"""Change data capture: PostgreSQL logical decoding (pgoutput) to Kafka and to SQL destinations.

See ``docs/cdc.md``. Importing this package loads no driver (psycopg, confluent_kafka are
imported when a runner, a sink or an operation first needs them), and the public names are
resolved on first use, so ``openfuse_connectors.spec`` can import ``cdc.options`` without a cycle.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openfuse_connectors.cdc.changes import UNCHANGED, Change, Column, TableInfo
    from openfuse_connectors.cdc.config import CdcSettings
    from openfuse_connectors.cdc.debezium import DebeziumEncoder
    from openfuse_connectors.cdc.errors import (
        DecodeError,
        PublicationMismatchError,
        ReplicationError,
        SlotInUseError,
        SlotPositionError,
        SourceNotReadyError,
        TableWithoutKeyError,
    )
    from openfuse_connectors.cdc.kafka_sink import KafkaChangeSink
    from openfuse_connectors.cdc.lsn import format_lsn, parse_lsn
    from openfuse_connectors.cdc.options import CdcOptions
    from openfuse_connectors.cdc.postgres_sink import DELETED_AT, PostgresChangeSink
    from openfuse_connectors.cdc.runner import CdcRunner, RunSummary, run_cdc
    from openfuse_connectors.cdc.sink import STATE_STREAM, CdcState, ChangeSink
    from openfuse_connectors.cdc.slot import SlotHealth, drop_pipeline, reset_position, slot_health

_WHERE = {
    "UNCHANGED": "changes",
    "Change": "changes",
    "Column": "changes",
    "TableInfo": "changes",
    "CdcSettings": "config",
    "CdcOptions": "options",
    "DebeziumEncoder": "debezium",
    "DecodeError": "errors",
    "PublicationMismatchError": "errors",
    "ReplicationError": "errors",
    "SlotInUseError": "errors",
    "SlotPositionError": "errors",
    "SourceNotReadyError": "errors",
    "TableWithoutKeyError": "errors",
    "KafkaChangeSink": "kafka_sink",
    "format_lsn": "lsn",
    "parse_lsn": "lsn",
    "DELETED_AT": "postgres_sink",
    "PostgresChangeSink": "postgres_sink",
    "CdcRunner": "runner",
    "RunSummary": "runner",
    "run_cdc": "runner",
    "STATE_STREAM": "sink",
    "CdcState": "sink",
    "ChangeSink": "sink",
    "SlotHealth": "slot",
    "drop_pipeline": "slot",
    "reset_position": "slot",
    "slot_health": "slot",
}

__all__ = [
    "DELETED_AT",
    "STATE_STREAM",
    "UNCHANGED",
    "CdcOptions",
    "CdcRunner",
    "CdcSettings",
    "CdcState",
    "Change",
    "ChangeSink",
    "Column",
    "DebeziumEncoder",
    "DecodeError",
    "KafkaChangeSink",
    "PostgresChangeSink",
    "PublicationMismatchError",
    "ReplicationError",
    "RunSummary",
    "SlotHealth",
    "SlotInUseError",
    "SlotPositionError",
    "SourceNotReadyError",
    "TableInfo",
    "TableWithoutKeyError",
    "drop_pipeline",
    "format_lsn",
    "parse_lsn",
    "reset_position",
    "run_cdc",
    "slot_health",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
