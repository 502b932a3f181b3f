"""``Authorize(action)``: the one dependency every non-public route goes through, and
:func:`guarded`, the same check for callers outside FastAPI's dependency injection (GraphQL).

It authenticates the bearer API key (401 otherwise), loads the resource named by the route's
id parameter (``{connection_id}``, ``{pipeline_id}``, ``{run_id}``) or takes the workspace's
collection, and asks the app's :class:`~api.auth.authorizer.Authorizer`. A denial on a resource of
another workspace - or on one that does not exist - is a 404, so ids of other tenants cannot be
probed; a denial inside the caller's workspace is a 403 with the reasons.

For writes it also owns the audit trail's edges: a denied write is recorded as ``denied``, and
a write that fails after authorization (validation, conflict, connector error) is rolled back
and recorded as ``failure``, each in its own transaction. The success entry is added by the
route, via :meth:`Guard.audit`, in the same transaction as the write.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol, TypeVar, cast

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col
from starlette.concurrency import run_in_threadpool

from api import audit
from api.auth.apikeys import parse_key, verify_secret
from api.auth.authorizer import Decision, Resource, Subject, is_write
from api.deps import AppState, SessionDep, StateDep
from api.errors import Problem
from api.models.api_key import ApiKey
from api.models.audit_log import Outcome
from api.models.base import utcnow
from api.models.connection import Connection
from api.models.pipeline import Pipeline
from api.models.policy import PolicyVersion
from api.models.principal import Principal
from api.orchestrator import DagsterRun
from api.pipeline_export import job_name, owning_pipeline

__all__ = [
    "TARGET_PARAMS",
    "Authorize",
    "AuthorizeDependency",
    "Guard",
    "RunTarget",
    "authenticate",
    "bearer_scheme",
    "guarded",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Resource type -> the path parameter that names one (absent: the action is on the collection).
TARGET_PARAMS: dict[str, str] = {
    "connection": "connection_id",
    "pipeline": "pipeline_id",
    "run": "run_id",
}


@dataclass(frozen=True)
class RunTarget:
    """A Dagster run and the pipeline it belongs to."""

    run: DagsterRun
    pipeline: Pipeline


class HasAction(Protocol):
    """An operation of :mod:`api.services` (it knows its action)."""

    @property
    def action(self) -> str: ...

    @property
    def name(self) -> str: ...


bearer_scheme = HTTPBearer(
    auto_error=False, description="An API key: `Authorization: Bearer of_<prefix>_<secret>`."
)
# A hash to compare against when the prefix is unknown, so both paths take the same time.
_DUMMY_HASH = "hmac-sha256$00000000000000000000000000000000$" + "0" * 64


def _unauthenticated(detail: str) -> Problem:
    return Problem(401, "unauthenticated", detail, headers={"WWW-Authenticate": 'Bearer realm="openfuse"'})


# The workspace's newest custom-policy version, in the key query (no extra round trip).
_POLICY_VERSION: Any = (
    sa_select(func.max(col(PolicyVersion.version)))
    .where(col(PolicyVersion.workspace_id) == col(Principal.workspace_id))
    .correlate(Principal)
    .scalar_subquery()
)


def authenticate(session: Session, credentials: HTTPAuthorizationCredentials | None) -> Subject:
    """The principal whose API key is in ``credentials``, or a 401."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise _unauthenticated("send an API key as `Authorization: Bearer of_...`")
    parsed = parse_key(credentials.credentials.strip())
    if parsed is None:
        raise _unauthenticated("the API key is malformed; keys look like `of_<prefix>_<secret>`")
    prefix, secret = parsed
    # Columns, not entities: every request pays for this query. (SQLAlchemy's select: sqlmodel's
    # is typed for at most four columns.)
    stmt: Any = (
        sa_select(
            col(ApiKey.secret_hash),
            col(ApiKey.revoked_at),
            col(ApiKey.expires_at),
            col(Principal.id),
            col(Principal.workspace_id),
            col(Principal.name),
            col(Principal.attributes),
            _POLICY_VERSION,
        )
        .join(Principal, col(Principal.id) == col(ApiKey.principal_id))
        .where(col(ApiKey.prefix) == prefix)
    )
    row = session.exec(stmt).first()
    ok = verify_secret(secret, row[0] if row else _DUMMY_HASH)
    now = utcnow()
    if row is None or not ok or row[1] is not None or (row[2] is not None and row[2] <= now):
        # One answer for unknown, wrong, revoked and expired keys: no oracle for guessing.
        log.info("rejected API key with prefix %s", prefix)
        raise _unauthenticated("the API key is not valid (unknown, revoked or expired)")
    return Subject(id=row[3], workspace_id=row[4], name=row[5], attributes=row[6], policy_version=row[7] or 0)


