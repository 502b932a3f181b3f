"""The decision log: where decisions go after the evaluator has made them.

The evaluator does no I/O. The caller (the API's enforcement point, the Dagster sync step) passes
each decision to a :class:`DecisionSink`, which the API implements to append to the audit log::

    decision = authorizer.decide(request, store)
    sink.write(decision, request)
    if not decision.allowed:
        raise Forbidden(decision.decision_id)

:func:`decision_record` is the record to store: JSON-ready, stable keys, no entity attributes (so
no row data or secrets end up in the audit log).
"""

from __future__ import annotations

import threading
from typing import Any, Protocol, runtime_checkable

from openfuse_policy.decision import Decision, Request

__all__ = ["DecisionSink", "MemoryDecisionSink", "decision_record"]


@runtime_checkable
class DecisionSink(Protocol):
    """Receives every decision with the request it answered. Implementations own their I/O."""

    def write(self, decision: Decision, request: Request) -> None:
        """Persist one decision; may raise to fail the request closed."""
        ...


def decision_record(decision: Decision, request: Request) -> dict[str, Any]:
    """The audit-log record: the decision, when (the request's ``now``), and from where."""
    ctx = request.context
    return decision.to_record(
        at=ctx.now,
        extra={
            "source_ip": ctx.source_ip,
            "workspace": ctx.workspace,
            "license_features": sorted(ctx.license_features),
        },
    )


class MemoryDecisionSink:
    """Keeps records in a list: for tests and the embedded single-process mode."""

    def __init__(self) -> None:
        self._records: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def write(self, decision: Decision, request: Request) -> None:
        rec = decision_record(decision, request)
        with self._lock:
            self._records.append(rec)

    @property
    def records(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._records)
