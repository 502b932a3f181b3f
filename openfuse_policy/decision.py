"""Requests in, decisions out: the values that cross the evaluator's boundary.

A :class:`Request` names a principal, an action from :data:`~openfuse_policy.schema.ACTIONS`, a
resource and a :class:`Context`. Principal and resource may be given as full
:class:`~openfuse_policy.entities.Entity` objects (then they travel with the request) or as
:class:`~openfuse_policy.entities.EntityRef` uids found in the :class:`EntityStore` the caller
passes. A :class:`Decision` says allow or deny and why: the determining policy ids, evaluation
errors, obligations, and a unique decision id to record in the audit log and on the run.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from openfuse_policy.entities import Entity, EntityRef
from openfuse_policy.obligation import Obligation

__all__ = ["Context", "Decision", "Request"]


@dataclass(frozen=True, slots=True)
class Context:
    """The request context. ``now`` comes from the caller: evaluation never reads a clock.

    Attributes:
        now: time of the request (timezone-aware).
        license_features: features the current license grants (``LicenseState.features``).
        source_ip: the client's address, if there is a client.
        workspace: id of the workspace the request addresses (e.g. from the URL), if any.
    """

    now: dt.datetime
    license_features: frozenset[str] = frozenset()
    source_ip: str | None = None
    workspace: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.license_features, frozenset):
            object.__setattr__(self, "license_features", frozenset(self.license_features))

    def as_attrs(self) -> dict[str, Any]:
        return {
            "now": self.now,
            "license_features": self.license_features,
            "source_ip": self.source_ip,
            "workspace": self.workspace,
        }


@dataclass(frozen=True, slots=True)
class Request:
    """One authorization request.

    Attributes:
        principal: the principal entity, or its uid (then it must be in the entity store).
        action: an action name from :data:`~openfuse_policy.schema.ACTIONS`, e.g. ``pipeline:run``.
        resource: the resource entity, or its uid.
        context: the :class:`Context`.
        entities: further entities the policies may look at (a pipeline's owner, a dataset's
            connection), beyond those in the store.
    """

    principal: Entity | EntityRef
    action: str
    resource: Entity | EntityRef
    context: Context
    entities: tuple[Entity, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.entities, tuple):
            object.__setattr__(self, "entities", tuple(self.entities))

    @property
    def principal_uid(self) -> EntityRef:
        return self.principal.uid if isinstance(self.principal, Entity) else self.principal

    @property
    def resource_uid(self) -> EntityRef:
        return self.resource.uid if isinstance(self.resource, Entity) else self.resource

    def carried_entities(self) -> Iterable[Entity]:
        """Entities travelling with the request: principal, resource (when given as entities), extras."""
        if isinstance(self.principal, Entity):
            yield self.principal
        if isinstance(self.resource, Entity):
            yield self.resource
        yield from self.entities


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one request, with its reasons.

    Attributes:
        allowed: the decision. Default deny: allowed only when a permit is satisfied and no forbid.
        determining: ids of the policies that decided: the satisfied permits when allowed, the
            satisfied forbids when denied by a forbid, empty for a default deny.
        errors: evaluation errors (a policy whose condition errored is skipped, as Cedar does),
            and request errors (a request that does not fit the schema is denied).
        obligations: from the determining permits' ``@obligation`` annotations (allow only).
        decision_id: a fresh UUID; record it in the audit log and on what the decision allowed.
        principal, action, resource: what was decided, as Cedar uids / action name.
        policy_version: digest of the policy set that decided.
        considered: how many policies the evaluator looked at (the slice size).
    """

    allowed: bool
    determining: tuple[str, ...]
    errors: tuple[str, ...]
    obligations: tuple[Obligation, ...]
    principal: str
    action: str
    resource: str
    policy_version: str
    considered: int
    decision_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def effect(self) -> Literal["allow", "deny"]:
        return "allow" if self.allowed else "deny"

    @property
    def reason(self) -> Literal["permit", "forbid", "default-deny"]:
        """Why: a satisfied ``permit``, a satisfied ``forbid``, or no permit (``default-deny``)."""
        if self.allowed:
            return "permit"
        return "forbid" if self.determining else "default-deny"

    def to_record(
        self, *, at: dt.datetime | None = None, extra: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """A JSON-ready audit-log record of this decision."""
        rec: dict[str, Any] = {
            "decision_id": self.decision_id,
            "effect": self.effect,
            "reason": self.reason,
            "principal": self.principal,
            "action": self.action,
            "resource": self.resource,
            "determining": list(self.determining),
            "obligations": [str(o) for o in self.obligations],
            "errors": list(self.errors),
            "policy_version": self.policy_version,
        }
        if at is not None:
            rec["at"] = at.astimezone(dt.UTC).isoformat()
        if extra:
            rec.update(extra)
        return rec