@dataclass
class Guard:
    """What ``Authorize`` hands the route: who, what action, on what (and the loaded row)."""

    action: str
    principal: Subject
    resource: Resource
    target: Any = None
    audited: bool = field(default=False)
    decision: Decision | None = None

    @property
    def workspace_id(self) -> uuid.UUID:
        return self.principal.workspace_id

    def target_as(self, cls: type[T]) -> T:
        assert isinstance(self.target, cls), f"{self.action} has no {cls.__name__} target"
        return self.target

    def audit(
        self,
        session: Session,
        *,
        resource_id: object | None = None,
        detail: dict[str, Any] | None = None,
        outcome: Outcome = Outcome.SUCCESS,
    ) -> None:
        """Add this action's audit entry to ``session``; commit it with the write."""
        audit.record(
            session,
            workspace_id=self.workspace_id,
            actor_id=self.principal.id,
            actor_name=self.principal.name,
            action=self.action,
            resource_type=self.resource.type,
            resource_id=resource_id if resource_id is not None else self.resource.id,
            outcome=outcome,
            detail=self._with_decision(detail),
        )
        self.audited = True

    def _with_decision(self, detail: dict[str, Any] | None) -> dict[str, Any] | None:
        d = self.decision
        if d is None or d.decision_id is None:
            return detail
        return {**(detail or {}), "decision_id": d.decision_id, "policies": list(d.policies)}


def _load(
    state: AppState, session: Session, principal: Subject, resource_type: str, raw: object, param: str
) -> tuple[Resource, Any]:
    """The resource ``raw`` names, for the authorizer, and the loaded object (a 404 if none)."""
    try:
        rid = uuid.UUID(str(raw))
    except ValueError:
        raise Problem.invalid(param, "not a valid id (a UUID)", value=str(raw)) from None
    if resource_type == "run":
        run = state.dagster.run(str(rid))
        pipeline = owning_pipeline(session, run.job_name, run.tags) if run is not None else None
        if run is None or pipeline is None:  # a run of no API pipeline is nobody's here
            raise Problem.not_found("run", rid)
        attributes = {
            "pipeline_id": str(pipeline.id),
            "pipeline_name": pipeline.name,
            "pipeline_owner_id": str(pipeline.owner_id or ""),
            "job": run.job_name,
            "status": run.status.lower(),
            "launched_by": run.tags.get("openfuse/principal", ""),
            "current_job": run.job_name == job_name(pipeline),
        }
        return Resource("run", str(rid), pipeline.workspace_id, attributes), RunTarget(run, pipeline)
    model: type[Connection] | type[Pipeline] = Connection if resource_type == "connection" else Pipeline
    row = cast(Connection | Pipeline | None, session.get(model, rid))
    if row is None:
        raise Problem.not_found(resource_type, rid)
    return Resource(resource_type, str(rid), row.workspace_id, row.authz_attributes()), row


