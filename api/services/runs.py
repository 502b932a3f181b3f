"""Runs of pipelines, on Dagster: launch (idempotently), list, read with per-stream results, tail
the event log, cancel. Nothing is copied into the metadata DB but idempotency keys: every read
asks the Dagster webserver (:mod:`api.orchestrator`).

Which pipeline a run belongs to is decided by :func:`api.pipeline_export.owning_pipeline` (its
``openfuse/pipeline_id`` tag, else its job name), so runs started from the Dagster UI or a
schedule show up too; ``run:*`` actions are authorized against that pipeline's workspace.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from api.auth.dependencies import RunTarget
from api.connection_config import redact
from api.errors import Problem
from api.models.base import utcnow
from api.models.idempotency import KEY_TTL, IdempotencyKey
from api.models.pipeline import Pipeline
from api.models.run import (
    Materialization,
    RunCreate,
    RunEvent,
    RunEventPage,
    RunPage,
    RunPublic,
    RunStatus,
    RunSummary,
    StepResult,
    StepStatus,
)
from api.orchestrator import DagsterRun, JobNotFound
from api.pagination import decode_cursor, encode_cursor
from api.pipeline_export import (
    PIPELINE_ID_TAG,
    PRINCIPAL_TAG,
    WORKSPACE_TAG,
    job_name,
    parse_job_name,
    step_key,
)
from api.services.base import Ctx, check_limit, operation
from openfuse_connectors.spec import StreamSpec

__all__ = [
    "IDEMPOTENCY_HEADER",
    "Launched",
    "cancel_run",
    "get_run",
    "launch_run",
    "list_run_events",
    "list_runs",
    "run_public",
]

IDEMPOTENCY_HEADER = "Idempotency-Key"
#: A reservation without a run this old was left by a request that died; it may be taken over.
_IN_FLIGHT = timedelta(seconds=120)
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
#: Statuses a run passes through before Dagster can cancel it, and how long cancel waits them out.
_STARTING = frozenset({RunStatus.NOT_STARTED, RunStatus.STARTING})
_STARTING_WAIT = 15.0
_ROWS = ("rows_read", "rows_written", "rows_quarantined", "bytes_written")


@dataclass(frozen=True)
class Launched:
    run: RunPublic
    replayed: bool  # the idempotency key had launched it already


# -- conversions


def _time(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, tz=UTC) if ts is not None else None


def _uuid(raw: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw) if raw else None
    except ValueError:
        return None


def _streams(pipeline: Pipeline | None) -> list[StreamSpec]:
    return [StreamSpec.model_validate(s) for s in pipeline.spec.get("streams", [])] if pipeline else []


def _summary_fields(run: DagsterRun, pipeline: Pipeline | None) -> dict[str, Any]:
    return {
        "id": run.run_id,
        "pipeline_id": pipeline.id if pipeline else _uuid(run.tags.get(PIPELINE_ID_TAG)),
        "job_name": run.job_name,
        "status": RunStatus(run.status.lower()),
        "launched_by": _uuid(run.tags.get(PRINCIPAL_TAG)),
        "tags": dict(run.tags),
        "created_at": _time(run.created),
        "started_at": _time(run.started),
        "ended_at": _time(run.ended),
    }


def _sum(values: Iterable[Any]) -> int | None:
    ints = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    return sum(ints) if ints else None


def run_public(run: DagsterRun, pipeline: Pipeline | None) -> RunPublic:
    """A run with one step per stream it syncs, in the pipeline's stream order."""
    by_key = {step_key(run.job_name, s): s.name for s in _streams(pipeline)}
    stats = {s.key: s for s in run.steps or ()}
    selected = set(run.step_keys) if run.step_keys is not None else set(by_key)
    # The pipeline's order, then steps of no current stream (a stream removed since the run).
    keys = [k for k in by_key if k in selected] + sorted((selected | set(stats)) - set(by_key))
    finished = RunStatus(run.status.lower()).finished
    steps = []
    for key in keys:
        st = stats.get(key)
        if st is not None and st.status:
            status = StepStatus(st.status.lower())
        else:
            status = StepStatus.SKIPPED if finished else StepStatus.PENDING
        mats = list(st.materializations) if st else []
        steps.append(
            StepResult(
                key=key,
                stream=by_key.get(key),
                status=status,
                started_at=_time(st.start) if st else None,
                ended_at=_time(st.end) if st else None,
                attempts=st.attempts if st else 0,
                materializations=[
                    Materialization(asset_key=list(m.asset_key), partition=m.partition, metadata=m.metadata)
                    for m in mats
                ],
                **{name: _sum(m.metadata.get(name) for m in mats) for name in _ROWS},
            )
        )
    return RunPublic(
        **_summary_fields(run, pipeline),
        streams=[by_key.get(k, k) for k in keys if k in selected],
        rows_written=_sum(s.rows_written for s in steps),
        steps=steps,
    )


