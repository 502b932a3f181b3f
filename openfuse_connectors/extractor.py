"""The source side of a connector."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

import pyarrow as pa

from openfuse_connectors.catalog import StreamInfo
from openfuse_connectors.config import ConnectorConfig
from openfuse_connectors.loader import QuarantinedRow
from openfuse_connectors.spec import StreamSpec
from openfuse_connectors.state import StreamState

__all__ = ["Extractor"]


class Extractor(ABC):
    """Reads streams from a source as Arrow record batches.

    Subclasses set ``name`` and ``config_model`` and implement :meth:`check`, :meth:`discover`
    and :meth:`read`. Driver imports belong inside methods, so importing the class is cheap.
    """

    name: ClassVar[str]
    config_model: ClassVar[type[ConnectorConfig]]
    #: License feature this connector needs (enforced by the governance layer), if any.
    required_feature: ClassVar[str | None] = None
    #: Capabilities a loader can match for a byte-level pass-through, e.g. ``{"postgres_binary_copy"}``.
    passthrough_formats: ClassVar[frozenset[str]] = frozenset()
    #: :meth:`read` also takes ``cursor_end`` (a :class:`~openfuse_connectors.state.Cursor`): an
    #: exclusive upper bound on the stream's ``cursor_field``, applied at the source, so a
    #: partition's read costs its range rather than everything after its start. Extractors
    #: without it are filtered after reading (same rows, more read).
    bounded_reads: ClassVar[bool] = False

    def __init__(self, config: ConnectorConfig):
        self.config = config

    @abstractmethod
    def check(self) -> None:
        """Connect and return, or raise an error naming host/port/database, within a bounded time."""

    @abstractmethod
    def discover(self) -> list[StreamInfo]:
        """List the streams the source offers."""

    def stream_info(self, stream: StreamSpec) -> StreamInfo:
        """The catalog entry of one stream, with only the selected columns."""
        for info in self.discover():
            if info.name == stream.name:
                return _select(info, stream)
        from openfuse_connectors.errors import ConfigError

        raise ConfigError(
            f"stream {stream.name!r} not found in source {self.name!r}",
            field="streams.name",
            value=stream.name,
        )

    @abstractmethod
    def read(
        self, stream: StreamSpec, state: StreamState | None, *, batch_size: int = 100_000
    ) -> Iterator[pa.RecordBatch]:
        """Yield record batches of the stream.

        When ``state`` carries a cursor, yield only rows with ``cursor_field >= state.cursor``
        (inclusive; the engine drops rows already loaded at the boundary). An extractor with
        :attr:`bounded_reads` takes a keyword ``cursor_end: Cursor | None = None`` too and then
        yields only rows with ``cursor_field < cursor_end`` (it is only passed to those).
        """

    def copy_out(self, stream: StreamSpec, fmt: str) -> Iterator[bytes]:
        """Yield the stream as raw bytes in a pass-through format named in ``passthrough_formats``."""
        raise NotImplementedError(fmt)

    def checkpoint(self) -> dict[str, Any] | None:
        """Source-specific progress to commit with the stream state (e.g. files already read).

        Called once :meth:`read` is exhausted; the value is stored in the destination with the
        data and handed back on the next read as ``state.extra["source"]``.
        """
        return None

    def after_commit(self, stream: StreamSpec, state: StreamState) -> None:  # noqa: B027 - optional hook
        """Called once the destination committed ``state`` with the stream's data (e.g. to commit
        Kafka consumer-group offsets for monitoring). The load is already committed: failures
        here are logged, not raised."""

    def take_rejects(self) -> list[QuarantinedRow]:
        """Records the source could not parse since the last call (malformed lines, invalid JSON).

        The engine calls this after every batch and once after the last, and quarantines them
        in the load's transaction. Each reject is handed over once.
        """
        return []

    def annotate_quarantine(self, rows: list[QuarantinedRow]) -> list[QuarantinedRow]:
        """Add source context (file, line) to rows the engine quarantined; default: unchanged."""
        return rows

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


def _select(info: StreamInfo, stream: StreamSpec) -> StreamInfo:
    if stream.columns is None:
        return info
    from openfuse_connectors.errors import ConfigError

    names = info.schema.names
    missing = [c for c in stream.columns if c not in names]
    if missing:
        raise ConfigError(
            f"stream {stream.name!r}: selected column(s) not in source: {missing}; available: {names}",
            field=f"streams[{stream.name}].columns",
            value=missing[0],
        )
    keep = list(stream.columns)
    for extra in (*stream.primary_key, *([stream.cursor_field] if stream.cursor_field else [])):
        if extra not in keep:
            keep.append(extra)
    schema = pa.schema([info.schema.field(c) for c in keep])
    return StreamInfo(
        info.name, schema, info.primary_key, tuple(c for c in info.cursor_candidates if c in keep), info.extra
    )
