"""The resource model OpenFuse authorizes against, and the Cedar schema generated from it.

This module is the single source of truth for *what can be governed*: entity types and their
attributes, the actions and which resource types each applies to (:data:`ACTIONS`, the table the
API maps routes onto), the action groups roles are built from, and the request context. The Cedar
schema is generated from it (:meth:`GovernanceSchema.to_json`), never written by hand, so a new
attribute is one line here and every policy is re-validated against it.

Entity types (no Cedar namespace, so policies read ``Pipeline``, ``Action::"pipeline:run"``):

========== ============================================================================
Workspace  the tenant; every other entity is ``in`` its workspace
Principal  a user or service account: workspace, team, roles, region, clearance
Connection a configured source/destination: workspace, owner, connector, region, tags
Pipeline   workspace, owner, tags
Dataset    a table/stream at a connection: workspace, connection, region, tags,
           columns (names) and column_tags (every tag on any column, e.g. ``pii``)
Stream     one stream of a pipeline: workspace, pipeline, connection, tags, columns,
           column_tags
Run        one pipeline run: workspace, pipeline, triggered_by
========== ============================================================================

Every entity's Cedar parent is its workspace (set from the ``workspace`` attribute by
:meth:`GovernanceSchema.entity`), so ``resource in principal.workspace`` is the isolation test.

Context (the same for every action): ``now`` (``datetime`` extension), ``license_features``
(``Set<String>``), and optionally ``source_ip`` (``ipaddr`` extension) and ``workspace`` (the
workspace the request addresses, e.g. from the URL). Optional attributes need ``context has x``
before use, as Cedar's validator insists.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from openfuse_policy.errors import RequestError

if TYPE_CHECKING:
    import cedarpy

    from openfuse_policy.entities import Entity

__all__ = [
    "ACTIONS",
    "ACTION_GROUPS",
    "BOOL",
    "DATETIME",
    "IPADDR",
    "LONG",
    "OPENFUSE_SCHEMA",
    "STRING",
    "ActionDef",
    "ActionGroup",
    "AttrType",
    "Attribute",
    "EntityTypeDef",
    "GovernanceSchema",
    "default_schema",
    "entity_of",
    "set_of",
]

Kind = Literal["String", "Long", "Boolean", "Set", "Entity", "Extension", "Record"]
_I64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True, slots=True)
class AttrType:
    """A Cedar attribute type. Build with the constants and helpers below, not directly."""

    kind: Kind
    element: AttrType | None = None  # Set
    name: str | None = None  # Entity type name, or Extension name (datetime, ipaddr)
    fields: tuple[Attribute, ...] = ()  # Record

    def to_json(self) -> dict[str, Any]:
        if self.kind == "Set":
            assert self.element is not None
            return {"type": "Set", "element": self.element.to_json()}
        if self.kind in ("Entity", "Extension"):
            return {"type": self.kind, "name": self.name}
        if self.kind == "Record":
            return {"type": "Record", "attributes": {a.name: a.to_json() for a in self.fields}}
        return {"type": self.kind}

    def __str__(self) -> str:
        if self.kind == "Set":
            return f"Set<{self.element}>"
        if self.kind in ("Entity", "Extension"):
            return str(self.name)
        if self.kind == "Record":
            return "{" + ", ".join(f"{a.name}: {a.type}" for a in self.fields) + "}"
        return self.kind

    def encode(self, value: Any, where: str) -> Any:
        """Python value -> Cedar JSON value, refusing values of the wrong type (naming ``where``)."""
        k = self.kind
        if k == "String":
            if not isinstance(value, str):
                raise RequestError(f"{where} must be a string", field=where, value=value)
            return value
        if k == "Long":
            if isinstance(value, bool) or not isinstance(value, int) or not _I64[0] <= value <= _I64[1]:
                raise RequestError(f"{where} must be a 64-bit integer", field=where, value=value)
            return value
        if k == "Boolean":
            if not isinstance(value, bool):
                raise RequestError(f"{where} must be true or false", field=where, value=value)
            return value
        if k == "Set":
            assert self.element is not None
            if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
                raise RequestError(
                    f"{where} must be a set (list) of {self.element}", field=where, value=value
                )
            items = [self.element.encode(v, f"{where}[]") for v in value]
            # Sets are unordered; a canonical order keeps entity JSON (and its comparisons) stable.
            uniq = {json.dumps(v, sort_keys=True): v for v in items}
            return [uniq[k_] for k_ in sorted(uniq)]
        if k == "Entity":
            return {"__entity": {"type": self.name, "id": _entity_id(value, str(self.name), where)}}
        if k == "Extension":
            if self.name == "datetime":
                return {"__extn": {"fn": "datetime", "arg": cedar_datetime(value, where)}}
            if self.name == "ipaddr":
                return {"__extn": {"fn": "ip", "arg": _ip(value, where)}}
            raise RequestError(f"{where}: unsupported extension type {self.name!r}")
        if k == "Record":
            if not isinstance(value, Mapping):
                raise RequestError(f"{where} must be a mapping", field=where, value=value)
            return encode_record(self.fields, value, where)
        raise RequestError(f"{where}: unsupported attribute type {k!r}")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class Attribute:
    """One attribute of an entity type, a record or the context."""

    name: str
    type: AttrType
    required: bool = True
    doc: str = ""

    def to_json(self) -> dict[str, Any]:
        out = self.type.to_json()
        if not self.required:
            out["required"] = False
        return out


STRING = AttrType("String")
LONG = AttrType("Long")
BOOL = AttrType("Boolean")
DATETIME = AttrType("Extension", name="datetime")
IPADDR = AttrType("Extension", name="ipaddr")


def set_of(element: AttrType) -> AttrType:
    return AttrType("Set", element=element)


def entity_of(type_name: str) -> AttrType:
    return AttrType("Entity", name=type_name)


@dataclass(frozen=True, slots=True)
class EntityTypeDef:
    """An entity type: its attributes and the types it can be a member of.

    ``parent_attributes`` name entity-valued attributes whose value also becomes a Cedar parent
    (``workspace`` for every type), so hierarchy and attributes cannot disagree.
    """

    name: str
    attributes: tuple[Attribute, ...] = ()
    member_of: tuple[str, ...] = ()
    parent_attributes: tuple[str, ...] = ()
    doc: str = ""

    def attribute(self, name: str) -> Attribute | None:
        return next((a for a in self.attributes if a.name == name), None)


@dataclass(frozen=True, slots=True)
class ActionDef:
    """One action: the principal and resource types it applies to, and its groups."""

    name: str
    resource_types: tuple[str, ...]
    groups: tuple[str, ...] = ()
    principal_types: tuple[str, ...] = ("Principal",)
    doc: str = ""


@dataclass(frozen=True, slots=True)
class ActionGroup:
    """An action group (a Cedar action other actions are ``in``); applies to nothing by itself."""

    name: str
    doc: str = ""


@dataclass(frozen=True)
class GovernanceSchema:
    """The Python resource model; generates the Cedar schema and encodes values for it."""

    entity_types: tuple[EntityTypeDef, ...]
    actions: tuple[ActionDef, ...]
    action_groups: tuple[ActionGroup, ...] = ()
    context: tuple[Attribute, ...] = ()
    _types: Mapping[str, EntityTypeDef] = field(init=False, repr=False, compare=False)
    _actions: Mapping[str, ActionDef] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        types = {t.name: t for t in self.entity_types}
        actions = {a.name: a for a in self.actions}
        groups = {g.name for g in self.action_groups}
        problems = []
        if len(types) != len(self.entity_types):
            problems.append("duplicate entity type names")
        if len(actions) != len(self.actions) or groups & set(actions):
            problems.append("duplicate action names")
        for t in self.entity_types:
            for ref in (*t.member_of, *_entity_refs(t.attributes)):
                if ref not in types:
                    problems.append(f"entity type {t.name} refers to unknown type {ref}")
            for p in t.parent_attributes:
                a = t.attribute(p)
                if a is None or a.type.kind != "Entity" or a.type.name not in t.member_of:
                    problems.append(f"{t.name}.{p} must be an entity attribute of a member_of type")
        for act in self.actions:
            for ref in (*act.resource_types, *act.principal_types):
                if ref not in types:
                    problems.append(f"action {act.name} applies to unknown type {ref}")
            for g in act.groups:
                if g not in groups:
                    problems.append(f"action {act.name} is in unknown group {g}")
        if problems:
            raise ValueError("invalid governance schema: " + "; ".join(problems))
        object.__setattr__(self, "_types", types)
        object.__setattr__(self, "_actions", actions)

    # -- generation -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The Cedar JSON schema (empty namespace)."""
        ctx = {"type": "Record", "attributes": {a.name: a.to_json() for a in self.context}}
        entity_types: dict[str, Any] = {}
        for t in self.entity_types:
            entry: dict[str, Any] = {
                "shape": {"type": "Record", "attributes": {a.name: a.to_json() for a in t.attributes}}
            }
            if t.member_of:
                entry["memberOfTypes"] = list(t.member_of)
            entity_types[t.name] = entry
        actions: dict[str, Any] = {g.name: {} for g in self.action_groups}
        for a in self.actions:
            actions[a.name] = {
                "appliesTo": {
                    "principalTypes": list(a.principal_types),
                    "resourceTypes": list(a.resource_types),
                    "context": ctx,
                },
                **({"memberOf": [{"id": g} for g in a.groups]} if a.groups else {}),
            }
        return {"": {"entityTypes": entity_types, "actions": actions}}

    def to_json_str(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True)

    def to_text(self) -> str:
        """The Cedar human-readable schema, rendered by Cedar from the generated JSON."""
        return str(self.cedar)

    @cached_property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:16]

    @cached_property
    def cedar(self) -> cedarpy.Schema:
        """The parsed Cedar schema handle (imports cedarpy on first use)."""
        import cedarpy

        try:
            return cedarpy.Schema.from_json_str(json.dumps(self.to_json()))
        except ValueError as e:  # a bug in the model above, not user input
            raise ValueError(f"generated Cedar schema does not parse: {e}") from e

    # -- lookups ----------------------------------------------------------------------------

    def entity_type(self, name: str) -> EntityTypeDef:
        try:
            return self._types[name]
        except KeyError:
            raise RequestError(
                f"unknown entity type {name!r}; known: {', '.join(sorted(self._types))}",
                field="type",
                value=name,
            ) from None

    def action(self, name: str) -> ActionDef:
        try:
            return self._actions[name]
        except KeyError:
            raise RequestError(
                f"unknown action {name!r}; known: {', '.join(sorted(self._actions))}",
                field="action",
                value=name,
            ) from None

    @property
    def action_names(self) -> tuple[str, ...]:
        return tuple(self._actions)

    def action_ancestors(self, name: str) -> frozenset[str]:
        """The groups an action is (transitively) in. Groups here are one level deep."""
        return frozenset(self.action(name).groups)

    def actions_on(self, resource_type: str) -> tuple[str, ...]:
        """Actions whose resource may be of ``resource_type``."""
        return tuple(a.name for a in self.actions if resource_type in a.resource_types)

    def actions_in_group(self, group: str) -> tuple[str, ...]:
        return tuple(a.name for a in self.actions if group in a.groups)

    @cached_property
    def _ancestor_types(self) -> Mapping[str, frozenset[str]]:
        out: dict[str, frozenset[str]] = {}
        for t in self.entity_types:
            seen: set[str] = set()
            todo = list(t.member_of)
            while todo:
                n = todo.pop()
                if n not in seen:
                    seen.add(n)
                    todo.extend(self._types[n].member_of)
            out[t.name] = frozenset(seen)
        return out

    def ancestor_types(self, type_name: str) -> frozenset[str]:
        """Entity types an entity of ``type_name`` can be (transitively) ``in``."""
        return self._ancestor_types.get(type_name, frozenset())

    # -- encoding ---------------------------------------------------------------------------

    def entity(self, type_name: str, id: str, /, **attrs: Any) -> Entity:
        """Build an entity, checking its attributes against the model.

        Entity-valued attributes take an id string (or an :class:`EntityRef`); the parent
        attributes (``workspace``) become the entity's Cedar parents. Example::

            OPENFUSE_SCHEMA.entity("Pipeline", "p1", workspace="w1", owner="alice", tags={"finance"})

        Raises:
            RequestError: unknown type or attribute, missing required attribute, wrong type.
        """
        from openfuse_policy.entities import Entity, EntityRef

        t = self.entity_type(type_name)
        if not isinstance(id, str) or not id:
            raise RequestError(f"{type_name} id must be a non-empty string", field="id", value=id)
        encoded = encode_record(t.attributes, attrs, type_name)
        parents = tuple(
            EntityRef(str(a.type.name), _entity_id(attrs[a.name], str(a.type.name), f"{type_name}.{a.name}"))
            for name in t.parent_attributes
            if (a := t.attribute(name)) is not None and attrs.get(name) is not None
        )
        return Entity.from_encoded(EntityRef(type_name, id), dict(attrs), encoded, parents)

    def encode_context(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Context values -> Cedar JSON, checked against the context attributes."""
        return encode_record(self.context, values, "context")


def encode_record(attributes: Iterable[Attribute], values: Mapping[str, Any], where: str) -> dict[str, Any]:
    attrs = {a.name: a for a in attributes}
    unknown = sorted(set(values) - set(attrs))
    if unknown:
        raise RequestError(
            f"{where}: unknown attribute(s) {', '.join(unknown)}; known: {', '.join(sorted(attrs)) or '(none)'}",
            field=f"{where}.{unknown[0]}",
            value=values[unknown[0]],
        )
    out: dict[str, Any] = {}
    for name, a in attrs.items():
        v = values.get(name)
        if v is None:
            if a.required:
                raise RequestError(
                    f"{where}: required attribute {name!r} ({a.type}) is missing", field=f"{where}.{name}"
                )
            continue
        out[name] = a.type.encode(v, f"{where}.{name}")
    return out


def cedar_datetime(value: Any, where: str = "datetime") -> str:
    """A timezone-aware datetime, ISO string or epoch seconds -> Cedar's ``datetime`` text."""
    if isinstance(value, bool):
        raise RequestError(f"{where} must be a datetime", field=where, value=value)
    if isinstance(value, int | float):
        value = dt.datetime.fromtimestamp(value, dt.UTC)
    elif isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise RequestError(f"{where} is not an ISO 8601 datetime", field=where, value=value) from None
        if value.tzinfo is None:
            raise RequestError(f"{where} needs a timezone (e.g. a trailing Z)", field=where, value=value)
    elif isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise RequestError(f"{where} must be timezone-aware", field=where, value=value)
    elif isinstance(value, dt.date):
        value = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    else:
        raise RequestError(f"{where} must be a datetime", field=where, value=value)
    u = value if value.tzinfo is dt.UTC else value.astimezone(dt.UTC)
    # Not strftime: this runs for every decision (``now``); strftime is ~5x slower, and glibc's
    # %Y does not zero-pad years before 1000.
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
        f".{u.microsecond // 1000:03d}Z"
    )