# -- launch


def _request_hash(pipeline: Pipeline, body: RunCreate) -> str:
    doc = {"pipeline_id": str(pipeline.id), **body.model_dump(mode="json")}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _reserve(ctx: Ctx, key: str, digest: str, pipeline: Pipeline) -> tuple[IdempotencyKey, str | None]:
    """The key's row, reserved for this request, and the run it launched already (a replay)."""
    session = ctx.session
    for _ in range(3):
        now = utcnow()
        row = session.exec(
            select(IdempotencyKey).where(
                IdempotencyKey.principal_id == ctx.principal.id, IdempotencyKey.key == key
            )
        ).first()
        if row is not None and row.created_at < now - KEY_TTL:
            session.delete(row)  # expired: forget it
            session.commit()
            row = None
        if row is None:
            row = IdempotencyKey(
                principal_id=ctx.principal.id, key=key, request_hash=digest, pipeline_id=pipeline.id
            )
            session.add(row)
            try:
                session.commit()
            except IntegrityError:  # the same key, concurrently: look again
                session.rollback()
                continue
            return row, None
        if row.request_hash != digest:
            raise Problem(
                409,
                "idempotency-key-reused",
                f"{IDEMPOTENCY_HEADER} {key!r} was used for a different request; use a new key",
                title="Idempotency key reused",
                extra={"field": IDEMPOTENCY_HEADER},
            )
        if row.run_id is not None:
            return row, row.run_id
        if row.created_at > now - _IN_FLIGHT:
            raise Problem(
                409,
                "idempotency-key-in-use",
                f"a request with {IDEMPOTENCY_HEADER} {key!r} is still being processed; retry shortly",
                title="Idempotency key in use",
                extra={"field": IDEMPOTENCY_HEADER},
            )
        # Left by a request that died mid-launch: take it over, once (compare and swap).
        taken = session.exec(
            update(IdempotencyKey)
            .where(col(IdempotencyKey.id) == row.id, col(IdempotencyKey.created_at) == row.created_at)
            .values(created_at=now)
        )
        session.commit()
        if taken.rowcount == 1:
            return row, None
    raise Problem(
        409,
        "idempotency-key-in-use",
        f"a request with {IDEMPOTENCY_HEADER} {key!r} is still being processed; retry shortly",
        title="Idempotency key in use",
        extra={"field": IDEMPOTENCY_HEADER},
    )


def _selected(pipeline: Pipeline, body: RunCreate) -> list[StreamSpec]:
    streams = _streams(pipeline)
    if body.streams is None:
        return streams
    by_name = {s.name: s for s in streams}
    for i, name in enumerate(body.streams):
        if name not in by_name:
            raise Problem.invalid(
                f"streams[{i}]", f"pipeline {pipeline.name!r} has no stream {name!r}", value=name
            )
    return [by_name[n] for n in dict.fromkeys(body.streams)]


def _not_loaded(ctx: Ctx, pipeline: Pipeline, job: str, file_name: str) -> Problem:
    # The code location's own messages (they name fields, not secret values); URL passwords masked.
    reasons = [redact(line, []) for line in ctx.dagster.broken_pipelines() if file_name in line]
    why = "; ".join(reasons) if reasons else "the code location has no such job after a reload"
    return Problem(
        409,
        "pipeline-not-loaded",
        f"Dagster did not load pipeline {pipeline.name!r} (job {job!r}): {why}",
        title="Dagster did not load the pipeline",
        extra={"job": job, "reasons": reasons},
    )


