"""Small helpers shared by tests (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from openfuse_connectors import Connector, ConnectorConfig, Extractor, StreamInfo, StreamSpec, StreamState
from openfuse_connectors.registry import Registry


def pg_exec(url: str, *sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for s in sql:
            conn.execute(s)


def pg_rows(url: str, sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


# -- an in-memory source -----------------------------------------------------------------------


class MemConfig(ConnectorConfig):
    pass


@dataclass
class Source:
    """What the test source serves: batches per stream, and how it misbehaves."""

    batches: dict[str, list[pa.RecordBatch]] = field(default_factory=dict)
    fail_after: int | None = None  # raise after yielding this many batches
    ignore_state: bool = False  # resend rows below the cursor (a source with late, out-of-order rows)

    def set(self, stream: str, *batches: pa.RecordBatch | dict[str, Any]) -> None:
        self.batches[stream] = [b if isinstance(b, pa.RecordBatch) else pa.record_batch(b) for b in batches]


def registry_for(source: Source, destination: Connector) -> Registry:
    class MemExtractor(Extractor):
        """Serves the test's batches."""

        name = "mem"
        config_model = MemConfig

        def check(self) -> None:
            return None

        def discover(self) -> list[StreamInfo]:
            return [StreamInfo(name, bs[0].schema) for name, bs in source.batches.items()]

        def read(
            self, stream: StreamSpec, state: StreamState | None, *, batch_size: int = 100_000
        ) -> Iterator[pa.RecordBatch]:
            low = state.cursor.to_scalar() if state and state.cursor and not source.ignore_state else None
            for i, b in enumerate(source.batches[stream.name]):
                if source.fail_after is not None and i == source.fail_after:
                    raise ConnectionResetError("source connection lost mid-stream")
                if low is not None and stream.cursor_field:
                    col = b.column(stream.cursor_field)
                    b = b.filter(pc.greater_equal(col, low.cast(col.type)))
                yield b

    reg = Registry()
    reg.add(Connector.from_class(MemExtractor))
    reg.add(destination)
    return reg
