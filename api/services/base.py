"""What every operation gets, and the registry of operations.

An *operation* is one thing the API does (``create_connection``, ``launch_run``): a function
taking a :class:`Ctx` - the app's state, a DB session, and the :class:`~api.auth.dependencies.Guard`
that authorized it - plus its inputs, and returning a public model. It is declared with its
action::

    @operation("connection:create")
    def create_connection(ctx: Ctx, body: ConnectionCreate) -> ConnectionPublic: ...

The REST route and the GraphQL field of an operation both get the action from it (``Authorize(op)``
and :func:`api.graphql.resolve.call`), run the same check, and call the same function, so the two
cannot drift apart in behaviour or in access control. The REST route function carries the
operation's name (which is also its OpenAPI ``operationId``); the GraphQL field names it in its
metadata; a test pairs them up.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Concatenate, Generic, ParamSpec, TypeVar

from sqlmodel import Session

from api.auth.authorizer import Subject
from api.auth.dependencies import Guard
from api.crypto import SecretBox
from api.deps import AppState
from api.errors import Problem
from api.orchestrator import DagsterClient
from api.pipeline_export import PipelineExporter
from api.settings import Settings
from openfuse_connectors.registry import Registry

__all__ = ["MAX_LIMIT", "OPERATIONS", "Ctx", "Operation", "check_limit", "operation"]

P = ParamSpec("P")
R = TypeVar("R")

#: Largest page size of any list.
MAX_LIMIT = 200


@dataclass(frozen=True)
class Ctx:
    """The context of one authorized operation."""

    state: AppState
    session: Session
    guard: Guard

    @property
    def settings(self) -> Settings:
        return self.state.settings

    @property
    def registry(self) -> Registry:
        return self.state.registry

    @property
    def box(self) -> SecretBox:
        return self.state.secret_box

    @property
    def dagster(self) -> DagsterClient:
        return self.state.dagster

    @property
    def exporter(self) -> PipelineExporter:
        return self.state.exporter

    @property
    def principal(self) -> Subject:
        return self.guard.principal

    @property
    def workspace_id(self) -> uuid.UUID:
        return self.guard.workspace_id


class Operation(Generic[P, R]):
    """A service function with the action it needs; call it like the function."""

    def __init__(self, fn: Callable[Concatenate[Ctx, P], R], action: str):
        if ":" not in action:
            raise ValueError(f"action {action!r} must look like '<resource type>:<verb>'")
        self.fn = fn
        self.action = action
        self.name = fn.__name__
        functools.update_wrapper(self, fn)

    def __call__(self, ctx: Ctx, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(ctx, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<operation {self.name} ({self.action})>"


#: Every operation, by name.
OPERATIONS: dict[str, Operation[..., object]] = {}


def operation(action: str) -> Callable[[Callable[Concatenate[Ctx, P], R]], Operation[P, R]]:
    """Declare a service function as the operation ``action`` authorizes."""

    def wrap(fn: Callable[Concatenate[Ctx, P], R]) -> Operation[P, R]:
        op = Operation(fn, action)
        if op.name in OPERATIONS:
            raise ValueError(f"two operations are named {op.name!r}")
        OPERATIONS[op.name] = op  # type: ignore[assignment]
        return op

    return wrap


def check_limit(limit: int) -> int:
    """A page size between 1 and :data:`MAX_LIMIT` (REST checks it in the query, GraphQL here)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise Problem.invalid("limit", f"must be between 1 and {MAX_LIMIT}", value=limit)
    return limit
