"""Data-plane enforcement: may a pipeline's owner read this stream and write its table, and what
must happen to the rows on the way.

Before each stream of a run, :meth:`DataPlaneGate.check` asks two questions of the policies:

* ``dataset:read`` on the source dataset ``Dataset::"<source connector>/<stream>"``
* ``dataset:write`` on the destination dataset ``Dataset::"<destination connector>/<table>"``

as the pipeline's ``owner`` (a principal whose attributes - team, roles, region, clearance -
come from the gate's principal directory). Both datasets carry the stream's selected ``columns``
and ``column_tags`` (the union of the tags in ``StreamSpec.column_tags``) and the pipeline's tags.
A denial raises :class:`StreamDenied` (a fatal error: not retried) naming the deciding policy.
An allow may carry obligations (``@obligation("hash:pii")``); :class:`ObligationTransform`
resolves them against the actual columns (names and ``column_tags``) into one action per column -
drop, hash (salted SHA-256) or mask, the strongest winning - and runs as the *first* transform of
the stream, before the pipeline's own (so no user transform sees a clear value), and turns the
PostgreSQL pass-through off.

The gate is configured by a folder (:meth:`DataPlaneGate.from_dir`), plus any ``openfuse.policy``
extensions (:mod:`openfuse_policy.extensions`: attribute providers for owners the folder does not
list, policy stores adding policies)::

    governance/
      *.cedar            custom policies (beside the built-in community policies)
      principals.yaml    principals: {ann: {team: analytics, roles: [editor], clearance: []}, ...}

and the license (custom policies need ``abac``, obligations ``masking``). Hashing needs a salt:
``OPENFUSE_MASKING_SALT`` (a secret; never logged).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from openfuse_connectors.errors import ConfigError, FatalError
from openfuse_connectors.spec import PipelineSpec, StreamSpec
from openfuse_connectors.transformer import TransformContext, Transformer
from openfuse_policy.entities import string_set
from openfuse_policy.extensions import Extensions, load_extensions

if TYPE_CHECKING:
    from openfuse_connectors.registry import Registry
    from openfuse_policy.decision import Decision
    from openfuse_policy.entities import Entity
    from openfuse_policy.evaluator import Authorizer
    from openfuse_policy.license import LicenseState
    from openfuse_policy.obligation import Obligation

__all__ = ["MASKING_SALT_ENV", "DataPlaneGate", "ObligationTransform", "StreamDenied", "StreamGrant"]

MASKING_SALT_ENV = "OPENFUSE_MASKING_SALT"
DEFAULT_WORKSPACE = "default"


class StreamDenied(FatalError):
    """The pipeline's owner may not read the stream or write its table."""

    def __init__(self, message: str, *, decision: Decision):
        super().__init__(message)
        self.decision = decision


@dataclass
class StreamGrant:
    """What the policies allowed for one stream, and the obligations on its rows."""

    read: Decision
    write: Decision
    column_tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    transform: ObligationTransform | None = None

    @property
    def obligations(self) -> tuple[Obligation, ...]:
        return (*self.read.obligations, *self.write.obligations)

    @property
    def decision_ids(self) -> tuple[str, str]:
        return (self.read.decision_id, self.write.decision_id)

    def transformers(self, registry: Registry | None = None, salt: str | None = None) -> list[Transformer]:
        """The obligations as the stream's first transform (none when no obligation can apply)."""
        obs = self.obligations
        stream_tags = {t for tags in self.column_tags.values() for t in tags}
        if not obs or all(o.match == "tag" and o.target not in stream_tags for o in obs):
            return []
        self.transform = ObligationTransform(obs, self.column_tags, registry=registry, salt=salt)
        return [self.transform]

    def metadata(self) -> dict[str, Any]:
        """JSON-ready facts for the run's metadata (no attribute values, no secrets)."""
        return {
            "policy_decision_read": self.read.decision_id,
            "policy_decision_write": self.write.decision_id,
            "policy_allowed_by": sorted(set(self.read.determining) | set(self.write.determining)),
            "policy_obligations": [str(o) for o in self.obligations],
            "policy_columns": dict(self.transform.applied) if self.transform is not None else {},
            "policy_version": self.read.policy_version,
        }