@operation("pipeline:run")
def launch_run(ctx: Ctx, body: RunCreate, *, idempotency_key: str | None = None) -> Launched:
    """Launch a run of the pipeline (of some of its streams) on Dagster.

    With an idempotency key, the same key and request give the same run, and the same key with
    another request is a 409.
    """
    pipeline = ctx.guard.target_as(Pipeline)
    selected = _selected(pipeline, body)
    reservation: IdempotencyKey | None = None
    if idempotency_key is not None:
        if not _KEY.match(idempotency_key):
            raise Problem.invalid(
                IDEMPOTENCY_HEADER, "must be 1 to 200 printable ASCII characters without spaces"
            )
        reservation, existing = _reserve(ctx, idempotency_key, _request_hash(pipeline, body), pipeline)
        if existing is not None:
            run = ctx.dagster.run(existing)
            if run is None:
                raise Problem(
                    409,
                    "conflict",
                    f"{IDEMPOTENCY_HEADER} {idempotency_key!r} launched run {existing}, which Dagster no "
                    "longer has; use a new key",
                )
            ctx.guard.audit(ctx.session, detail={"run_id": existing, "replayed": True})
            ctx.session.commit()
            return Launched(run_public(run, pipeline), replayed=True)
    try:
        run = _launch(ctx, pipeline, body, selected)
    except BaseException:
        if reservation is not None:  # let the client retry with the same key
            ctx.session.rollback()
            ctx.session.exec(delete(IdempotencyKey).where(col(IdempotencyKey.id) == reservation.id))
            ctx.session.commit()
        raise
    if reservation is not None:
        reservation.run_id = run.run_id
        ctx.session.add(reservation)
    ctx.guard.audit(
        ctx.session,
        detail={
            "run_id": run.run_id,
            "streams": body.streams,
            "full_refresh": body.full_refresh,
            "idempotency_key": idempotency_key is not None,
        },
    )
    ctx.session.commit()
    return Launched(run_public(run, pipeline), replayed=False)


def _launch(ctx: Ctx, pipeline: Pipeline, body: RunCreate, selected: list[StreamSpec]) -> DagsterRun:
    job = job_name(pipeline)
    path, _ = ctx.exporter.write(ctx.session, pipeline)
    ctx.session.commit()  # end the read transaction: Dagster may take a while
    ctx.exporter.ensure_loaded(path)
    keys = [step_key(job, s) for s in selected]
    tags = {
        PIPELINE_ID_TAG: str(pipeline.id),
        WORKSPACE_TAG: str(pipeline.workspace_id),
        PRINCIPAL_TAG: str(ctx.principal.id),
    }
    if body.partition_key is not None:
        tags["dagster/partition"] = body.partition_key
    run_config: dict[str, Any] = (
        {"ops": {k: {"config": {"full_refresh": True}} for k in keys}} if body.full_refresh else {}
    )
    selection = keys if body.streams is not None else None
    try:
        return ctx.dagster.launch(job, tags=tags, run_config=run_config, op_selection=selection)
    except JobNotFound:
        pass
    ctx.exporter.reload_now()  # written by another process just now, or broken: look again
    try:
        return ctx.dagster.launch(job, tags=tags, run_config=run_config, op_selection=selection)
    except JobNotFound:
        raise _not_loaded(ctx, pipeline, job, path.name) from None


# -- reads and cancel


def _owned(runs: Iterable[DagsterRun], ctx: Ctx) -> dict[str, Pipeline]:
    """run id -> pipeline (of the caller's workspace) for the runs whose pipeline tag or job name
    names one; runs of no pipeline of the workspace are left out."""
    runs = list(runs)
    ids = {u for r in runs if (u := _uuid(r.tags.get(PIPELINE_ID_TAG)))}
    names = {r.job_name.rpartition("__")[0] for r in runs}
    pipelines = ctx.session.exec(
        select(Pipeline).where(
            Pipeline.workspace_id == ctx.workspace_id,
            col(Pipeline.id).in_(ids) | col(Pipeline.name).in_(names),
        )
    ).all()
    by_id = {p.id: p for p in pipelines}
    by_job = {job_name(p): p for p in pipelines}
    out = {}
    for r in runs:
        # As owning_pipeline decides: the tag when it fits the job's workspace, else the job name.
        tagged = by_id.get(_uuid(r.tags.get(PIPELINE_ID_TAG)))  # type: ignore[arg-type]
        parsed = parse_job_name(r.job_name)
        if tagged is not None and (parsed is None or tagged.workspace_id.hex.startswith(parsed[1])):
            out[r.run_id] = tagged
        elif (p := by_job.get(r.job_name)) is not None:
            out[r.run_id] = p
    return out


