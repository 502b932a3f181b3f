"""``Authorize(action)``: the one dependency every non-public route goes through.

It authenticates the bearer API key (401 otherwise), loads the resource named by the route's
id parameter (``{connection_id}``, ``{pipeline_id}``) or takes the workspace's collection, and
asks the app's :class:`~api.auth.authorizer.Authorizer`. A denial on a resource of another
workspace - or on one that does not exist - is a 404, so ids of other tenants cannot be probed;
a denial inside the caller's workspace is a 403 with the reasons.

For writes it also owns the audit trail's edges: a denied write is recorded as ``denied``, and
a write that fails after authorization (validation, conflict, connector error) is rolled back
and recorded as ``failure``, each in its own transaction. The success entry is added by the
route, via :meth:`Guard.audit`, in the same transaction as the write.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar, cast

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session, col, select

from api import audit
from api.auth.apikeys import parse_key, verify_secret
from api.auth.authorizer import Resource, Subject, is_write
from api.deps import SessionDep, StateDep
from api.errors import Problem
from api.models.api_key import ApiKey
from api.models.audit_log import Outcome
from api.models.base import utcnow
from api.models.connection import Connection
from api.models.pipeline import Pipeline
from api.models.principal import Principal

__all__ = ["Authorize", "AuthorizeDependency", "CurrentPrincipal", "Guard", "authenticate"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Resource type -> (table, path parameter carrying its id).
TARGETS: dict[str, tuple[type[Connection] | type[Pipeline], str]] = {
    "connection": (Connection, "connection_id"),
    "pipeline": (Pipeline, "pipeline_id"),
}

_bearer = HTTPBearer(
    auto_error=False, description="An API key: `Authorization: Bearer of_<prefix>_<secret>`."
)
# A hash to compare against when the prefix is unknown, so both paths take the same time.
_DUMMY_HASH = "hmac-sha256$00000000000000000000000000000000$" + "0" * 64


def _unauthenticated(detail: str) -> Problem:
    return Problem(401, "unauthenticated", detail, headers={"WWW-Authenticate": 'Bearer realm="openfuse"'})


def authenticate(session: Session, credentials: HTTPAuthorizationCredentials | None) -> Subject:
    """The principal whose API key is in ``credentials``, or a 401."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise _unauthenticated("send an API key as `Authorization: Bearer of_...`")
    parsed = parse_key(credentials.credentials.strip())
    if parsed is None:
        raise _unauthenticated("the API key is malformed; keys look like `of_<prefix>_<secret>`")
    prefix, secret = parsed
    row = session.exec(
        select(ApiKey, Principal)
        .join(Principal, col(Principal.id) == col(ApiKey.principal_id))
        .where(ApiKey.prefix == prefix)
    ).first()
    ok = verify_secret(secret, row[0].secret_hash if row else _DUMMY_HASH)
    now = utcnow()
    if (
        row is None
        or not ok
        or row[0].revoked_at is not None
        or (row[0].expires_at and row[0].expires_at <= now)
    ):
        # One answer for unknown, wrong, revoked and expired keys: no oracle for guessing.
        log.info("rejected API key with prefix %s", prefix)
        raise _unauthenticated("the API key is not valid (unknown, revoked or expired)")
    principal = row[1]
    return Subject(
        id=principal.id,
        workspace_id=principal.workspace_id,
        name=principal.name,
        attributes=principal.attributes,
    )


@dataclass
class Guard:
    """What ``Authorize`` hands the route: who, what action, on what (and the loaded row)."""

    action: str
    principal: Subject
    resource: Resource
    target: Any = None
    audited: bool = field(default=False)

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
            detail=detail,
        )
        self.audited = True


class AuthorizeDependency:
    """The callable behind ``Authorize(action)``; kept as a class so a test can find it on every route."""

    def __init__(self, action: str):
        if ":" not in action:
            raise ValueError(f"action {action!r} must look like '<resource type>:<verb>'")
        self.action = action
        self.resource_type = action.split(":", 1)[0]

    def __repr__(self) -> str:
        return f"Authorize({self.action!r})"

    def __call__(
        self,
        request: Request,
        state: StateDep,
        session: SessionDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Iterator[Guard]:
        principal = authenticate(session, credentials)
        resource, target = self._resource(request, session, principal)
        decision = state.authorizer.decide(principal, self.action, resource)
        write = is_write(self.action)
        guard = Guard(self.action, principal, resource, target)
        if not decision.allowed:
            if write:
                self._record(session, guard, {"reasons": list(decision.reasons)}, Outcome.DENIED)
            if resource.workspace_id != principal.workspace_id:
                raise Problem.not_found(self.resource_type, resource.id)
            raise Problem(
                403,
                "forbidden",
                f"{principal.name} may not {self.action} {self.resource_type} {resource.id or ''}".rstrip(),
                extra={"reasons": list(decision.reasons)},
            )
        # For writes: a failure from here on is rolled back and recorded as such.
        try:
            yield guard
        except Exception as e:
            if write:
                self._record_failure(session, guard, e)
            raise
        if write and not guard.audited:
            # A route that writes without auditing is a bug; say so loudly in the log.
            log.error("route for %s completed without an audit entry", self.action)

    def _record_failure(self, session: Session, guard: Guard, e: Exception) -> None:
        if isinstance(e, Problem):
            status, slug = e.status, e.slug
        elif isinstance(e, RequestValidationError):
            status, slug = 422, "validation-error"
        else:
            status, slug = 500, "internal-error"
        session.rollback()
        guard.audited = False
        self._record(session, guard, {"status": status, "type": slug}, Outcome.FAILURE)

    def _record(self, session: Session, guard: Guard, detail: dict[str, Any], outcome: Outcome) -> None:
        """Commit one audit entry on its own. If even that fails (the DB is down), log it and let
        the request's own error be the answer."""
        try:
            guard.audit(session, detail=detail, outcome=outcome)
            session.commit()
        except Exception as e:
            session.rollback()
            log.error(
                "could not write the %s audit entry for %s: %s", outcome.value, self.action, type(e).__name__
            )

    def _resource(self, request: Request, session: Session, principal: Subject) -> tuple[Resource, Any]:
        spec = TARGETS.get(self.resource_type)
        if spec is None or spec[1] not in request.path_params:
            return Resource(self.resource_type, None, principal.workspace_id), None
        model, param = spec
        raw = request.path_params[param]
        try:
            rid = uuid.UUID(str(raw))
        except ValueError:
            raise Problem.invalid(param, "not a valid id (a UUID)", value=str(raw)) from None
        row = cast(Connection | Pipeline | None, session.get(model, rid))
        if row is None:
            raise Problem.not_found(self.resource_type, rid)
        return Resource(self.resource_type, str(rid), row.workspace_id, row.authz_attributes()), row


def Authorize(action: str) -> Any:
    """``guard: Annotated[Guard, Authorize("pipeline:update")]`` - authenticate, authorize, audit."""
    return Depends(AuthorizeDependency(action), scope="function")


def current_principal(guard: Annotated[Guard, Authorize("principal:read_self")]) -> Subject:
    return guard.principal


CurrentPrincipal = Annotated[Subject, Depends(current_principal)]
