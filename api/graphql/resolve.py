"""How a GraphQL field runs an operation: the same authorization, audit and service call as the
REST route, in a worker thread with its own DB session.

:func:`call` authenticates the request's API key, runs :func:`api.auth.dependencies.guarded` for
the operation's action (on the resource ``target`` names, if any), validates the input with the
REST body model inside that block (so a validation failure of a write is audited like REST's),
and calls the operation. A :class:`~api.errors.Problem` becomes a GraphQL error whose
``extensions`` are the problem document REST would have answered with (``status``, ``type``,
``title``, ``detail``, ``errors``, ``reasons``); anything else is logged with an ``error_id`` and
answered as ``internal-error``, never with its message.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials
from graphql import GraphQLError
from pydantic import BaseModel, ValidationError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from strawberry.fastapi import BaseContext
from strawberry.types import Info

from api.auth.dependencies import authenticate, bearer_scheme, guarded
from api.deps import AppState, StateDep
from api.errors import Problem, field_errors_problem, problem_for_exception
from api.graphql.types import plain
from api.services.base import Ctx, Operation

__all__ = ["GraphQLContext", "ProblemError", "call", "get_context"]

M = TypeVar("M", bound=BaseModel)


class GraphQLContext(BaseContext):
    """Per request: the app's state and the request's credentials."""

    def __init__(self, state: AppState, credentials: HTTPAuthorizationCredentials | None):
        super().__init__()
        self.state = state
        self.credentials = credentials


def get_context(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> GraphQLContext:
    return GraphQLContext(state, credentials)


class ProblemError(GraphQLError):
    """A problem, as a GraphQL error: ``extensions`` hold the problem document."""

    def __init__(self, problem: Problem):
        doc = problem.document(None)
        doc.pop("instance", None)
        self.problem = problem
        super().__init__(problem.detail, extensions=doc)


def validate_body(model: type[M], value: Any) -> M:
    """``value`` (an input, or None for an omitted optional one) as the REST body model."""
    data = plain(value) if value is not None else {}
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise field_errors_problem(e.errors()) from None


async def call(
    info: Info[GraphQLContext, None],
    op: Operation[..., Any],
    *args: Any,
    target: object | None = None,
    body: tuple[type[BaseModel], Any] | None = None,
    **kwargs: Any,
) -> Any:
    """Run ``op`` for the request in ``info``, as its REST route would."""
    context = info.context
    state = context.state

    def work() -> Any:
        with Session(state.engine, expire_on_commit=False) as session:
            principal = authenticate(session, context.credentials)
            with guarded(state, session, principal, op.action, target, param="id") as guard:
                extra = (validate_body(*body),) if body is not None else ()
                return op(Ctx(state, session, guard), *extra, *args, **kwargs)

    try:
        return await run_in_threadpool(work)
    except Exception as e:
        raise ProblemError(problem_for_exception(e, f"GraphQL {info.path.key}")) from None
