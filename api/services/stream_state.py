"""Stream state history of a pipeline: current state, history, record, reset and rollback.

History is append-only: a reset adds an entry with no state, a rollback adds an entry that
copies an earlier one's state. The newest entry per stream is the current state.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, col, select

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
from api.pagination import decode_cursor, encode_cursor
from api.services.base import Ctx, check_limit, operation
from openfuse_connectors.state import StreamState

__all__ = ["current_state", "record_state", "reset_state", "rollback_state", "state_history"]


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


@operation("pipeline:state_read")
def current_state(ctx: Ctx) -> list[CurrentStreamState]:
    """The current state of each stream of the pipeline (null: it starts from scratch)."""
    pipeline = ctx.guard.target_as(Pipeline)
    current = _current(ctx.session, pipeline)
    names = _streams(pipeline) + sorted(set(current) - set(_streams(pipeline)))
    return [CurrentStreamState(stream=n, entry=_public(current[n]) if n in current else None) for n in names]


@operation("pipeline:state_read")
def state_history(
    ctx: Ctx, *, stream: str | None = None, cursor: str | None = None, limit: int = 50
) -> StreamStatePage:
    """Every state entry, newest first."""
    check_limit(limit)
    pipeline = ctx.guard.target_as(Pipeline)
    stmt = select(StreamStateEntry).where(StreamStateEntry.pipeline_id == pipeline.id)
    if stream is not None:
        stmt = stmt.where(StreamStateEntry.stream == stream)
    if cursor is not None:
        (last,) = decode_cursor(cursor, "state", [int])
        stmt = stmt.where(col(StreamStateEntry.id) < last)
    rows = ctx.session.exec(stmt.order_by(col(StreamStateEntry.id).desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return StreamStatePage(
        items=[_public(r) for r in rows], next_cursor=encode_cursor("state", [rows[-1].id]) if more else None
    )


@operation("pipeline:state_write")
def record_state(ctx: Ctx, body: StateCommit) -> StreamStatePublic:
    """Record a state the destination committed (the orchestrator mirrors each run's states here)."""
    pipeline = ctx.guard.target_as(Pipeline)
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
        actor_id=ctx.principal.id,
    )
    ctx.session.add(entry)
    ctx.session.flush()
    ctx.guard.audit(ctx.session, detail={"stream": body.stream, "run_id": body.run_id, "entry_id": entry.id})
    ctx.session.commit()
    return _public(entry)


@operation("pipeline:state_reset")
def reset_state(ctx: Ctx, body: StateReset) -> list[StreamStatePublic]:
    """Forget the state of some (or all) streams: their next run is a full load."""
    pipeline = ctx.guard.target_as(Pipeline)
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
            actor_id=ctx.principal.id,
        )
        for s in dict.fromkeys(streams)
    ]
    ctx.session.add_all(entries)
    ctx.session.flush()
    ctx.guard.audit(
        ctx.session, detail={"streams": list(dict.fromkeys(streams)), "entry_ids": [e.id for e in entries]}
    )
    ctx.session.commit()
    return [_public(e) for e in entries]


@operation("pipeline:state_rollback")
def rollback_state(ctx: Ctx, body: StateRollback) -> StreamStatePublic:
    """Make an earlier entry's state current again (recorded as a new entry)."""
    pipeline = ctx.guard.target_as(Pipeline)
    target = ctx.session.get(StreamStateEntry, body.entry_id)
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
        actor_id=ctx.principal.id,
    )
    ctx.session.add(entry)
    ctx.session.flush()
    ctx.guard.audit(
        ctx.session, detail={"stream": target.stream, "rolled_back_to": target.id, "entry_id": entry.id}
    )
    ctx.session.commit()
    return _public(entry)
