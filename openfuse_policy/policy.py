"""Policies: Cedar text parsed once into an immutable model, validated against the schema.

:meth:`PolicySet.parse` (text) and :meth:`PolicySet.load` (a ``.cedar`` file or a folder of them)
parse with Cedar, validate every policy with Cedar's validator against the generated schema, and
refuse anything wrong with a :class:`PolicyValidationError` listing each problem with the policy
id, file and line, and Cedar's message (which names the attribute or type at fault).

Each :class:`Policy` keeps its id (the ``@id("...")`` annotation, or a positional ``policyN``), its
source text and line, effect, scope (used by the evaluator to slice), annotations and parsed
obligations. Templates (``?principal``) are not supported.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from openfuse_policy.entities import EntityRef
from openfuse_policy.errors import Diagnostic, PolicyValidationError
from openfuse_policy.obligation import OBLIGATION_ANNOTATION, Obligation, parse_obligations
from openfuse_policy.schema import OPENFUSE_SCHEMA, GovernanceSchema

if TYPE_CHECKING:
    import cedarpy

__all__ = ["ActionScope", "Policy", "PolicySet", "Scope", "split_policies"]

Effect = Literal["permit", "forbid"]


@dataclass(frozen=True, slots=True)
class Scope:
    """A principal or resource scope: ``any``, ``== E``, ``in E``, ``is T`` or ``is T in E``."""

    op: Literal["any", "eq", "in", "is", "is_in"]
    entity_type: str | None = None
    entity: EntityRef | None = None

    def __str__(self) -> str:
        return {
            "any": "any",
            "eq": f"== {self.entity}",
            "in": f"in {self.entity}",
            "is": f"is {self.entity_type}",
            "is_in": f"is {self.entity_type} in {self.entity}",
        }[self.op]


@dataclass(frozen=True, slots=True)
class ActionScope:
    """An action scope: ``any``, ``== A`` or ``in [A, ...]`` (``in A`` is ``in [A]``)."""

    op: Literal["any", "eq", "in"]
    actions: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.op == "any":
            return "any"
        names = ", ".join(f'Action::"{a}"' for a in self.actions)
        return f"== {names}" if self.op == "eq" else f"in [{names}]"


@dataclass(frozen=True, slots=True)
class Policy:
    """One parsed, validated policy."""

    id: str
    effect: Effect
    text: str
    source: str
    line: int
    principal: Scope
    action: ActionScope
    resource: Scope
    annotations: Mapping[str, str]
    obligations: tuple[Obligation, ...] = ()
    node: Any = field(default=None, repr=False, compare=False)  # cedarpy.pst.Template, id = self.id

    def __str__(self) -> str:
        return self.text


class PolicySet:
    """An immutable, validated set of policies with unique ids.

    Build with :meth:`parse` or :meth:`load`; combine with ``a + b``.
    """

    __slots__ = ("_by_id", "_policies", "_schema", "_version")

    def __init__(self, policies: Iterable[Policy] = (), *, schema: GovernanceSchema | None = None):
        self._schema = schema or OPENFUSE_SCHEMA
        self._policies = tuple(policies)
        by_id: dict[str, Policy] = {}
        dups = []
        for p in self._policies:
            if p.id in by_id:
                other = by_id[p.id]
                dups.append(
                    Diagnostic(
                        f"policy id {p.id!r} is also used at {other.source}:{other.line}; ids must be unique "
                        '(set @id("...") on one of them)',
                        policy_id=p.id,
                        source=p.source,
                        line=p.line,
                        kind="duplicate-id",
                    )
                )
            by_id[p.id] = p
        if dups:
            raise PolicyValidationError(dups)
        self._by_id: Mapping[str, Policy] = MappingProxyType(by_id)
        digest = hashlib.sha256()
        for p in self._policies:
            digest.update(f"{p.id}\0{p.text}\0".encode())
        self._version = digest.hexdigest()[:16]

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def parse(
        cls,
        text: str,
        *,
        source: str = "<string>",
        schema: GovernanceSchema | None = None,
        id_prefix: str = "",
    ) -> PolicySet:
        """Parse and validate Cedar policy text.

        Args:
            text: Cedar policies.
            source: a name for messages (a file path).
            schema: the model to validate against (default: OpenFuse's).
            id_prefix: prepended to positional ids of policies without ``@id``.

        Raises:
            PolicyValidationError: with one :class:`Diagnostic` per problem.
        """
        schema = schema or OPENFUSE_SCHEMA
        return cls(_parse(text, source, schema, id_prefix), schema=schema)

    @classmethod
    def load(cls, *paths: str | Path, schema: GovernanceSchema | None = None) -> PolicySet:
        """Load ``.cedar`` files, or every ``*.cedar`` under folders (sorted), as one set.

        Policies without ``@id`` get ``<file stem>.policyN`` ids.
        """
        schema = schema or OPENFUSE_SCHEMA
        files: list[Path] = []
        for p in map(Path, paths):
            files.extend(sorted(p.rglob("*.cedar")) if p.is_dir() else [p])
        policies: list[Policy] = []
        problems: list[Diagnostic] = []
        for f in files:
            try:
                text = f.read_text(encoding="utf-8")
            except OSError as e:
                problems.append(Diagnostic(f"cannot read: {e.strerror or e}", source=str(f), kind="parse"))
                continue
            try:
                policies.extend(_parse(text, str(f), schema, f"{f.stem}."))
            except PolicyValidationError as e:
                problems.extend(e.diagnostics)
        if problems:
            raise PolicyValidationError(problems, source=", ".join(map(str, paths)))
        return cls(policies, schema=schema)

    def __add__(self, other: PolicySet) -> PolicySet:
        if other.schema.fingerprint != self.schema.fingerprint:
            raise ValueError("cannot combine policy sets validated against different schemas")
        return PolicySet((*self._policies, *other._policies), schema=self._schema)

    # -- access -----------------------------------------------------------------------------

    @property
    def schema(self) -> GovernanceSchema:
        return self._schema

    @property
    def policies(self) -> tuple[Policy, ...]:
        return self._policies

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._by_id)

    @property
    def version(self) -> str:
        """A digest of ids and texts: names exactly which policies decided (for the audit log)."""
        return self._version

    def __len__(self) -> int:
        return len(self._policies)

    def __iter__(self) -> Iterator[Policy]:
        return iter(self._policies)

    def __contains__(self, policy_id: object) -> bool:
        return policy_id in self._by_id

    def __getitem__(self, policy_id: str) -> Policy:
        return self._by_id[policy_id]

    def get(self, policy_id: str) -> Policy | None:
        return self._by_id.get(policy_id)

    def text(self) -> str:
        """All policies as Cedar text, in order."""
        return "\n\n".join(p.text for p in self._policies)

    def filter(self, keep: Any) -> PolicySet:
        """A new set of the policies for which ``keep(policy)`` is true."""
        return PolicySet([p for p in self._policies if keep(p)], schema=self._schema)

    def to_cedar(self) -> cedarpy.PolicySet:
        """These policies as one Cedar handle, with our ids as Cedar's policy ids."""
        return cedar_handle(self._policies)

    def __repr__(self) -> str:
        return f"PolicySet({len(self)} policies, version={self._version})"


def cedar_handle(policies: Iterable[Policy]) -> cedarpy.PolicySet:
    """A Cedar policy set holding exactly these policies, under their OpenFuse ids."""
    import cedarpy
    from cedarpy import pst

    nodes = {p.id: p.node for p in policies}
    return cedarpy.PolicySet.from_pst(pst.PolicySet(templates={}, static_policies=nodes, template_links=()))


# -- parsing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Chunk:
    text: str
    line: int  # 1-based line of the chunk's first character
    offset: int


def split_policies(text: str) -> list[_Chunk]:
    """Split Cedar text into one chunk per policy (each ends with ``;`` outside strings/comments).

    Leading blank lines and ``//`` comments are not part of a chunk. Trailing text with no
    closing ``;`` becomes a last chunk, so Cedar reports it.
    """
    chunks: list[_Chunk] = []
    i, n = 0, len(text)
    start: int | None = None
    # Line numbers are counted from the previous chunk's start (counting from the top for every
    # chunk made parsing 10,000 policies take seconds).
    line, counted = 1, 0

    def line_of(pos: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, pos)
        counted = pos
        return line

    while i < n:
        c = text[i]
        if c == "/" and text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if start is None:
            if c.isspace():
                i += 1
                continue
            start = i
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            continue
        if c == ";":
            chunks.append(_Chunk(text[start : i + 1], line_of(start), start))
            start = None
        i += 1
    if start is not None and text[start:].strip():
        chunks.append(_Chunk(text[start:].rstrip(), line_of(start), start))
    return chunks


_ID_ANN = re.compile(r'@id\s*\(\s*"((?:[^"\\]|\\.)*)"\s*\)')
_BACKTICKED = re.compile(r"`([^`]+)`")
_PER_ACTION = re.compile(r'^(.*) for (Action::"[^"]*")$', re.DOTALL)
_EFFECT = re.compile(r"(?<![A-Za-z0-9_])(permit|forbid)\s*\(")


def _parse(text: str, source: str, schema: GovernanceSchema, id_prefix: str) -> list[Policy]:
    import cedarpy

    chunks = split_policies(text)
    try:
        tree = cedarpy.PolicySet.from_str(text).to_pst()
    except ValueError as e:
        raise PolicyValidationError(_locate_parse_errors(chunks, str(e), source), source=source) from None

    problems: list[Diagnostic] = []
    if tree.templates or tree.template_links:
        problems.append(
            Diagnostic(
                "policy templates (?principal/?resource) are not supported; write static policies",
                source=source,
                kind="unsupported",
            )
        )
    # Cedar numbers static policies policy0..policyN-1 in source order.
    nodes = sorted(tree.static_policies.items(), key=lambda kv: int(kv[0].removeprefix("policy")))
    if len(nodes) != len(chunks):  # pragma: no cover - our splitter disagrees with Cedar's parser
        chunks = [_Chunk(f"// (source text unavailable)\n{n.id}", 1, 0) for _, n in nodes]

    policies: list[Policy] = []
    cedar_id_to_ours: dict[str, tuple[str, _Chunk]] = {}
    for (cedar_id, node), chunk in zip(nodes, chunks, strict=True):
        annotations = dict(node.annotations)
        pid = annotations.get("id") or f"{id_prefix}policy{len(policies)}"
        cedar_id_to_ours[cedar_id] = (pid, chunk)
        obligations: tuple[Obligation, ...] = ()
        if OBLIGATION_ANNOTATION in annotations:
            try:
                obligations = parse_obligations(annotations[OBLIGATION_ANNOTATION])
            except ValueError as e:
                problems.append(_diag(str(e), pid, source, chunk, "annotation", find="@obligation"))
            if node.effect == "forbid":
                problems.append(
                    _diag(
                        "@obligation on a forbid policy has no effect (a forbid never lets data through); "
                        "put it on the permit",
                        pid,
                        source,
                        chunk,
                        "annotation",
                        find="@obligation",
                    )
                )
        policies.append(
            Policy(
                id=pid,
                effect=node.effect,
                text=chunk.text,
                source=source,
                line=chunk.line,
                principal=_scope(node.principal),
                action=_action_scope(node.action),
                resource=_scope(node.resource),
                annotations=MappingProxyType(annotations),
                obligations=obligations,
                node=dataclasses.replace(node, id=pid),
            )
        )

    result = cedarpy.validate_policies(text, schema.cedar)
    # Cedar repeats some errors once per action ("... for Action::\"x\""); say them once.
    grouped: dict[tuple[str, str], list[str]] = {}
    for err in result.errors:
        m = _PER_ACTION.match(err.error)
        message, action = (m.group(1), m.group(2)) if m else (err.error, "")
        grouped.setdefault((err.policy_id, message), []).append(action)
    for (cedar_id, message), actions in grouped.items():
        pid, chunk = cedar_id_to_ours.get(cedar_id, (None, None))  # type: ignore[assignment]
        find = next((t for t in _BACKTICKED.findall(message) if t != cedar_id), None)
        if pid is not None:
            message = message.replace(f"`{cedar_id}`", f"`{pid}`")
        named = [a for a in actions if a]
        if len(named) == 1:
            message += f" for {named[0]}"
        elif named:
            message += f" for {len(named)} actions ({', '.join(sorted(named))})"
        problems.append(_diag(message, pid, source, chunk, "validation", find=find))
    if problems:
        raise PolicyValidationError(problems, source=source)
    return policies


def _diag(
    message: str, pid: str | None, source: str, chunk: _Chunk | None, kind: str, *, find: str | None = None
) -> Diagnostic:
    """A diagnostic at the line where ``find`` first occurs in the policy, else where it starts."""
    line = None
    if chunk is not None:
        line = chunk.line
        if find:
            # Cedar quotes `Action::"x"` and `Type`; an attribute shows up as `.attr` or `has attr`.
            # Search the policy body only, not its annotations.
            body = _EFFECT.search(chunk.text)
            needle = find.split("::")[-1].strip('"')
            pattern = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(needle)}(?![A-Za-z0-9_])")
            m = pattern.search(chunk.text, body.start() if body else 0)
            if m:
                line = chunk.line + chunk.text.count("\n", 0, m.start())
    return Diagnostic(message, policy_id=pid, source=source, line=line, kind=kind)


