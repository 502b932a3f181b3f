"""Keep an interrupt that lands during an ADBC call: Ctrl-C, or Dagster cancelling a run.

``adbc_driver_manager``'s DB-API runs each blocking call on the main thread (execute, fetch,
ingest) under a native SIGINT handler of its own. On SIGINT it cancels the statement, and that
is all: Python's handler never runs. Dagster cancels a run by sending SIGINT to the process
running the step, so a cancel that landed during an ADBC call was lost. If the statement was
cancelled, the step saw an ordinary error; if the call ended before the cancel took effect
(connect-time settings, a short statement, a fetch of buffered rows), it saw nothing at all, and
the "cancelled" run went on to finish with success.

:func:`keep_adbc_interrupts` wraps the DB-API's blocking-call helper: the statement is still
cancelled at once, and when the call returns or raises, the signal is raised again for whatever
handler Python has installed. The CLI gets its ``KeyboardInterrupt``, Dagster its interrupt,
and the step ends as cancelled.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

_lock = threading.Lock()
_installed = False


def keep_adbc_interrupts() -> None:
    """Install the wrapper once per process (idempotent, thread-safe)."""
    global _installed
    with _lock:
        if _installed:
            return
        import adbc_driver_manager.dbapi as dbapi

        original: Callable[..., Any] = dbapi._blocking_call

        def blocking_call(
            func: Callable[..., Any], args: Any, kwargs: Any, cancel: Callable[[], None]
        ) -> Any:
            interrupted = threading.Event()

            def cancel_and_remember() -> None:
                interrupted.set()  # before cancel(), which may raise
                cancel()

            try:
                return original(func, args, kwargs, cancel_and_remember)
            finally:
                if interrupted.is_set():
                    signal.raise_signal(signal.SIGINT)

        dbapi._blocking_call = blocking_call
        _installed = True
