"""A SIGINT (Ctrl-C, a Dagster run cancel) that lands during an ADBC call reaches Python.

adbc_driver_manager cancels the statement on SIGINT and swallows the signal; OpenFuse raises it
again (``openfuse_connectors.builtin.postgres.interrupts``). Real server, real signals.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

import pytest
from support import pg_rows

from openfuse_connectors.builtin.postgres.config import PostgresConfig
from openfuse_connectors.builtin.postgres.sql import connect_adbc

pytestmark = pytest.mark.postgres


class Caught(BaseException):
    """What the test's SIGINT handler raises (as Dagster's raises its interrupt error)."""


@pytest.fixture
def handler() -> Iterator[list[float]]:
    """A Python SIGINT handler that records when it ran and raises ``Caught``."""
    seen: list[float] = []

    def on_sigint(_signo: int, _frame: FrameType | None) -> None:
        seen.append(time.monotonic())
        raise Caught

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


def _sigint_after(seconds: float) -> None:
    def send() -> None:
        time.sleep(seconds)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=send, daemon=True).start()


def test_a_sigint_during_a_long_statement_cancels_it_and_reaches_python(
    pg_db: str, handler: list[float]
) -> None:
    conn = connect_adbc(PostgresConfig(dsn=pg_db))
    try:
        cur = conn.cursor()
        started = time.monotonic()
        _sigint_after(0.5)
        with pytest.raises(Caught):
            cur.execute("SELECT pg_sleep(30)")
        # The statement was cancelled in the server, not waited out.
        assert time.monotonic() - started < 10
        assert len(handler) == 1
        running = pg_rows(
            pg_db,
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'",
        )
        assert running == [(0,)]
    finally:
        conn.close()


def test_a_sigint_during_a_call_that_ends_anyway_is_not_lost(pg_db: str, handler: list[float]) -> None:
    """The case that lost run cancels: the call completes although SIGINT arrived during it."""
    import adbc_driver_manager.dbapi as dbapi

    conn = connect_adbc(PostgresConfig(dsn=pg_db))  # installs the wrapper
    try:

        def finishes_despite_the_signal() -> str:
            os.kill(os.getpid(), signal.SIGINT)  # lands while ADBC's own handler is installed
            time.sleep(0.3)
            return "done"

        cancels: list[bool] = []
        with pytest.raises(Caught):
            dbapi._blocking_call(finishes_despite_the_signal, (), {}, lambda: cancels.append(True))
        assert cancels == [True], "ADBC's handler did not run: the test no longer exercises it"
        assert len(handler) == 1
        # Without a signal, calls are untouched.
        assert dbapi._blocking_call(lambda x: x + 1, (41,), {}, lambda: None) == 42
        assert len(handler) == 1
    finally:
        conn.close()