@contextmanager
def guarded(
    state: AppState,
    session: Session,
    principal: Subject,
    action: str,
    target_id: object | None = None,
    *,
    param: str | None = None,
) -> Iterator[Guard]:
    """Authorize ``principal`` for ``action`` on the resource ``target_id`` names (or on the
    workspace's collection when None), and audit the outcome of a write.

    The body of the ``with`` block is the action: an exception leaving it is recorded as the
    write's ``failure`` (after a rollback) and re-raised. REST routes get this through
    ``Authorize``; GraphQL resolvers call it directly - one check for both.
    """
    if ":" not in action:
        raise ValueError(f"action {action!r} must look like '<resource type>:<verb>'")
    resource_type = action.split(":", 1)[0]
    if target_id is None or resource_type not in TARGET_PARAMS:
        resource, target = Resource(resource_type, None, principal.workspace_id), None
    else:
        resource, target = _load(
            state, session, principal, resource_type, target_id, param or TARGET_PARAMS[resource_type]
        )
    decision = state.authorizer.decide(principal, action, resource)
    write = is_write(action)
    guard = Guard(action, principal, resource, target, decision=decision)
    if not decision.allowed:
        # Every denial is audited, reads too: probing is what an audit log is for.
        _record(session, guard, {"reasons": list(decision.reasons)}, Outcome.DENIED)
        if resource.workspace_id != principal.workspace_id:
            raise Problem.not_found(resource_type, resource.id)
        raise Problem(
            403,
            "forbidden",
            f"{principal.name} may not {action} {resource_type} {resource.id or ''}".rstrip(),
            extra={"reasons": list(decision.reasons)},
        )
    # For writes: a failure from here on is rolled back and recorded as such.
    try:
        yield guard
    except Exception as e:
        if write:
            _record_failure(session, guard, e)
        raise
    if write and not guard.audited:
        # An operation that writes without auditing is a bug; say so loudly in the log.
        log.error("%s completed without an audit entry", action)


def _record_failure(session: Session, guard: Guard, e: Exception) -> None:
    if isinstance(e, Problem):
        status, slug = e.status, e.slug
    elif isinstance(e, RequestValidationError):
        status, slug = 422, "validation-error"
    else:
        status, slug = 500, "internal-error"
    session.rollback()
    guard.audited = False
    _record(session, guard, {"status": status, "type": slug}, Outcome.FAILURE)


def _record(session: Session, guard: Guard, detail: dict[str, Any], outcome: Outcome) -> None:
    """Commit one audit entry on its own. If even that fails (the DB is down), log it and let
    the request's own error be the answer."""
    try:
        guard.audit(session, detail=detail, outcome=outcome)
        session.commit()
    except Exception as e:
        session.rollback()
        log.error(
            "could not write the %s audit entry for %s: %s", outcome.value, guard.action, type(e).__name__
        )


class AuthorizeDependency:
    """The callable behind ``Authorize(action)``; kept as a class so a test can find it on every route."""

    def __init__(self, action: str | HasAction):
        self.operation: HasAction | None = None if isinstance(action, str) else action
        self.action = action if isinstance(action, str) else action.action
        if ":" not in self.action:
            raise ValueError(f"action {self.action!r} must look like '<resource type>:<verb>'")
        self.resource_type = self.action.split(":", 1)[0]

    def __repr__(self) -> str:
        return f"Authorize({self.action!r})"

    async def __call__(
        self,
        request: Request,
        state: StateDep,
        session: SessionDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    ) -> AsyncIterator[Guard]:
        # One thread-pool hop for the I/O (the key, the resource, a denial's audit entry); the
        # normal exit does none, a failure's audit entry gets a hop of its own.
        param = TARGET_PARAMS.get(self.resource_type)
        raw = request.path_params.get(param) if param else None

        def enter() -> tuple[AbstractContextManager[Guard], Guard]:
            principal = authenticate(session, credentials)
            cm = guarded(state, session, principal, self.action, raw, param=param)
            return cm, cm.__enter__()

        cm, guard = await run_in_threadpool(enter)
        try:
            yield guard
        except BaseException as e:
            await run_in_threadpool(cm.__exit__, type(e), e, e.__traceback__)
            raise
        cm.__exit__(None, None, None)


def Authorize(action: str | HasAction) -> Any:
    """``guard: Annotated[Guard, Authorize(pipelines.update_pipeline)]`` (an operation of
    :mod:`api.services`, or an action string) - authenticate, authorize, audit."""
    return Depends(AuthorizeDependency(action), scope="function")
