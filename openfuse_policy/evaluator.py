"""The authorizer: a pure function from (policies, entities, request) to a decision and its reasons.

Cedar does the evaluating (default deny; a satisfied forbid overrides any permit). This module adds
what an enforcement point needs around it:

* **Slicing.** Cedar evaluates every policy in the set it is handed. At load, policies are indexed
  by action (``action == A``, ``action in [A, group]``, or unscoped) and by principal/resource
  type; policies whose scope names an entity (``principal == P``, ``resource in Workspace::"w"``)
  are grouped by that entity (the principal scope's, else the resource scope's), so the policies
  of one workspace, ``principal in W`` or ``resource in W``, form one group. A request is
  evaluated against only the policies whose scope can match it: the unpinned policies of its
  (action, principal type, resource type) slice, plus each group pinned to its principal, its
  resource or one of their ancestors in which some policy's scope matches. Each part is one Cedar
  policy set, parsed once (:meth:`Authorizer.warm` parses them all up front); when a request
  needs several, their answers are combined exactly as Cedar combines policies (any satisfied
  forbid denies, with all satisfied forbids as reasons; otherwise any satisfied permit allows),
  so no policy set is ever built per combination. A policy left out is one whose scope is false
  for the request, and Cedar evaluates scope before conditions, so leaving it out changes
  neither the decision, nor the determining policies, nor the errors (tests prove this on
  100,000 requests).
* **Context per part.** Parsing the request context is most of what a Cedar call costs (its
  extension values above all), and it is paid again for every part. Each part is therefore sent
  only the context attributes its policies read (``context.x``, ``context has x``; all of them
  if a policy uses ``context`` otherwise), and none when they read none: a policy cannot see an
  attribute it does not name, so its outcome and errors are the same.
* **Obligations** from the determining permits' ``@obligation`` annotations.
* **Batching.** :meth:`Authorizer.decide_batch` sends all requests of one slice to Cedar in one call.
* **Explain.** :meth:`Authorizer.explain` says what decided and what was considered.

Nothing here does I/O or reads a clock: the caller passes ``now`` in the context and hands the
decision to a :class:`~openfuse_policy.decision_log.DecisionSink` afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from openfuse_policy.decision import Context, Decision, Request
from openfuse_policy.entities import Entity, EntityRef, EntityStore, closure, parse_entities
from openfuse_policy.errors import RequestError
from openfuse_policy.obligation import Obligation
from openfuse_policy.policy import Policy, PolicySet, Scope, cedar_handle
from openfuse_policy.schema import GovernanceSchema

if TYPE_CHECKING:
    import cedarpy

__all__ = ["Authorizer", "Explanation"]

EntitiesArg = EntityStore | Iterable[Entity] | None


class _Part:
    """Some policies, their Cedar handle (parsed on first use), and the context attributes they
    read (``None``: the whole context)."""

    __slots__ = ("_handle", "context", "ids", "policies", "scopes")

    def __init__(self, policies: Iterable[Policy], context: frozenset[str] | None = frozenset()):
        self.policies = tuple(policies)
        self.ids = tuple(p.id for p in self.policies)
        self.context = context
        # The distinct (principal, resource) scopes: what slicing tests (fewer than the policies).
        self.scopes = tuple(dict.fromkeys((p.principal, p.resource) for p in self.policies))
        self._handle: cedarpy.PolicySet | None = None

    def handle(self, lock: threading.Lock) -> cedarpy.PolicySet:
        if self._handle is None:
            built = cedar_handle(self.policies)
            with lock:
                if self._handle is None:
                    self._handle = built
        return self._handle


@dataclass
class _TypeSlice:
    """Policies that can apply to one (action, principal type, resource type).

    ``unpinned`` hold for any principal and resource of those types; the others are grouped by the
    entity their principal scope (or else resource scope) names, and apply only when that entity
    is the request's principal, its resource, or an ancestor of either, and the scopes match.
    """

    unpinned: _Part
    pinned: dict[EntityRef, _Part]
    #: Each pinned group together with the unpinned policies (when there are any): a request that
    #: needs both costs one Cedar call and one context parse instead of two. Cedar's answer over
    #: the union is the combination of the two answers (see ``Authorizer._decision``), so this
    #: changes nothing but the cost.
    with_unpinned: dict[EntityRef, _Part]


@dataclass
class _Prepared:
    index: int
    request: Request
    cedar: dict[str, Any]  # principal, action, resource (no context: that depends on the part)
    context: dict[str, str]  # attribute -> its Cedar JSON text
    parts: list[_Part] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)

    @property
    def considered(self) -> int:
        return sum(len(p.ids) for p in self.parts)


@dataclass(frozen=True)
class Explanation:
    """A human-readable account of one decision.

    Attributes:
        decision: the decision.
        determining: the determining policies (id, effect, source text).
        considered: ids of the policies the evaluator looked at (the slice), in set order.
        total: how many policies the set has.
        sliced: whether slicing was on.
    """

    decision: Decision
    determining: tuple[Policy, ...]
    considered: tuple[str, ...]
    total: int
    sliced: bool
    request_context: dict[str, Any] = field(default_factory=dict)

    def render(self, *, max_considered: int = 50) -> str:
        d = self.decision
        why = {
            "permit": "a permit policy is satisfied and no forbid is",
            "forbid": "a forbid policy is satisfied (forbid overrides permit)",
            "default-deny": "no permit policy is satisfied (default deny)",
        }[d.reason]
        lines = [
            f"decision: {d.effect.upper()} ({why})",
            f"request:  principal={d.principal} action={d.action} resource={d.resource}",
        ]
        if self.request_context:
            lines.append("context:  " + json.dumps(self.request_context, sort_keys=True, default=str))
        lines.append(f"decision id: {d.decision_id}  policy set version: {d.policy_version}")
        if self.determining:
            lines.append("determining policies:")
            for p in self.determining:
                lines.append(f"  - {p.id} ({p.effect}, {p.source}:{p.line})")
                lines.extend(f"      {ln}" for ln in p.text.splitlines())
        else:
            lines.append("determining policies: none")
        if d.obligations:
            lines.append("obligations: " + ", ".join(map(str, d.obligations)))
        shown = ", ".join(self.considered[:max_considered])
        more = len(self.considered) - max_considered
        scope = "sliced by action and scope" if self.sliced else "no slicing"
        lines.append(
            f"considered {len(self.considered)} of {self.total} policies ({scope}): {shown or '(none)'}"
            + (f", ... and {more} more" if more > 0 else "")
        )
        if d.errors:
            lines.append("errors (an erroring policy is skipped):")
            lines.extend(f"  - {e}" for e in d.errors)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.decision.to_record(),
            "determining_policies": [
                {"id": p.id, "effect": p.effect, "source": p.source, "line": p.line, "text": p.text}
                for p in self.determining
            ],
            "considered": list(self.considered),
            "total_policies": self.total,
            "sliced": self.sliced,
        }


class Authorizer:
    """Decides requests against a validated :class:`PolicySet`.

    Args:
        policies: the policies (already validated against ``schema``).
        schema: the resource model; defaults to the one the policies were validated against.
        slicing: evaluate only the relevant slice (default). ``False`` evaluates every policy for
            every request; decisions are the same, only slower.

    Thread-safe; build once per policy-set version and share.
    """

    def __init__(
        self,
        policies: PolicySet,
        schema: GovernanceSchema | None = None,
        *,
        slicing: bool = True,
    ):
        self._schema = schema or policies.schema
        if policies.schema.fingerprint != self._schema.fingerprint:
            raise ValueError(
                "the policies were validated against a different schema; parse them with this one "
                "(PolicySet.parse(text, schema=schema))"
            )
        self._policies = policies
        self._slicing = slicing
        self._position = {p.id: i for i, p in enumerate(policies)}
        self._lock = threading.Lock()
        self._context_names = frozenset(a.name for a in self._schema.context)
        self._reads: dict[str, frozenset[str] | None] = {}
        self._parts: dict[tuple[str, ...], _Part] = {}
        self._all = _Part(policies, None)  # unsliced: every policy, the whole context
        self._empty = _Part(())
        self._empty_store = EntityStore(schema=self._schema)
        self._type_slices: dict[tuple[str, str, str], _TypeSlice] = {}
        self._contexts: dict[Context, dict[str, str]] = {}
        self._fragments: dict[tuple[str, type, Any], str] = {}
        self._names: dict[EntityRef, str] = {}
        self._conforming: set[str] = set()
        self._by_action = {
            a: tuple(p for p in policies if self._action_applies(p, a)) for a in self._schema.action_names
        }

    @property
    def policies(self) -> PolicySet:
        return self._policies

    @property
    def schema(self) -> GovernanceSchema:
        return self._schema

    @property
    def slicing(self) -> bool:
        return self._slicing

    # -- public API -------------------------------------------------------------------------

    def decide(self, request: Request, entities: EntitiesArg = None) -> Decision:
        """Decide one request. Never raises for a bad request: it is denied with the error."""
        if (
            self._slicing
            and not request.entities
            and type(request.principal) is EntityRef
            and type(request.resource) is EntityRef
            and (entities is None or type(entities) is EntityStore)
        ):
            # The common case of an enforcement point, without the batch machinery: uids only,
            # nothing carried, so no entity pooling and one group. Same steps, same decision.
            store = self._store(entities)
            try:
                prep = self._prepare(0, request)
            except RequestError as e:
                return self._refused(request, f"request refused: {e}")
            try:
                handle = store.handle  # built on first use; Cedar may refuse the entities
            except RequestError as e:
                return self._refused(request, str(e))
            self._assign_slice(prep, store.ancestors)
            for part in prep.parts:
                self._evaluate(part, [prep], handle)
            return self._decision(prep, _uuid4())
        return self.decide_batch([request], entities)[0]

    def decide_batch(self, requests: Sequence[Request], entities: EntitiesArg = None) -> list[Decision]:
        """Decide many requests; requests sharing a slice go to Cedar in one call.

        Entities carried by the requests are pooled per batch (a uid names one thing): an entity
        one request carries is visible to the others. Requests carrying *different* entities
        under the same uid are evaluated in separate groups.
        """
        return [d for d, _ in self._run(requests, entities)]

    def explain(self, request: Request, entities: EntitiesArg = None) -> Explanation:
        """Decide one request and say why, with the policies considered."""
        (decision, prepared) = self._run([request], entities)[0]
        ids = {i for part in prepared.parts for i in part.ids} if prepared is not None else set()
        considered = tuple(sorted(ids, key=self._position.__getitem__))
        return Explanation(
            decision=decision,
            determining=tuple(self._policies[i] for i in decision.determining),
            considered=considered,
            total=len(self._policies),
            sliced=self._slicing,
            request_context=_readable(request.context),
        )

    def warm(self) -> Authorizer:
        """Index every (action, principal type, resource type) slice and parse each of its parts
        now rather than on first use, so no request pays for it (call at startup; with 10,000
        policies this takes a few seconds)."""
        if not self._slicing:
            self._all.handle(self._lock)
            return self
        for action in self._schema.actions:
            for ptype in action.principal_types:
                for rtype in action.resource_types:
                    self._type_slice(action.name, ptype, rtype)
        merged = (m for ts in self._type_slices.values() for m in ts.with_unpinned.values())
        for part in [*self._parts.values(), *merged]:
            if part.ids:
                part.handle(self._lock)
        return self

    def slice_ids(self, request: Request, entities: EntitiesArg = None) -> tuple[str, ...]:
        """Ids of the policies a request would be evaluated against."""
        return self.explain(request, entities).considered

    # -- the pipeline -----------------------------------------------------------------------

    def _run(
        self, requests: Sequence[Request], entities: EntitiesArg
    ) -> list[tuple[Decision, _Prepared | None]]:
        store = self._store(entities)
        out: list[tuple[Decision, _Prepared | None] | None] = [None] * len(requests)
        groups: list[tuple[dict[EntityRef, Entity], list[_Prepared]]] = []
        for i, req in enumerate(requests):
            try:
                prep = self._prepare(i, req)
                carried = self._carried(req, store)
            except RequestError as e:
                out[i] = (self._refused(req, f"request refused: {e}"), None)
                continue
            if not carried and groups:
                groups[0][1].append(prep)
                continue
            for pool, members in groups:
                if all(pool.get(e.uid, e) == e for e in carried):
                    pool.update((e.uid, e) for e in carried)
                    members.append(prep)
                    break
            else:
                groups.append(({e.uid: e for e in carried}, [prep]))

        for pool, members in groups:
            try:
                handle = store.handle if not pool else self._with_carried(store, pool)
            except RequestError as e:
                for prep in members:
                    out[prep.index] = (self._refused(prep.request, str(e)), prep)
                continue
            ancestors = self._ancestry(store, pool)
            buckets: dict[int, tuple[_Part, list[_Prepared]]] = {}
            for prep in members:
                self._assign_slice(prep, ancestors)
                for part in prep.parts:
                    buckets.setdefault(id(part), (part, []))[1].append(prep)
            for part, bucket in buckets.values():
                self._evaluate(part, bucket, handle)
            for prep, decision_id in zip(members, _uuid4s(len(members)), strict=True):
                out[prep.index] = (self._decision(prep, decision_id), prep)
        return out  # type: ignore[return-value]

    def _with_carried(self, store: EntityStore, pool: dict[EntityRef, Entity]) -> cedarpy.Entities:
        """The store's Cedar entities plus those the requests carry.

        Cedar's check of entities against the schema costs about as much as parsing them; an
        entity that ``schema.entity()`` rebuilds identically from its own attributes has passed
        the same model checks already, so when every carried entity does, Cedar is spared the
        check. Anything else goes through Cedar's check as before (same errors).
        """
        entities = pool.values()
        if store.schema.fingerprint == self._schema.fingerprint and all(map(self._conforms, entities)):
            doc = json.dumps([dict(e.cedar) for e in entities])
            try:
                return store.handle.with_added_json_str(doc)
            except ValueError:
                pass  # let the checked path below say what is wrong
        return parse_entities(self._schema, entities, base=store.handle)

    def _conforms(self, e: Entity) -> bool:
        key = e.json_key
        if key in self._conforming:
            return True
        try:
            ok = self._schema.entity(e.uid.type, e.uid.id, **e.attrs).json_key == key
        except (RequestError, TypeError):
            ok = False
        if ok:
            with self._lock:
                if len(self._conforming) >= 4096:
                    self._conforming.clear()
                self._conforming.add(key)
        return ok

    def _store(self, entities: EntitiesArg) -> EntityStore:
        if entities is None:
            return self._empty_store
        if isinstance(entities, EntityStore):
            return entities
        return EntityStore(entities, schema=self._schema)

    def _prepare(self, index: int, req: Request) -> _Prepared:
        action = self._schema.action(req.action)
        p, r = req.principal_uid, req.resource_uid
        if p.type not in action.principal_types:
            raise RequestError(
                f"{req.action} takes a principal of type {' or '.join(action.principal_types)}, not {p.type}",
                field="principal",
                value=str(p),
            )
        if r.type not in action.resource_types:
            raise RequestError(
                f"{req.action} applies to {' or '.join(action.resource_types)}, not {r.type}",
                field="resource",
                value=str(r),
            )
        cedar = {
            "principal": {"type": p.type, "id": p.id},
            "action": {"type": "Action", "id": req.action},
            "resource": {"type": r.type, "id": r.id},
        }
        return _Prepared(index, req, cedar, self._context(req.context))

    def _context(self, ctx: Context) -> dict[str, str]:
        """The context checked against the model, as attribute -> Cedar JSON text (absent ones left
        out). Encoded per attribute value and cached, since ``now`` alone differs between requests."""
        got = self._contexts.get(ctx)
        if got is not None:
            return got
        values = ctx.as_attrs()
        if not self._context_names.issuperset(values):
            self._schema.encode_context(values)  # raises: unknown attribute
        out: dict[str, str] = {}
        fragments = self._fragments
        for a in self._schema.context:
            v = values.get(a.name)
            if v is None:
                if a.required:
                    self._schema.encode_context(values)  # raises: required attribute missing
                continue
            key = (a.name, type(v), v)  # the type too: True == 1, and only one may be valid
            try:
                text = fragments.get(key)
            except TypeError:  # an unhashable value: encode it every time
                key, text = None, None  # type: ignore[assignment]
            if text is None:
                text = json.dumps(a.type.encode(v, f"context.{a.name}"))
                if key is not None:
                    if len(fragments) >= 4096:
                        fragments.clear()
                    fragments[key] = text
            out[a.name] = text
        with self._lock:
            if len(self._contexts) >= 4096:
                self._contexts.clear()
            self._contexts[ctx] = out
        return out

    @staticmethod
    def _carried(req: Request, store: EntityStore) -> list[Entity]:
        out = []
        for e in req.carried_entities():
            known = store.get(e.uid)
            if known is None:
                out.append(e)
            elif known != e:
                raise RequestError(
                    f"the request carries {e.uid} with other attributes or parents than the entity store has",
                    field="entities",
                    value=str(e.uid),
                )
        return out

    @staticmethod
    def _ancestry(
        store: EntityStore, pool: dict[EntityRef, Entity]
    ) -> Callable[[EntityRef], frozenset[EntityRef]]:
        if not pool:
            return store.ancestors

        def parents_of(u: EntityRef) -> tuple[EntityRef, ...]:
            e = pool.get(u) or store.get(u)
            return e.parents if e is not None else ()

        return lambda uid: closure(uid, parents_of)

    # -- slicing ----------------------------------------------------------------------------

    def _action_applies(self, p: Policy, action: str) -> bool:
        a = p.action
        if a.op == "any":
            return True
        if a.op == "eq":
            return a.actions[0] == action
        groups = self._schema.action_ancestors(action)
        return any(x == action or x in groups for x in a.actions)

    def _type_ok(self, scope: Scope, type_name: str) -> bool:
        if scope.op == "any":
            return True
        if scope.op in ("is", "is_in") and scope.entity_type != type_name:
            return False
        if scope.entity is None:
            return True
        if scope.op == "eq":
            return scope.entity.type == type_name
        return scope.entity.type == type_name or scope.entity.type in self._schema.ancestor_types(type_name)

    @staticmethod
    def _hit(scope: Scope, uid: EntityRef, ancestors: frozenset[EntityRef]) -> bool:
        if scope.entity is None:
            return True
        if scope.op == "eq":
            return scope.entity == uid
        return scope.entity == uid or scope.entity in ancestors

    def _type_slice(self, action: str, ptype: str, rtype: str) -> _TypeSlice:
        key = (action, ptype, rtype)
        ts = self._type_slices.get(key)
        if ts is not None:
            return ts
        unpinned: list[Policy] = []
        pinned: dict[EntityRef, list[Policy]] = {}
        for p in self._by_action.get(action, ()):
            if not (self._type_ok(p.principal, ptype) and self._type_ok(p.resource, rtype)):
                continue
            pin = p.principal.entity or p.resource.entity
            if pin is not None:
                pinned.setdefault(pin, []).append(p)
            else:
                unpinned.append(p)
        with self._lock:
            ts = _TypeSlice(
                self._part(unpinned),
                {k: self._part(v) for k, v in pinned.items()},
                {k: self._new_part([*unpinned, *v]) for k, v in pinned.items()} if unpinned else {},
            )
            return self._type_slices.setdefault(key, ts)

    def _part(self, policies: Sequence[Policy]) -> _Part:
        """The part holding exactly these policies: shared between slices, so parsed once."""
        ids = tuple(p.id for p in policies)
        part = self._parts.get(ids)
        if part is None:
            part = self._parts[ids] = self._new_part(policies)
        return part

    def _new_part(self, policies: Sequence[Policy]) -> _Part:
        reads: set[str] = set()
        whole = False
        for p in policies:
            if p.id not in self._reads:
                self._reads[p.id] = context_reads(p)
            r = self._reads[p.id]
            if r is None:
                whole = True
            else:
                reads |= r
        return _Part(policies, None if whole else frozenset(reads))

    def _assign_slice(self, prep: _Prepared, ancestors: Callable[[EntityRef], frozenset[EntityRef]]) -> None:
        """The parts a request is evaluated against: its type slice's unpinned policies, plus each
        group of entity-pinned policies of which at least one scope matches the request."""
        if not self._slicing:
            prep.parts = [self._all]
            return
        req = prep.request
        p, r = req.principal_uid, req.resource_uid
        ts = self._type_slice(req.action, p.type, r.type)
        groups: list[EntityRef] = []
        pinned = ts.pinned
        if pinned:
            p_anc, r_anc = ancestors(p), ancestors(r)
            hit = self._hit
            for u in (p, *p_anc, r, *r_anc):
                group = pinned.get(u)
                if group is None or u in groups:
                    continue
                if any(hit(ps, p, p_anc) and hit(rs, r, r_anc) for ps, rs in group.scopes):
                    groups.append(u)
        if not groups:
            # No applicable policy still goes through Cedar (with none), so the outcome is Cedar's.
            prep.parts = [ts.unpinned if ts.unpinned.ids else self._empty]
        elif ts.with_unpinned:
            prep.parts = [ts.with_unpinned[groups[0]], *(pinned[u] for u in groups[1:])]
        else:
            prep.parts = [pinned[u] for u in groups]

    # -- evaluation -------------------------------------------------------------------------

    def _evaluate(self, part: _Part, bucket: list[_Prepared], entities: cedarpy.Entities) -> None:
        # No schema here: the request was checked against the model in _prepare (action, types,
        # context encoded from the typed context attributes), the entities when their handle was
        # built, the policies when they were loaded. Cedar's per-request schema check would only
        # repeat that, at a cost comparable to the evaluation itself.
        reads = part.context
        if len(bucket) == 1:
            b = bucket[0]
            ctx = b.context
            names = ctx.keys() if reads is None else [n for n in reads if n in ctx]
            request = (
                {**b.cedar, "context": "{" + ", ".join(f'"{n}": {ctx[n]}' for n in names) + "}"}
                if names
                else b.cedar
            )
            b.results.append(_authorize([request], part.handle(self._lock), entities)[0])
            return
        requests = []
        for b in bucket:
            ctx = b.context
            names = ctx.keys() if reads is None else [n for n in reads if n in ctx]
            if names:
                requests.append(
                    {**b.cedar, "context": "{" + ", ".join(f'"{n}": {ctx[n]}' for n in names) + "}"}
                )
            else:
                requests.append(b.cedar)
        answers = _authorize(requests, part.handle(self._lock), entities)
        for prep, answer in zip(bucket, answers, strict=True):
            prep.results.append(answer)

    def _decision(self, prep: _Prepared, decision_id: str) -> Decision:
        """Combine the parts' answers exactly as Cedar combines policies.

        A Cedar Deny names the satisfied forbids (none for a default deny), an Allow the satisfied
        permits. Over the union of the parts: any satisfied forbid denies, with all satisfied
        forbids as reasons; else any satisfied permit allows, with all satisfied permits.
        """
        forbids: list[str] = []
        permits: list[str] = []
        errors: list[str] = []
        for allowed_, reasons, errs in prep.results:
            if errs:
                errors.extend(errs)
            (permits if allowed_ else forbids).extend(reasons)
        allowed = not forbids and bool(permits)
        determining = (
            tuple(sorted(forbids or permits, key=self._position.__getitem__)) if forbids or allowed else ()
        )
        obligations: tuple[Obligation, ...] = ()
        if allowed:
            obligations = tuple(
                dict.fromkeys(o for pid in determining for o in self._policies[pid].obligations)
            )
        req = prep.request
        return Decision(
            allowed=allowed,
            determining=determining,
            errors=tuple(sorted(errors)) if errors else (),
            obligations=obligations,
            principal=self._name(req.principal_uid),
            action=req.action,
            resource=self._name(req.resource_uid),
            policy_version=self._policies.version,
            considered=prep.considered,
            decision_id=decision_id,
        )

    def _name(self, uid: EntityRef) -> str:
        """``str(uid)``, cached (it is asked twice per decision)."""
        name = self._names.get(uid)
        if name is None:
            name = str(uid)
            if len(self._names) >= 65536:
                self._names.clear()
            self._names[uid] = name
        return name

    def _refused(self, req: Request, error: str) -> Decision:
        return Decision(
            allowed=False,
            determining=(),
            errors=(error,),
            obligations=(),
            principal=str(_uid_or(req.principal)),
            action=str(req.action),
            resource=str(_uid_or(req.resource)),
            policy_version=self._policies.version,
            considered=0,
        )


#: One Cedar answer: allowed, the satisfied policies (permits if allowed, else forbids), errors.
_Answer = tuple[bool, list[str], list[str]]


def _authorize(
    requests: list[dict[str, Any]], policies: cedarpy.PolicySet, entities: cedarpy.Entities
) -> list[_Answer]:
    """Cedar's answers to ``requests`` (context already a JSON string), as :data:`_Answer` tuples.

    Calls the extension function under ``cedarpy.is_authorized_batch`` directly: the wrapper only
    re-checks the context type, unwraps the entities handle and builds an ``AuthzResult`` and a
    ``Diagnostics`` object per answer, which we would unpack again - a fifth of the Python time of
    a decision. The JSON answer is the documented ``AuthzResult`` document. Falls back to the
    public function if a cedarpy release moves the extension.
    """
    call = _CEDAR[0] if _CEDAR else _resolve_cedar()
    inner = getattr(entities, "_inner", None)
    if call is None or inner is None:
        import cedarpy

        return [
            (r.decision is cedarpy.Decision.Allow, r.diagnostics.reasons, r.diagnostics.errors)
            for r in cedarpy.is_authorized_batch(requests, policies, entities)
        ]
    out = []
    for text in call(requests, policies, inner, None, False):
        doc = _loads(text)
        diag = doc["diagnostics"]
        out.append((doc["decision"] == "Allow", diag.get("reason") or [], diag.get("errors") or []))
    return out


def _resolve_cedar() -> Callable[..., list[str]] | None:
    """cedarpy's extension function, looked up on first use (importing cedarpy is not free)."""
    try:
        from cedarpy import _internal
    except ImportError:  # pragma: no cover - a cedarpy without the extension module name
        call = None
    else:
        call = getattr(_internal, "is_authorized_batch", None)
    _CEDAR.append(call)
    return call


