"""The API's authorizer on the Cedar policy engine (``openfuse_policy``).

Every request the ``Authorize`` dependency (or a GraphQL field) checks comes here as
``decide(subject, action, resource)``. This module turns it into a Cedar request:

* the action: the API's operations are Cedar actions one to one (``pipeline:run``,
  ``connection:check``, ...; :data:`ACTION_ALIASES` lists the few that are spelled differently),
  so policies are written against the same names the audit log shows;
* the principal: ``Principal::"<id>"`` with the principal's attributes (``team``, ``roles``,
  ``region``, ``clearance``; missing ones are empty);
* the resource: the loaded connection, pipeline or run as ``Connection``/``Pipeline``/``Run``,
  the workspace itself for collections (list, create), the principal for ``principal:read_self``;
* the context: the time, the license's features and the workspace the request addresses.

Policies in force for a workspace: the built-in community policies (workspace isolation, roles
viewer/editor/admin) plus the workspace's newest stored version of custom policies. Custom
permits need the license feature ``abac``; without it (never licensed, or lapsed) only the custom
*forbids* stay in force, so losing a license can narrow access but never widen it.

Authorizers are built once per (workspace, policy version, license features) and cached; the
version comes with the principal from the API-key query, so a policy change is seen by the next
request of every API worker without another query.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from api.auth.authorizer import Decision, Resource, Subject
from openfuse_policy.entities import string_set

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from openfuse_policy import Authorizer as CedarAuthorizer
    from openfuse_policy import Entity, Explanation, LicenseState, PolicySet, Request

__all__ = [
    "ACTION_ALIASES",
    "DbPolicyStore",
    "LicenseHolder",
    "PolicyAuthorizer",
    "PolicyStore",
    "cedar_action",
]

log = logging.getLogger(__name__)

#: API action -> Cedar action, where the names differ.
ACTION_ALIASES: Mapping[str, str] = {"audit:list": "audit:read"}
_NONE = "none"  # the id of an entity reference that is not set (an owner nobody recorded)


def cedar_action(action: str) -> str:
    return ACTION_ALIASES.get(action, action)


class PolicyStore(Protocol):
    """Where a workspace's custom policy text is kept (the metadata DB: :class:`DbPolicyStore`)."""

    def load(self, workspace_id: uuid.UUID, version: int) -> str: ...


class DbPolicyStore:
    """Reads ``policy_version`` rows (the API's own table)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def load(self, workspace_id: uuid.UUID, version: int) -> str:
        from sqlmodel import Session, select

        from api.models.policy import PolicyVersion

        with Session(self.engine) as session:
            row = session.exec(
                select(PolicyVersion.text).where(
                    PolicyVersion.workspace_id == workspace_id, PolicyVersion.version == version
                )
            ).first()
        return row or ""


class LicenseHolder:
    """The installed license, re-verified at most once a minute (it can expire while we run)."""

    def __init__(
        self,
        token: str | None,
        *,
        keys_file: Path | None = None,
        grace: dt.timedelta | None = None,
        recheck: dt.timedelta = dt.timedelta(minutes=1),
    ):
        self._token = token
        self._keys_file = keys_file
        self._grace = grace
        self._recheck = recheck
        self._state: LicenseState | None = None
        self._checked: dt.datetime | None = None
        self._lock = threading.Lock()

    def state(self, now: dt.datetime | None = None) -> LicenseState:
        from openfuse_policy.license import DEFAULT_GRACE, load_public_keys, verify_license

        now = now or dt.datetime.now(dt.UTC)
        with self._lock:
            if self._state is None or self._checked is None or now - self._checked >= self._recheck:
                keys = load_public_keys(self._keys_file) if self._keys_file else None
                self._state = verify_license(
                    self._token, keys=keys, now=now, grace=self._grace or DEFAULT_GRACE
                )
                self._checked = now
                if self._state.reason:
                    log.info("OpenFuse runs as the community edition: %s", self._state.reason)
            return self._state


@dataclass(frozen=True)
class _Key:
    workspace: uuid.UUID
    version: int
    features: frozenset[str]


class PolicyAuthorizer:
    """Decides API requests with Cedar: community policies + the workspace's custom policies."""

    def __init__(
        self,
        license: LicenseHolder,
        store: PolicyStore | None = None,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        cache_size: int = 256,
    ):
        self.license = license
        self.store = store
        self._clock = clock
        self._cache: OrderedDict[_Key, CedarAuthorizer] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        return self._clock()

    # -- policies in force ---------------------------------------------------------------

    def policies_for(self, workspace_id: uuid.UUID, version: int, features: frozenset[str]) -> PolicySet:
        """The policies in force for a workspace at ``version`` under a license granting ``features``."""
        from openfuse_policy import PolicySet, community_policies
        from openfuse_policy.tiers import enforceable_policies

        base = community_policies()
        text = self.store.load(workspace_id, version) if (self.store is not None and version > 0) else ""
        if not text.strip():
            return base
        custom = PolicySet.parse(text, source=f"workspace {workspace_id} policies v{version}")
        return enforceable_policies(features, custom)

    def cedar(
        self, workspace_id: uuid.UUID, version: int, features: frozenset[str] | None = None
    ) -> CedarAuthorizer:
        """The (cached) evaluator for a workspace's policies at ``version`` under ``features``
        (default: the license's now)."""
        from openfuse_policy import Authorizer as CedarAuthorizer

        key = _Key(workspace_id, version, self.license.state().features if features is None else features)
        with self._lock:
            got = self._cache.get(key)
            if got is not None:
                self._cache.move_to_end(key)
                return got
        # Parse and index every slice now, once per policy version, so no request pays for it.
        built = CedarAuthorizer(self.policies_for(workspace_id, version, key.features)).warm()
        with self._lock:
            self._cache[key] = built
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return built

    # -- requests ------------------------------------------------------------------------

    def request(
        self, principal: Subject, action: str, resource: Resource, features: frozenset[str] | None = None
    ) -> Request:
        """The Cedar request for an API request (``features``: the license's, default now)."""
        from openfuse_policy import Context, Request

        if features is None:
            features = self.license.state().features

        ws = str(principal.workspace_id)
        target = resource_entity(principal, action, resource)
        workspace = _workspace(ws)
        return Request(
            principal=principal_entity(principal),
            action=cedar_action(action),
            resource=target,
            context=Context(now=self._clock(), license_features=features, workspace=ws),
            # The workspace travels once (it is the resource itself for collections).
            entities=() if target is workspace else (workspace,),
        )

    def decide(self, principal: Subject, action: str, resource: Resource) -> Decision:
        from openfuse_policy import ACTIONS

        name = cedar_action(action)
        if name not in ACTIONS:  # an operation nobody mapped: deny, loudly
            log.error("API action %s has no Cedar action; denied", action)
            return Decision(False, (f"{action} is not a governed action",))
        # One license state for the whole decision: the policies in force and the context agree.
        features = self.license.state().features
        try:
            request = self.request(principal, action, resource, features)
        except Exception as e:  # a principal attribute of the wrong type, ...: deny with the reason
            return Decision(False, (f"the request does not fit the policy schema: {e}",))
        d = self.cedar(principal.workspace_id, principal.policy_version, features).decide(request)
        if d.allowed:
            reasons = d.determining
        elif d.determining:
            reasons = tuple(f"forbidden by {pid}" for pid in d.determining)
        else:
            reasons = (f"no policy permits {name} (default deny)",)
        return Decision(
            d.allowed,
            reasons + tuple(f"error: {e}" for e in d.errors),
            decision_id=d.decision_id,
            policies=d.determining,
        )

    def explain(self, principal: Subject, request: Request) -> Explanation:
        return self.cedar(principal.workspace_id, principal.policy_version).explain(request)


