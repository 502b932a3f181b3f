"""Entities: the principals and resources a request names, with their attributes and parents.

Build entities with :meth:`GovernanceSchema.entity` (checked against the model); collect the
stable ones (workspaces, users, the pipelines of a page) in an :class:`EntityStore`, which parses
them for Cedar once and is reused across decisions. Everything here is immutable and does no I/O:
the caller loads rows from its database and hands them over.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from openfuse_policy.errors import RequestError

if TYPE_CHECKING:
    import cedarpy

    from openfuse_policy.schema import GovernanceSchema

__all__ = ["Entity", "EntityRef", "EntityStore", "string_set"]

_PLAIN_ID = re.compile(r'^[^"\\\x00-\x1f\x7f]*$')
_REF = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)::(?:"((?:[^"\\]|\\.)*)"|([^"\s]+))\s*$')


@dataclass(frozen=True, slots=True, order=True)
class EntityRef:
    """An entity uid: type and id, e.g. ``EntityRef("Pipeline", "p1")`` (Cedar ``Pipeline::"p1"``)."""

    type: str
    id: str

    def __str__(self) -> str:
        if _PLAIN_ID.match(self.id):
            return f'{self.type}::"{self.id}"'
        return f"{self.type}::{json.dumps(self.id, ensure_ascii=False)}"

    def to_cedar(self) -> dict[str, str]:
        return {"type": self.type, "id": self.id}

    @classmethod
    def parse(cls, value: Any, *, default_type: str | None = None) -> EntityRef:
        """Accept ``Type::"id"``, ``Type::id``, ``{type, id}``, or a bare id when ``default_type`` is set."""
        if isinstance(value, EntityRef):
            return value
        if isinstance(value, Mapping) and set(value) >= {"type", "id"}:
            return cls(str(value["type"]), str(value["id"]))
        if isinstance(value, str):
            m = _REF.match(value)
            if m:
                raw = m.group(2)
                return cls(m.group(1), json.loads(f'"{raw}"') if raw is not None else m.group(3))
            if default_type and value and "::" not in value:
                return cls(default_type, value)
        raise RequestError('expected an entity reference like Pipeline::"p1"', field="entity", value=value)


@dataclass(frozen=True, eq=False)
class Entity:
    """One entity: uid, attributes (as given) and parents. Build with ``schema.entity(...)``."""

    uid: EntityRef
    attrs: Mapping[str, Any]
    parents: tuple[EntityRef, ...]
    cedar: Mapping[str, Any] = field(repr=False)
    json_key: str = field(repr=False)

    @classmethod
    def from_encoded(
        cls,
        uid: EntityRef,
        attrs: dict[str, Any],
        encoded_attrs: dict[str, Any],
        parents: tuple[EntityRef, ...],
    ) -> Entity:
        cedar = {"uid": uid.to_cedar(), "attrs": encoded_attrs, "parents": [p.to_cedar() for p in parents]}
        return cls(
            uid, MappingProxyType(attrs), parents, MappingProxyType(cedar), json.dumps(cedar, sort_keys=True)
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entity) and self.json_key == other.json_key

    def __hash__(self) -> int:
        return hash(self.json_key)


class EntityStore:
    """An immutable set of entities, parsed for Cedar once and reused across decisions.

    Args:
        entities: the entities; a uid may appear twice only with identical content.
        schema: the model the entities conform to (Cedar re-checks them against it).

    Raises:
        RequestError: two different entities with the same uid, or Cedar refuses the set.
    """

    def __init__(self, entities: Iterable[Entity] = (), *, schema: GovernanceSchema | None = None):
        from openfuse_policy.schema import OPENFUSE_SCHEMA

        self._schema = schema or OPENFUSE_SCHEMA
        by_uid: dict[EntityRef, Entity] = {}
        for e in entities:
            old = by_uid.get(e.uid)
            if old is not None and old != e:
                raise RequestError(
                    f"two different entities share the uid {e.uid}", field="uid", value=str(e.uid)
                )
            by_uid[e.uid] = e
        self._by_uid: Mapping[EntityRef, Entity] = MappingProxyType(by_uid)
        self._handle: cedarpy.Entities | None = None
        self._ancestors: dict[EntityRef, frozenset[EntityRef]] = {}
        self._lock = threading.Lock()

    @property
    def schema(self) -> GovernanceSchema:
        return self._schema

    @property
    def handle(self) -> cedarpy.Entities:
        """The parsed Cedar entity set (with the schema's action entities), built on first use."""
        if self._handle is None:
            self._handle = parse_entities(self._schema, self._by_uid.values())
        return self._handle

    def __len__(self) -> int:
        return len(self._by_uid)

    def __iter__(self) -> Iterator[Entity]:
        return iter(self._by_uid.values())

    def __contains__(self, uid: object) -> bool:
        return uid in self._by_uid

    def get(self, uid: EntityRef) -> Entity | None:
        return self._by_uid.get(uid)

    def with_entities(self, more: Iterable[Entity]) -> EntityStore:
        """A new store: these entities plus ``more``."""
        return EntityStore([*self._by_uid.values(), *more], schema=self._schema)

    def ancestors(self, uid: EntityRef) -> frozenset[EntityRef]:
        """Every entity ``uid`` is transitively ``in`` (not including itself), per this store."""
        got = self._ancestors.get(uid)
        if got is None:
            got = closure(uid, lambda u: e.parents if (e := self._by_uid.get(u)) else ())
            with self._lock:
                self._ancestors[uid] = got
        return got


def closure(uid: EntityRef, parents_of: Any) -> frozenset[EntityRef]:
    """Transitive parents of ``uid`` given ``parents_of(uid) -> iterable``; cycles are tolerated."""
    seen: set[EntityRef] = set()
    todo = list(parents_of(uid))
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo.extend(parents_of(p))
    seen.discard(uid)
    return frozenset(seen)


def parse_entities(
    schema: GovernanceSchema, entities: Iterable[Entity], base: cedarpy.Entities | None = None
) -> cedarpy.Entities:
    """Entities -> a Cedar handle, checked against the schema (which also adds the action entities)."""
    import cedarpy

    doc = json.dumps([dict(e.cedar) for e in entities])
    try:
        if base is None:
            return cedarpy.Entities.from_json_str(doc, schema.cedar)
        return base.with_added_json_str(doc, schema.cedar)
    except ValueError as e:
        raise RequestError(f"Cedar refused the entities: {e}", field="entities") from e


def string_set(value: Any) -> list[str]:
    """An attribute value as the strings of a Cedar ``Set<String>``: None and "" are empty, a string
    is one element, a mapping (tags as ``{key: value}``) gives both ``key`` and ``key=value``."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, Mapping):
        return sorted({str(k) for k in value} | {f"{k}={v}" for k, v in value.items() if v not in (None, "")})
    return [str(v) for v in value]
