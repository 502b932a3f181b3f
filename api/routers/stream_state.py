"""``/pipelines/{id}/state``: stream state history, reset and rollback.

History is append-only: a reset adds an entry with no state, a rollback adds an entry that
copies an earlier one's state. The newest entry per stream is the current state; the next run
of the pipeline starts from it. The work is done by :mod:`api.services.stream_state`.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.auth.dependencies import Authorize, Guard
from api.deps import SessionDep, StateDep
from api.models.stream_state import (
    CurrentStreamState,
    StateCommit,
    StateReset,
    StateRollback,
    StreamStatePage,
    StreamStatePublic,
)
from api.pagination import CursorParam, LimitParam
from api.responses import model_response
from api.services import stream_state as svc
from api.services.base import Ctx

__all__ = ["router"]

router = APIRouter(prefix="/pipelines/{pipeline_id}/state", tags=["stream state"])


@router.get("", response_model=list[CurrentStreamState])
def current_state(
    guard: Annotated[Guard, Authorize(svc.current_state)],
    pipeline_id: uuid.UUID,
    state: StateDep,
    session: SessionDep,
) -> Response:
    """The current state of each stream of the pipeline (null: it starts from scratch)."""
    return model_response(svc.current_state(Ctx(state, session, guard)))


@router.get("/history", response_model=StreamStatePage)
def state_history(
    guard: Annotated[Guard, Authorize(svc.state_history)],
    pipeline_id: uuid.UUID,
    state: StateDep,
    session: SessionDep,
    stream: Annotated[str | None, Query(max_length=500, description="Only this stream.")] = None,
    cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> Response:
    """Every state entry, newest first."""
    return model_response(
        svc.state_history(Ctx(state, session, guard), stream=stream, cursor=cursor, limit=limit)
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=StreamStatePublic)
def record_state(
    guard: Annotated[Guard, Authorize(svc.record_state)],
    pipeline_id: uuid.UUID,
    body: StateCommit,
    state: StateDep,
    session: SessionDep,
) -> Response:
    """Record a state the destination committed (the orchestrator mirrors each run's states here)."""
    return model_response(svc.record_state(Ctx(state, session, guard), body), status_code=201)


@router.post("/reset", response_model=list[StreamStatePublic])
def reset_state(
    guard: Annotated[Guard, Authorize(svc.reset_state)],
    pipeline_id: uuid.UUID,
    body: StateReset,
    state: StateDep,
    session: SessionDep,
) -> Response:
    """Forget the state of some (or all) streams: their next run is a full load."""
    return model_response(svc.reset_state(Ctx(state, session, guard), body))


@router.post("/rollback", response_model=StreamStatePublic)
def rollback_state(
    guard: Annotated[Guard, Authorize(svc.rollback_state)],
    pipeline_id: uuid.UUID,
    body: StateRollback,
    state: StateDep,
    session: SessionDep,
) -> Response:
    """Make an earlier entry's state current again (recorded as a new entry)."""
    return model_response(svc.rollback_state(Ctx(state, session, guard), body))