def _ip(value: Any, where: str) -> str:
    if isinstance(
        value, ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv4Network | ipaddress.IPv6Network
    ):
        return str(value)
    if isinstance(value, str):
        try:
            return str(
                ipaddress.ip_network(value, strict=False) if "/" in value else ipaddress.ip_address(value)
            )
        except ValueError:
            pass
    raise RequestError(f"{where} must be an IP address or CIDR range", field=where, value=value)


def _entity_id(value: Any, type_name: str, where: str) -> str:
    from openfuse_policy.entities import EntityRef

    if isinstance(value, EntityRef):
        if value.type != type_name:
            raise RequestError(
                f"{where} must be a {type_name}, not a {value.type}", field=where, value=str(value)
            )
        return value.id
    if isinstance(value, str) and value:
        return value
    raise RequestError(f"{where} must be a {type_name} id", field=where, value=value)


def _entity_refs(attributes: Iterable[Attribute]) -> Iterable[str]:
    for a in attributes:
        t: AttrType | None = a.type
        while t is not None and t.kind == "Set":
            t = t.element
        if t is not None and t.kind == "Entity":
            yield str(t.name)
        elif t is not None and t.kind == "Record":
            yield from _entity_refs(t.fields)


# -- the OpenFuse model ----------------------------------------------------------------------

