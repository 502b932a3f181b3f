"""Errors of the MySQL source, by what the caller should do: retry, or fix something first."""

from __future__ import annotations

from openfuse_connectors.errors import FatalError, RetriableError

__all__ = ["MySQLQueryError", "MySQLTransientError"]


class MySQLTransientError(RetriableError):
    """The server dropped the connection, timed out, or hit a deadlock: running the sync again may work."""

    def __init__(
        self, *, stream: str, host: str, port: int, database: str, code: int | None, message: str
    ) -> None:
        self.stream = stream
        self.host = host
        self.port = port
        self.database = database
        self.code = code
        super().__init__(
            f"mysql: reading {stream=} from {host=} {port=} {database=} failed: ({code}) {message}. "
            "Nothing was committed; run the sync again."
        )


class MySQLQueryError(FatalError):
    """The server refused the read (no such table or column, no privilege): fix the stream or grants."""

    def __init__(
        self, *, stream: str, host: str, port: int, database: str, code: int | None, message: str
    ) -> None:
        self.stream = stream
        self.host = host
        self.port = port
        self.database = database
        self.code = code
        super().__init__(
            f"mysql: reading {stream=} from {host=} {port=} {database=} failed: ({code}) {message}. "
            "Check the stream name and that the user may SELECT from it."
        )