_CEDAR: list[Callable[..., list[str]] | None] = []
_loads = json.loads


def _uuid4() -> str:
    h = bytearray(os.urandom(16))
    h[6] = (h[6] & 0x0F) | 0x40
    h[8] = (h[8] & 0x3F) | 0x80
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def _uuid4s(n: int) -> list[str]:
    """``n`` random (version 4) UUIDs from one urandom call; uuid.uuid4() makes one syscall each."""
    raw = bytearray(os.urandom(16 * n))
    out = []
    for i in range(0, 16 * n, 16):
        raw[i + 6] = (raw[i + 6] & 0x0F) | 0x40
        raw[i + 8] = (raw[i + 8] & 0x3F) | 0x80
        h = raw[i : i + 16].hex()
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out


def _readable(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in ctx.as_attrs().items():
        if v is None:
            continue
        if isinstance(v, frozenset):
            v = sorted(v)
        elif hasattr(v, "isoformat"):
            v = v.isoformat()
        out[k] = v
    return out


def _uid_or(x: Any) -> Any:
    return x.uid if isinstance(x, Entity) else x


def context_reads(policy: Policy) -> frozenset[str] | None:
    """The context attributes a policy reads (``context.x``, ``context has x``, ``context["x"]``);
    ``None`` when it uses ``context`` some other way (or its tree is unknown): then it gets it all."""
    from cedarpy import pst

    if policy.node is None:
        return None
    found: set[str] = set()
    stack: list[Any] = [policy.node.clauses]
    while stack:
        v = stack.pop()
        if isinstance(v, pst.GetAttr) and isinstance(v.base, pst.Var) and v.base.name == "context":
            found.add(v.attr)
        elif isinstance(v, pst.HasAttr) and isinstance(v.base, pst.Var) and v.base.name == "context":
            found.add(v.attrs[0])
        elif isinstance(v, pst.Var):
            if v.name == "context":
                return None
        elif isinstance(v, tuple):
            stack.extend(v)
        elif isinstance(v, Mapping):
            stack.extend(v.values())
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):
            stack.extend(getattr(v, f.name) for f in dataclasses.fields(v))
    return frozenset(found)