_WS = Attribute("workspace", entity_of("Workspace"), doc="the workspace (tenant) it belongs to")
_TAGS = Attribute("tags", set_of(STRING), doc="free-form labels, e.g. finance, prod")
_COLUMNS = Attribute("columns", set_of(STRING), doc="column names")
_COLUMN_TAGS = Attribute("column_tags", set_of(STRING), doc="every tag carried by any column, e.g. pii")


def _resource(name: str, *attrs: Attribute, doc: str) -> EntityTypeDef:
    return EntityTypeDef(
        name, (_WS, *attrs), member_of=("Workspace",), parent_attributes=("workspace",), doc=doc
    )


_ENTITY_TYPES = (
    EntityTypeDef("Workspace", (Attribute("name", STRING, required=False),), doc="a tenant"),
    _resource(
        "Principal",
        Attribute("team", STRING),
        Attribute("roles", set_of(STRING), doc="admin, editor, viewer, or custom"),
        Attribute("region", STRING, doc="where the principal works from, e.g. eu"),
        Attribute("clearance", set_of(STRING), doc="data classes the principal may see, e.g. pii"),
        doc="a user or service account",
    ),
    _resource(
        "Connection",
        Attribute("owner", entity_of("Principal")),
        Attribute("connector", STRING, doc="connector name, e.g. postgres"),
        Attribute("region", STRING),
        _TAGS,
        doc="a configured source or destination",
    ),
    _resource("Pipeline", Attribute("owner", entity_of("Principal")), _TAGS, doc="a pipeline"),
    _resource(
        "Dataset",
        Attribute("connection", entity_of("Connection")),
        Attribute("region", STRING),
        _TAGS,
        _COLUMNS,
        _COLUMN_TAGS,
        doc="a table or topic at a connection",
    ),
    _resource(
        "Stream",
        Attribute("pipeline", entity_of("Pipeline")),
        Attribute("connection", entity_of("Connection")),
        _TAGS,
        _COLUMNS,
        _COLUMN_TAGS,
        doc="one stream of a pipeline",
    ),
    _resource(
        "Run",
        Attribute("pipeline", entity_of("Pipeline")),
        Attribute("triggered_by", entity_of("Principal")),
        doc="one run of a pipeline",
    ),
)

