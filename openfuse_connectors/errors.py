"""The OpenFuse error hierarchy.

Errors are grouped by what the caller should do about them (as singer-sdk's Fatal/Retriable/
Skippable and dlt's Terminal/Transient):

* :class:`FatalError` - stop; retrying will not help (bad config, unknown connector, schema
  frozen and the source changed).
* :class:`RetriableError` - transient; the same call may succeed later (server unreachable,
  deadlock, connection reset).
* :class:`SkippableRecordError` - one record is bad; quarantine it and carry on.

Every error keeps its inputs as attributes and names them in its message.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigError",
    "ConnectorNotFoundError",
    "FatalError",
    "OpenFuseError",
    "PipelineSpecError",
    "PluginError",
    "RetriableError",
    "SchemaDriftError",
    "SkippableRecordError",
    "SourceUnreachableError",
    "StateError",
]


class OpenFuseError(Exception):
    """Root of every error OpenFuse raises on purpose."""


class FatalError(OpenFuseError):
    """Retrying will not help: fix the input or the configuration first."""


class RetriableError(OpenFuseError):
    """A transient failure: the same operation may succeed if tried again."""


class SkippableRecordError(OpenFuseError):
    """One record cannot be loaded; it is quarantined with this reason, the rest continue."""

    def __init__(self, message: str, *, stream: str, field: str | None, value: Any, position: int | None):
        self.stream = stream
        self.field = field
        self.value = value
        self.position = position
        super().__init__(f"{message} ({stream=} {field=} value={_short(value)!r} {position=})")


class ConfigError(FatalError):
    """A connector or pipeline configuration value is missing or invalid."""

    def __init__(
        self, message: str, *, field: str | None = None, value: Any = None, source: str | None = None
    ):
        self.message = message  # without the field/value/source suffix
        self.field = field
        self.value = value
        self.source = source
        where = f" in {source}" if source else ""
        detail = (
            f" (field={field!r}" + (f" value={_short(value)!r})" if value is not None else ")")
            if field
            else ""
        )
        super().__init__(f"{message}{detail}{where}")


class PipelineSpecError(ConfigError):
    """A pipeline file does not validate; names the file, the field path and the value."""


class ConnectorNotFoundError(FatalError):
    """No connector of that name is registered."""

    def __init__(self, name: str, known: list[str], broken: dict[str, str] | None = None):
        self.name = name
        self.known = known
        hint = ""
        if broken and name in broken:
            hint = f"; the plugin providing it failed to load: {broken[name]}"
        super().__init__(
            f"unknown connector {name!r}; installed connectors: {', '.join(sorted(known)) or '(none)'}{hint}. "
            "Run `openfuse connectors list` to see them."
        )


class PluginError(FatalError):
    """Plugin code raised; the error names the plugin and keeps the original as the cause."""

    def __init__(self, plugin: str, operation: str, cause: BaseException):
        self.plugin = plugin
        self.operation = operation
        super().__init__(f"plugin {plugin!r} failed during {operation}: {type(cause).__name__}: {cause}")


class SourceUnreachableError(RetriableError):
    """A server could not be reached within the timeout."""

    def __init__(
        self, *, connector: str, host: str | None, port: int | None, database: str | None, reason: str
    ):
        self.connector = connector
        self.host = host
        self.port = port
        self.database = database
        super().__init__(
            f"{connector}: cannot connect to {host=} {port=} {database=}: {reason}. "
            "Check that the server is running and reachable, and the credentials are right."
        )


class SchemaDriftError(FatalError):
    """The source schema changed and the pipeline's drift policy is `freeze`."""

    def __init__(self, stream: str, diff: list[str]):
        self.stream = stream
        self.diff = diff
        lines = "\n  ".join(diff)
        super().__init__(
            f"schema of stream {stream!r} changed and schema_drift is 'freeze':\n  {lines}\n"
            "Set schema_drift: evolve to accept the change, or quarantine to divert rows that do not fit."
        )


class StateError(FatalError):
    """Stored stream state cannot be used."""


def _short(value: Any, limit: int = 80) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "..."
    if isinstance(value, bytes) and len(value) > limit:
        return value[:limit] + b"..."
    return value