def _locate_parse_errors(chunks: list[_Chunk], whole_error: str, source: str) -> list[Diagnostic]:
    import cedarpy

    out = []
    for i, chunk in enumerate(chunks):
        try:
            cedarpy.PolicySet.from_str(chunk.text)
        except ValueError as e:
            m = _ID_ANN.search(chunk.text)
            pid = m.group(1) if m else f"policy{i}"
            out.append(Diagnostic(f"{e}", policy_id=pid, source=source, line=chunk.line, kind="parse"))
    return out or [Diagnostic(whole_error, source=source, kind="parse")]


def _ref(uid: Any) -> EntityRef:
    if not hasattr(uid, "type"):  # a template slot
        raise ValueError("template slots are not supported")
    return EntityRef(str(uid.type), uid.id)


def _scope(node: Any) -> Scope:
    from cedarpy import pst

    if isinstance(node, pst.ScopeEq):
        return Scope("eq", None, _ref(node.entity))
    if isinstance(node, pst.ScopeIn):
        return Scope("in", None, _ref(node.entity))
    if isinstance(node, pst.ScopeIs):
        return Scope("is", str(node.entity_type))
    if isinstance(node, pst.ScopeIsIn):
        return Scope("is_in", str(node.entity_type), _ref(node.entity))
    return Scope("any")


def _action_scope(node: Any) -> ActionScope:
    from cedarpy import pst

    if isinstance(node, pst.ActionEq):
        return ActionScope("eq", (node.entity.id,))
    if isinstance(node, pst.ActionIn):
        return ActionScope("in", tuple(e.id for e in node.entities))
    return ActionScope("any")