class ObligationTransform(Transformer):
    """Applies a decision's obligations to the columns they name, resolved against the actual
    schema (column names, and the stream's ``column_tags``): drop, then hash (salted SHA-256),
    then mask - each through the registered ``drop``/``hash``/``mask`` transforms."""

    name = "policy_obligations"

    def __init__(
        self,
        obligations: Iterable[Obligation],
        column_tags: Mapping[str, Iterable[str]],
        *,
        registry: Registry | None = None,
        salt: str | None = None,
    ):
        super().__init__()
        self.obligations = tuple(obligations)
        self.column_tags = {c: tuple(t) for c, t in column_tags.items()}
        self.registry = registry
        self.salt = salt
        self.applied: dict[str, str] = {}
        self._ctx: TransformContext | None = None
        self._planned: pa.Schema | None = None
        self._steps: list[Transformer] = []

    @property
    def label(self) -> str:
        return "policy obligations"

    def setup(self, ctx: TransformContext) -> None:
        self._ctx = ctx

    def _plan(self, schema: pa.Schema) -> None:
        from openfuse_connectors.registry import get_registry
        from openfuse_policy.obligation import resolve_columns

        columns = resolve_columns(self.obligations, {n: self.column_tags.get(n, ()) for n in schema.names})
        by_kind: dict[str, list[str]] = {"drop": [], "hash": [], "mask": []}
        for column in schema.names:
            if column in columns:
                by_kind[columns[column]].append(column)
        if by_kind["hash"] and not self.salt:
            raise ConfigError(
                f"a policy obliges hashing columns {', '.join(by_kind['hash'])}; set {MASKING_SALT_ENV} "
                "to a secret salt",
                field=MASKING_SALT_ENV,
            )
        reg = self.registry or get_registry()
        steps: list[Transformer] = []
        for kind in ("drop", "hash", "mask"):
            if by_kind[kind]:
                opts: dict[str, Any] = {"columns": by_kind[kind]}
                if kind == "hash":
                    opts["salt"] = self.salt
                steps.append(reg.transformer(kind, opts))
        for t in steps:
            if self._ctx is not None:
                t.setup(self._ctx)
        self._steps, self._planned = steps, schema
        self.applied = dict(sorted(columns.items()))

    def transform_schema(self, schema: pa.Schema) -> pa.Schema:
        self._plan(schema)
        for t in self._steps:
            schema = t.transform_schema(schema)
        return schema

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if self._planned is None or not batch.schema.equals(self._planned):
            self._plan(batch.schema)
        for t in self._steps:
            batch = t.transform(batch)
        return batch