@operation("run:list")
def list_runs(
    ctx: Ctx,
    *,
    pipeline_id: uuid.UUID | None = None,
    status: RunStatus | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> RunPage:
    """Runs of the workspace's pipelines, newest first.

    With ``pipeline_id``: the runs its job ran (the Dagster UI's and schedules' too) and the runs
    tagged with it. Without: the runs tagged with the workspace (those launched through the API).
    """
    check_limit(limit)
    after: tuple[float, str] | None = None
    if cursor is not None:
        ts, rid = decode_cursor(cursor, "runs", [float, str])
        after = (ts, rid)
    filters: list[Mapping[str, Any]]
    if pipeline_id is not None:
        p = ctx.session.get(Pipeline, pipeline_id)
        if p is None or p.workspace_id != ctx.workspace_id:
            return RunPage(items=[], next_cursor=None)
        filters = [{"tags": {PIPELINE_ID_TAG: str(p.id)}}, {"job": job_name(p)}]
    else:
        filters = [{"tags": {WORKSPACE_TAG: str(ctx.workspace_id)}}]
    statuses = [status.value.upper()] if status is not None else None
    # A little slack: runs created in the same millisecond as the cursor's come back and are dropped.
    fetch = limit + 6
    found: dict[str, DagsterRun] = {}
    for f in filters:
        runs = ctx.dagster.runs(
            statuses=statuses,
            created_before=after[0] + 0.001 if after else None,
            limit=fetch,
            **f,
        )
        for r in runs:
            if after is None or (r.created, r.run_id) < after:
                found[r.run_id] = r
    owners = _owned(found.values(), ctx)
    ordered = sorted(
        (r for r in found.values() if r.run_id in owners), key=lambda r: (r.created, r.run_id), reverse=True
    )
    page = ordered[:limit]
    more = len(ordered) > limit
    return RunPage(
        items=[RunSummary(**_summary_fields(r, owners[r.run_id])) for r in page],
        next_cursor=encode_cursor("runs", [page[-1].created, page[-1].run_id]) if more and page else None,
    )


@operation("run:read")
def get_run(ctx: Ctx) -> RunPublic:
    """A run with its status and per-stream results (poll until the status is final)."""
    t = ctx.guard.target_as(RunTarget)
    return run_public(t.run, t.pipeline)


@operation("run:read")
def list_run_events(ctx: Ctx, *, cursor: str | None = None, limit: int = 100) -> RunEventPage:
    """A run's event log, oldest first, from Dagster."""
    check_limit(limit)
    t = ctx.guard.target_as(RunTarget)
    after = None
    if cursor is not None:
        rid, after = decode_cursor(cursor, "run_events", [str, str])
        if rid != t.run.run_id:
            raise Problem.invalid(
                "cursor", "a cursor of another run's events; pass the `cursor` of this run", status=400
            )
    page = ctx.dagster.events(t.run.run_id, cursor=after, limit=limit)
    if page is None:
        raise Problem.not_found("run", t.run.run_id)
    items = [
        RunEvent(
            timestamp=datetime.fromtimestamp(int(e["timestamp"]) / 1000, tz=UTC),
            level=str(e.get("level") or "INFO"),
            type=str(e.get("eventType") or e.get("__typename") or "UNKNOWN"),
            message=str(e.get("message") or ""),
            step_key=e.get("stepKey"),
        )
        for e in page.events
        if e.get("timestamp")
    ]
    return RunEventPage(
        items=items,
        cursor=encode_cursor("run_events", [t.run.run_id, page.cursor]),
        has_more=page.has_more,
    )


@operation("run:cancel")
def cancel_run(ctx: Ctx) -> RunPublic:
    """Ask Dagster to stop a run (it becomes ``canceling``, then ``canceled``)."""
    t = ctx.guard.target_as(RunTarget)
    before = RunStatus(t.run.status.lower())
    ctx.session.commit()  # end the read transaction: Dagster may take a while
    # Dagster cancels only queued and started runs: give a starting one a moment to start.
    deadline = time.monotonic() + _STARTING_WAIT
    current = t.run
    while RunStatus(current.status.lower()) in _STARTING and time.monotonic() < deadline:
        time.sleep(0.25)
        current = ctx.dagster.run(t.run.run_id, steps=False) or current
    before = RunStatus(current.status.lower())
    if before.finished:
        raise Problem.conflict(f"run {t.run.run_id} already finished ({before.value}); nothing to cancel")
    answer = ctx.dagster.terminate(t.run.run_id)
    if answer is None:
        raise Problem.not_found("run", t.run.run_id)
    run, refused = answer
    if refused is not None:
        raise Problem.conflict(f"Dagster could not cancel run {run.run_id} ({run.status.lower()}): {refused}")
    run = ctx.dagster.run(run.run_id, steps=False) or run  # the answer shows the run as it was before
    ctx.guard.audit(
        ctx.session,
        detail={"run_id": run.run_id, "status_before": before.value, "status": run.status.lower()},
    )
    ctx.session.commit()
    return run_public(DagsterRun(**{**t.run.__dict__, "status": run.status, "ended": run.ended}), t.pipeline)
