"""Who may do what: the :class:`Authorizer` protocol and the default workspace-isolation rule.

The API asks one question per request - ``decide(principal, action, resource)`` - through the
single ``Authorize(action)`` dependency. The types are plain frozen data (no ORM rows), shaped
like Cedar's request (principal, action, resource, each with attributes), so the policy engine
in ``openfuse_policy`` can satisfy the protocol without importing the API: any object with a
matching ``decide`` method works.

Actions are ``<resource type>:<verb>`` strings: ``connection:read``, ``pipeline:update``,
``pipeline:state_reset``. :data:`READ_VERBS` lists the verbs that change nothing; every other
verb is a write, and writes are audited.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "READ_VERBS",
    "Authorizer",
    "Decision",
    "Resource",
    "Subject",
    "WorkspaceAuthorizer",
    "is_write",
]

#: Verbs that read only; any other verb is a write (audited, and denied writes are recorded).
READ_VERBS = frozenset({"list", "read", "read_self", "state_read", "explain"})


def is_write(action: str) -> bool:
    return action.rsplit(":", 1)[-1] not in READ_VERBS


@dataclass(frozen=True)
class Subject:
    """The authenticated principal."""

    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    #: The workspace's newest custom-policy version (0: none), read with the API key.
    policy_version: int = 0


@dataclass(frozen=True)
class Resource:
    """What the action is on. ``id`` is None for a collection (list, create) of the workspace."""

    type: str
    id: str | None
    workspace_id: uuid.UUID
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The answer, and why (policy ids or sentences) - shown in a 403 and kept in the audit log."""

    allowed: bool
    reasons: tuple[str, ...] = ()
    #: The policy engine's decision id (kept in the audit log), when there is an engine.
    decision_id: str | None = None
    #: Ids of the policies that decided (empty for a default deny).
    policies: tuple[str, ...] = ()


@runtime_checkable
class Authorizer(Protocol):
    """Decides whether ``principal`` may perform ``action`` on ``resource``. Must not do I/O per call
    beyond what it needs (it runs on every request); must be safe to call from several threads."""

    def decide(self, principal: Subject, action: str, resource: Resource) -> Decision: ...


class WorkspaceAuthorizer:
    """The community default: a workspace's principals may do everything in their workspace and
    nothing in any other."""

    def decide(self, principal: Subject, action: str, resource: Resource) -> Decision:
        if resource.workspace_id == principal.workspace_id:
            return Decision(True, ("same workspace",))
        return Decision(False, ("the resource belongs to another workspace",))