ACTION_GROUPS: tuple[ActionGroup, ...] = (
    ActionGroup("read", "look at things: viewer and up"),
    ActionGroup("write", "create, change, delete and run things: editor and up"),
    ActionGroup("manage", "govern the workspace (policies, audit log): admin"),
)


def _a(name: str, resources: tuple[str, ...], group: str, doc: str) -> ActionDef:
    return ActionDef(name, resources, groups=(group,), doc=doc)


_WSONLY = ("Workspace",)
_DATA = ("Dataset", "Stream")

#: action -> resource types. The API maps each route onto one of these.
_ACTION_DEFS = (
    _a("pipeline:create", _WSONLY, "write", "create a pipeline in a workspace"),
    _a("pipeline:read", ("Pipeline",), "read", "see a pipeline"),
    _a("pipeline:update", ("Pipeline",), "write", "change a pipeline"),
    _a("pipeline:delete", ("Pipeline",), "write", "delete a pipeline"),
    _a("pipeline:run", ("Pipeline",), "write", "start a run of a pipeline"),
    _a("connection:create", _WSONLY, "write", "create a connection in a workspace"),
    _a("connection:read", ("Connection",), "read", "see a connection (never its secrets)"),
    _a("connection:update", ("Connection",), "write", "change a connection"),
    _a("connection:delete", ("Connection",), "write", "delete a connection"),
    _a("dataset:read", _DATA, "read", "read rows of a dataset or stream"),
    _a("dataset:write", _DATA, "write", "write rows to a dataset or stream"),
    _a("run:read", ("Run",), "read", "see a run and its logs"),
    _a("run:cancel", ("Run",), "write", "cancel a run"),
    _a("policy:read", _WSONLY, "manage", "see the workspace's policies"),
    _a("policy:update", _WSONLY, "manage", "change the workspace's policies"),
    _a("audit:read", _WSONLY, "manage", "read the audit log"),
    _a("audit:export", _WSONLY, "manage", "export the audit log (license feature audit_export)"),
    _a("license:read", _WSONLY, "read", "see the license and feature flags"),
    # The API's remaining operations, one Cedar action each (the API maps its operations 1:1).
    _a("connector:list", _WSONLY, "read", "list the connector catalog"),
    _a("connector:read", _WSONLY, "read", "see one connector and its config schema"),
    _a("connection:list", _WSONLY, "read", "list a workspace's connections"),
    _a("connection:check", ("Connection",), "write", "connect with a connection's stored credentials"),
    _a("connection:discover", ("Connection",), "write", "list a connection's streams and their schemas"),
    _a("pipeline:list", _WSONLY, "read", "list a workspace's pipelines"),
    _a("pipeline:state_read", ("Pipeline",), "read", "see a pipeline's stream state and its history"),
    _a("pipeline:state_write", ("Pipeline",), "write", "set a stream's state"),
    _a("pipeline:state_reset", ("Pipeline",), "write", "reset a stream's state (the next run starts over)"),
    _a("pipeline:state_rollback", ("Pipeline",), "write", "roll a stream's state back to an earlier one"),
    _a("run:list", _WSONLY, "read", "list a workspace's runs"),
    _a("principal:read_self", ("Principal",), "read", "see one's own principal and attributes"),
    _a("policy:explain", _WSONLY, "manage", "ask why a request would be allowed or denied"),
)

_CONTEXT = (
    Attribute("now", DATETIME, doc="time of the request (the caller's clock; evaluation reads none)"),
    Attribute("license_features", set_of(STRING), doc="features the current license grants"),
    Attribute("source_ip", IPADDR, required=False, doc="client address, when there is a client"),
    Attribute("workspace", entity_of("Workspace"), required=False, doc="workspace the request addresses"),
)

OPENFUSE_SCHEMA = GovernanceSchema(
    entity_types=_ENTITY_TYPES, actions=_ACTION_DEFS, action_groups=ACTION_GROUPS, context=_CONTEXT
)

#: The action table: action name -> :class:`ActionDef` (resource types, groups, doc).
ACTIONS: Mapping[str, ActionDef] = {a.name: a for a in _ACTION_DEFS}


def default_schema() -> GovernanceSchema:
    """The OpenFuse resource model."""
    return OPENFUSE_SCHEMA