@functools.lru_cache(maxsize=4096)
def _workspace(ws: str) -> Entity:
    from openfuse_policy import OPENFUSE_SCHEMA

    return OPENFUSE_SCHEMA.entity("Workspace", ws)


def principal_entity(principal: Subject) -> Entity:
    """The principal as a Cedar entity (cached: built once per principal and attribute values)."""
    a = principal.attributes
    return _principal(
        str(principal.id),
        str(principal.workspace_id),
        str(a.get("team") or ""),
        tuple(string_set(a.get("roles"))),
        str(a.get("region") or ""),
        tuple(string_set(a.get("clearance"))),
    )


@functools.lru_cache(maxsize=4096)
def _principal(
    pid: str, ws: str, team: str, roles: tuple[str, ...], region: str, clearance: tuple[str, ...]
) -> Entity:
    from openfuse_policy import OPENFUSE_SCHEMA

    return OPENFUSE_SCHEMA.entity(
        "Principal", pid, workspace=ws, team=team, roles=list(roles), region=region, clearance=list(clearance)
    )


def resource_entity(principal: Subject, action: str, resource: Resource) -> Entity:
    from openfuse_policy import OPENFUSE_SCHEMA

    ws = str(resource.workspace_id)
    a = resource.attributes
    if resource.type == "principal" and resource.id is None:
        return principal_entity(principal)
    if resource.id is None:
        return _workspace(ws)
    if resource.type == "connection":
        return OPENFUSE_SCHEMA.entity(
            "Connection",
            resource.id,
            workspace=ws,
            owner=a.get("created_by") or _NONE,
            connector=str(a.get("connector") or ""),
            region=str(a.get("region") or ""),
            tags=string_set(a.get("tags")),
        )
    if resource.type == "pipeline":
        return OPENFUSE_SCHEMA.entity(
            "Pipeline",
            resource.id,
            workspace=ws,
            owner=a.get("owner_id") or _NONE,
            tags=string_set(a.get("tags")),
        )
    if resource.type == "run":
        return OPENFUSE_SCHEMA.entity(
            "Run",
            resource.id,
            workspace=ws,
            pipeline=a.get("pipeline_id") or _NONE,
            triggered_by=a.get("launched_by") or _NONE,
        )
    raise ValueError(f"{action}: no policy entity for resource type {resource.type!r}")
