"""``/pipelines/{id}/state``: stream state history, reset and rollback.

History is append-only: a reset adds an entry with no state, a rollback adds an entry that
copies an earlier one's state. The newest entry per stream is the current state; the next run
of the pipeline starts from it (part 2 hands it to the destination's state table).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status
from sqlalchemy import func
from sqlmodel import Session, col, select

from api.auth.dependencies import Authorize, Guard
from api.deps import SessionDep
from api.errors import Problem
from api.models.pipeline import Pipeline
from api.models.stream_state import (
    CurrentStreamState,
    StateCommit,
    StateEntryKind,
    StateReset,
    StateRollback,
    StreamStateEntry,
    StreamStatePage,
    StreamStatePublic,
)
from api.pagination import CursorParam, LimitParam, decode_cursor, encode_cursor
from openfuse_connectors.state import StreamState

__all__ = ["router"]

router = APIRouter(prefix="/pipelines/{pipeline_id}/state", tags=["stream state"])


def _public(e: StreamStateEntry) -> StreamStatePublic:
    assert e.id is not None
    return StreamStatePublic(
        id=e.id,
        stream=e.stream,
        state=StreamState.model_validate(e.state) if e.state is not None else None,
        kind=StateEntryKind(e.kind),
        run_id=e.run_id,
        rolled_back_to=e.rolled_back_to,
        actor_id=e.actor_id,
        committed_at=e.committed_at,
    )


def _streams(p: Pipeline) -> list[str]:
    return [s["name"] for s in p.spec.get("streams", [])]


def _current(session: Session, pipeline: Pipeline) -> dict[str, StreamStateEntry]:
    newest = (
        select(StreamStateEntry.stream, func.max(StreamStateEntry.id).label("id"))
        .where(StreamStateEntry.pipeline_id == pipeline.id)
        .group_by(col(StreamStateEntry.stream))
        .subquery()
    )
    rows = session.exec(select(StreamStateEntry).join(newest, col(StreamStateEntry.id) == newest.c.id)).all()
    return {r.stream: r for r in rows}


@router.get("", response_model=list[CurrentStreamState])
def current_state(
    guard: Annotated[Guard, Authorize("pipeline:state_read")], pipeline_id: uuid.UUID, session: SessionDep
) -> list[CurrentStreamState]:
    """The current state of each stream of the pipeline (null: it starts from scratch)."""
    pipeline = guard.target_as(Pipeline)
    current = _current(session, pipeline)
    names = _streams(pipeline) + sorted(set(current) - set(_streams(pipeline)))
    return [CurrentStreamState(stream=n, entry=_public(current[n]) if n in current else None) for n in names]


@router.get("/history", response_model=StreamStatePage)
def state_history(
    guard: Annotated[Guard, Authorize("pipeline:state_read")],
    pipeline_id: uuid.UUID,
    session: SessionDep,
    stream: Annotated[str | None, Query(max_length=500, description="Only this stream.")] = None,
    cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> StreamStatePage:
    """Every state entry, newest first."""
    pipeline = guard.target_as(Pipeline)
    stmt = select(StreamStateEntry).where(StreamStateEntry.pipeline_id == pipeline.id)
    if stream is not None:
        stmt = stmt.where(StreamStateEntry.stream == stream)
    if cursor is not None:
        (last,) = decode_cursor(cursor, "state", [int])
        stmt = stmt.where(col(StreamStateEntry.id) < last)
    rows = session.exec(stmt.order_by(col(StreamStateEntry.id).desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return StreamStatePage(
        items=[_public(r) for r in rows], next_cursor=encode_cursor("state", [rows[-1].id]) if more else None
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=StreamStatePublic)
def record_state(
    guard: Annotated[Guard, Authorize("pipeline:state_write")],
    pipeline_id: uuid.UUID,
    body: StateCommit,
    session: SessionDep,
) -> StreamStatePublic:
    """Record a state the destination committed (the orchestrator mirrors each run's states here)."""
    pipeline = guard.target_as(Pipeline)
    if body.stream not in _streams(pipeline):
        raise Problem.invalid(
            "stream", f"pipeline {pipeline.name!r} has no stream {body.stream!r}", value=body.stream
        )
    entry = StreamStateEntry(
        pipeline_id=pipeline.id,
        stream=body.stream,
        state=body.state.model_dump(mode="json"),
        kind=StateEntryKind.COMMIT.value,
        run_id=body.run_id,
        actor_id=guard.principal.id,
    )
    session.add(entry)
    session.flush()
    guard.audit(session, detail={"stream": body.stream, "run_id": body.run_id, "entry_id": entry.id})
    session.commit()
    return _public(entry)


@router.post("/reset", response_model=list[StreamStatePublic])
def reset_state(
    guard: Annotated[Guard, Authorize("pipeline:state_reset")],
    pipeline_id: uuid.UUID,
    body: StateReset,
    session: SessionDep,
) -> list[StreamStatePublic]:
    """Forget the state of some (or all) streams: their next run is a full load."""
    pipeline = guard.target_as(Pipeline)
    known = _streams(pipeline)
    streams = body.streams if body.streams is not None else known
    for i, s in enumerate(streams):
        if s not in known:
            raise Problem.invalid(f"streams[{i}]", f"pipeline {pipeline.name!r} has no stream {s!r}", value=s)
    entries = [
        StreamStateEntry(
            pipeline_id=pipeline.id,
            stream=s,
            state=None,
            kind=StateEntryKind.RESET.value,
            actor_id=guard.principal.id,
        )
        for s in dict.fromkeys(streams)
    ]
    session.add_all(entries)
    session.flush()
    guard.audit(
        session, detail={"streams": list(dict.fromkeys(streams)), "entry_ids": [e.id for e in entries]}
    )
    session.commit()
    return [_public(e) for e in entries]


@router.post("/rollback", response_model=StreamStatePublic)
def rollback_state(
    guard: Annotated[Guard, Authorize("pipeline:state_rollback")],
    pipeline_id: uuid.UUID,
    body: StateRollback,
    session: SessionDep,
) -> StreamStatePublic:
    """Make an earlier entry's state current again (recorded as a new entry)."""
    pipeline = guard.target_as(Pipeline)
    target = session.get(StreamStateEntry, body.entry_id)
    if target is None or target.pipeline_id != pipeline.id:
        raise Problem.invalid(
            "entry_id", f"pipeline {pipeline.name!r} has no state entry {body.entry_id}", value=body.entry_id
        )
    entry = StreamStateEntry(
        pipeline_id=pipeline.id,
        stream=target.stream,
        state=target.state,
        kind=StateEntryKind.ROLLBACK.value,
        rolled_back_to=target.id,
        actor_id=guard.principal.id,
    )
    session.add(entry)
    session.flush()
    guard.audit(session, detail={"stream": target.stream, "rolled_back_to": target.id, "entry_id": entry.id})
    session.commit()
    return _public(entry)