class DataPlaneGate:
    """Decides, per stream, with one :class:`~openfuse_policy.evaluator.Authorizer`."""

    def __init__(
        self,
        authorizer: Authorizer,
        principals: Mapping[str, Mapping[str, Any]],
        *,
        license_features: Iterable[str] = (),
        workspace: str = DEFAULT_WORKSPACE,
        extensions: Extensions | None = None,
    ):
        self.authorizer = authorizer
        self.extensions = extensions
        self.principals = {str(k): dict(v or {}) for k, v in principals.items()}
        self.features = frozenset(license_features)
        self.workspace = workspace

    @classmethod
    def from_dir(
        cls,
        path: str | Path,
        license: LicenseState,
        *,
        workspace: str = DEFAULT_WORKSPACE,
        extensions: Extensions | None = None,
    ) -> DataPlaneGate:
        """The gate for a governance folder (``*.cedar`` + ``principals.yaml``) under ``license``,
        plus the ``openfuse.policy`` extensions (policy stores, attribute providers; default: the
        installed ones).

        Raises:
            PolicyValidationError: a policy does not validate.
            FeatureNotLicensedError: custom policies without ``abac``, obligations without ``masking``.
            ConfigError: the folder or ``principals.yaml`` is missing or malformed.
        """
        import yaml

        from openfuse_policy.evaluator import Authorizer
        from openfuse_policy.policy import PolicySet
        from openfuse_policy.tiers import enforceable_policies

        root = Path(path)
        if not root.is_dir():
            raise ConfigError(f"governance folder {root} does not exist", field="policy_dir", value=str(root))
        extensions = extensions if extensions is not None else load_extensions()
        files = sorted(root.glob("*.cedar"))
        custom = PolicySet.load(*files) if files else None
        for name, store in extensions.policy_stores.items():
            more = PolicySet.parse(store.policies(), source=f"policy store {name!r}")
            custom = more if custom is None else custom + more
        policies = enforceable_policies(license, custom)
        principals_file = root / "principals.yaml"
        principals: Any = {}
        if principals_file.exists():
            try:
                doc = yaml.safe_load(principals_file.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"{principals_file}: invalid YAML: {e}", field="principals") from None
            principals = doc.get("principals", {}) if isinstance(doc, dict) else None
            if not isinstance(principals, dict):
                raise ConfigError(
                    f"{principals_file}: expected `principals: {{name: {{team, roles, ...}}}}`",
                    field="principals",
                )
        return cls(
            Authorizer(policies),
            principals,
            license_features=license.features,
            workspace=workspace,
            extensions=extensions,
        )

    # -- entities --------------------------------------------------------------------------

    def _principal(self, pipeline: PipelineSpec) -> Entity:
        from openfuse_policy.schema import OPENFUSE_SCHEMA

        owner = pipeline.owner
        if not owner:
            raise ConfigError(
                f"pipeline {pipeline.name!r} has no owner; governance decides as the owner "
                "(set `owner:` to a principal of principals.yaml)",
                field="owner",
            )
        attrs = self.principals.get(owner)
        if attrs is None and self.extensions is not None:
            found = self.extensions.principal_attributes(owner)
            attrs = dict(found[1]) if found is not None else None
        if attrs is None:
            raise ConfigError(
                f"pipeline {pipeline.name!r}: owner {owner!r} is not a known principal "
                f"(known: {', '.join(sorted(self.principals)) or 'none'})",
                field="owner",
                value=owner,
            )
        return OPENFUSE_SCHEMA.entity(
            "Principal",
            owner,
            workspace=self.workspace,
            team=str(attrs.get("team") or ""),
            roles=string_set(attrs.get("roles")),
            region=str(attrs.get("region") or ""),
            clearance=string_set(attrs.get("clearance")),
        )

    def _dataset(self, pipeline: PipelineSpec, stream: StreamSpec, *, side: str) -> Entity:
        from openfuse_policy.schema import OPENFUSE_SCHEMA

        ref = pipeline.source if side == "source" else pipeline.destination
        name = stream.name if side == "source" else stream.table
        columns = list(stream.columns or ()) or list(stream.column_tags)
        return OPENFUSE_SCHEMA.entity(
            "Dataset",
            f"{ref.connector}/{name}",
            workspace=self.workspace,
            connection=f"{pipeline.name}.{side}",
            region="",
            tags=string_set(pipeline.tags),
            columns=sorted(set(columns)),
            column_tags=sorted({t for tags in stream.column_tags.values() for t in tags}),
        )

    # -- decisions -------------------------------------------------------------------------

    def check(
        self, pipeline: PipelineSpec, stream: StreamSpec, *, now: dt.datetime | None = None
    ) -> StreamGrant:
        """Decide read and write for ``stream``; raise :class:`StreamDenied` when either is denied."""
        from openfuse_policy.decision import Context, Request
        from openfuse_policy.schema import OPENFUSE_SCHEMA

        principal = self._principal(pipeline)
        context = Context(
            now=now or dt.datetime.now(dt.UTC), license_features=self.features, workspace=self.workspace
        )
        ws = OPENFUSE_SCHEMA.entity("Workspace", self.workspace)
        read, write = self.authorizer.decide_batch(
            [
                Request(principal, "dataset:read", self._dataset(pipeline, stream, side="source"), context, (ws,)),
                Request(principal, "dataset:write", self._dataset(pipeline, stream, side="destination"), context, (ws,)),
            ]
        )  # fmt: skip
        for what, d in (("read", read), ("write", write)):
            if not d.allowed:
                why = (
                    f"forbidden by {', '.join(d.determining)}"
                    if d.determining
                    else "no policy permits it (default deny)"
                )
                errors = f"; evaluation errors: {'; '.join(d.errors)}" if d.errors else ""
                raise StreamDenied(
                    f"stream {stream.name!r} of pipeline {pipeline.name!r}: owner {pipeline.owner!r} may not "
                    f"{what} {d.resource} - {why}{errors} (decision {d.decision_id})",
                    decision=d,
                )
        return StreamGrant(read, write, dict(stream.column_tags))

    @staticmethod
    def salt() -> str | None:
        return os.environ.get(MASKING_SALT_ENV) or None
