"""``/pipelines/{id}/runs`` and ``/runs``: runs of pipelines on Dagster. The work is done by
:mod:`api.services.runs` (shared with GraphQL); nothing here is stored but idempotency keys."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Header, Query, Response, status

from api.auth.dependencies import Authorize, Guard
from api.deps import SessionDep, StateDep
from api.errors import ProblemPublic
from api.models.run import RunCreate, RunEventPage, RunPage, RunPublic, RunStatus
from api.pagination import CursorParam, LimitParam
from api.responses import model_response
from api.services import runs as svc
from api.services.base import Ctx

__all__ = ["router"]

router = APIRouter(tags=["runs"])


@router.post(
    "/pipelines/{pipeline_id}/runs",
    status_code=status.HTTP_201_CREATED,
    response_model=RunPublic,
    responses={
        409: {
            "model": ProblemPublic,
            "description": "`idempotency-key-reused` (same key, another request), `idempotency-key-in-use` "
            "(the first request with the key is still running), `pipeline-not-loaded` (Dagster "
            "could not load the pipeline; `reasons` says why).",
        },
    },
)
def launch_run(
    guard: Annotated[Guard, Authorize(svc.launch_run)],
    pipeline_id: uuid.UUID,
    state: StateDep,
    session: SessionDep,
    body: Annotated[RunCreate | None, Body()] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=svc.IDEMPOTENCY_HEADER,
            max_length=200,
            description="Makes the launch safe to retry: the same key and body give the same run "
            "(for 24 hours); the same key with another body is a 409.",
        ),
    ] = None,
) -> Response:
    """Launch a run of the pipeline (every stream, or those named) on Dagster.

    A replay of an earlier request (same `Idempotency-Key`, same body) answers with the run it
    launched and the header `Idempotent-Replayed: true`.
    """
    launched = svc.launch_run(
        Ctx(state, session, guard), body or RunCreate(), idempotency_key=idempotency_key
    )
    headers = {"Idempotent-Replayed": "true"} if launched.replayed else None
    return model_response(launched.run, status_code=201, headers=headers)


@router.get("/runs", response_model=RunPage)
def list_runs(
    guard: Annotated[Guard, Authorize(svc.list_runs)],
    state: StateDep,
    session: SessionDep,
    pipeline_id: Annotated[uuid.UUID | None, Query(description="Only this pipeline's runs.")] = None,
    status: Annotated[RunStatus | None, Query(description="Only runs in this status.")] = None,
    cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> Response:
    """Runs of the workspace's pipelines, newest first (see the README for which runs are listed)."""
    return model_response(
        svc.list_runs(
            Ctx(state, session, guard), pipeline_id=pipeline_id, status=status, cursor=cursor, limit=limit
        )
    )


@router.get("/runs/{run_id}", response_model=RunPublic)
def get_run(
    guard: Annotated[Guard, Authorize(svc.get_run)],
    run_id: uuid.UUID,
    state: StateDep,
    session: SessionDep,
) -> Response:
    """A run with its status and per-stream results (poll until the status is final)."""
    return model_response(svc.get_run(Ctx(state, session, guard)))


@router.get("/runs/{run_id}/events", response_model=RunEventPage)
def list_run_events(
    guard: Annotated[Guard, Authorize(svc.list_run_events)],
    run_id: uuid.UUID,
    state: StateDep,
    session: SessionDep,
    cursor: Annotated[
        str | None, Query(max_length=1000, description="`cursor` of the previous page; omit for the first.")
    ] = None,
    limit: LimitParam = 100,
) -> Response:
    """A run's event log, oldest first."""
    return model_response(svc.list_run_events(Ctx(state, session, guard), cursor=cursor, limit=limit))


@router.post("/runs/{run_id}/cancel", response_model=RunPublic)
def cancel_run(
    guard: Annotated[Guard, Authorize(svc.cancel_run)],
    run_id: uuid.UUID,
    state: StateDep,
    session: SessionDep,
) -> Response:
    """Ask Dagster to stop a run (`409` when it already finished)."""
    return model_response(svc.cancel_run(Ctx(state, session, guard)))
