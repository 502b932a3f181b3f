"""How a pipeline's streams appear in Dagster: asset keys, groups, owners, tags, descriptions.

Subclass :class:`OpenFuseTranslator` and override one small method to change one thing (as
with dagster-dlt's and dagster-sling's translators)::

    class MyTranslator(OpenFuseTranslator):
        def get_asset_key(self, pipeline, stream):
            return AssetKey(["warehouse", stream.table])

Default asset key: ``[workspace prefix, destination connector, namespace, table]``, e.g.
``postgres/analytics/orders``, or ``ws_1a2b3c4d/postgres/analytics/orders`` for a pipeline of
an API workspace:

* the **workspace prefix** (:meth:`OpenFuseTranslator.get_key_prefix`) is ``ws_`` plus the first
  8 hex digits of the pipeline's ``openfuse/workspace`` tag - the tag the API writes into every
  pipeline it exports from its metadata DB (``api/pipeline_export.py``; the same 8 digits end
  the job name). Two workspaces loading the same ``analytics.orders`` of their own warehouses
  then get two assets. Pipeline files without the tag get no prefix;
* the **namespace** is the destination's ``schema`` / ``schema_name`` / ``dataset`` setting (or
  the connector config model's default for it, e.g. ``public``); it is left out when the
  destination has none (``sqlite/orders``).

Key parts are reduced to letters, digits and underscores, which Dagster needs for the op output
names. The key names the *destination table*, so two pipelines loading the same table would
claim the same asset: :func:`openfuse_dagster.build_definitions` reports the second one as
broken. Override :meth:`~OpenFuseTranslator.get_key_prefix` (e.g. to return ``[]`` when every
workspace writes into its own warehouse anyway, or a team name) or
:meth:`~OpenFuseTranslator.get_asset_key` to change the scheme.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import AssetKey, AssetSpec, FreshnessPolicy, MetadataValue

from openfuse_connectors.registry import Registry, get_registry
from openfuse_connectors.spec import ConnectorRef, PipelineSpec, StreamSpec

__all__ = ["WORKSPACE_TAG", "OpenFuseTranslator", "build_openfuse_asset_specs", "destination_namespace"]

#: The pipeline tag naming its API workspace (written by the API's pipeline export).
WORKSPACE_TAG = "openfuse/workspace"

_NAMESPACE_KEYS = ("schema", "schema_name", "dataset")
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
# Dagster's rules for owners and strict tags (kept here: its validators are private API).
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,7}")
_TAG_KEY = re.compile(r"([A-Za-z0-9_.-]{1,63}/)?[A-Za-z0-9_.-]{1,63}")
_TAG_VALUE = re.compile(r"[A-Za-z0-9_.-]{0,63}")


def _valid_owner(owner: str) -> bool:
    return bool(_EMAIL.fullmatch(owner)) or (owner.startswith("team:") and len(owner) > 5)


def _valid_tag(key: str, value: str) -> bool:
    return bool(_TAG_KEY.fullmatch(key)) and bool(_TAG_VALUE.fullmatch(value))


def _part(text: str) -> str:
    return _UNSAFE.sub("_", text) or "_"


def destination_namespace(ref: ConnectorRef, registry: Registry | None = None) -> str | None:
    """The schema/dataset a destination writes into, or None when it has no such setting."""
    for k in _NAMESPACE_KEYS:
        v = ref.config.get(k)
        if isinstance(v, str) and v and "${" not in v:
            return v
    reg = registry or get_registry()
    conn = reg.connectors.get(ref.connector)
    model = conn.config_model if conn is not None else None
    if model is not None:
        for k in _NAMESPACE_KEYS:
            f = model.model_fields.get(k)
            if f is not None and isinstance(f.default, str) and f.default:
                return f.default
    return None


class OpenFuseTranslator:
    """Maps (pipeline, stream) to the attributes of the stream's destination-table asset."""

    def get_key_prefix(self, pipeline: PipelineSpec) -> Sequence[str]:
        """Parts before the destination's: ``[ws_<8 hex digits>]`` for a workspace's pipeline."""
        ws = pipeline.tags.get(WORKSPACE_TAG)
        if not ws:
            return []
        return [f"ws_{ws.replace('-', '').lower()[:8]}"]

    def get_asset_key(self, pipeline: PipelineSpec, stream: StreamSpec) -> AssetKey:
        ns = destination_namespace(pipeline.destination)
        parts = [
            *self.get_key_prefix(pipeline),
            pipeline.destination.connector,
            *([ns] if ns else []),
            stream.table,
        ]
        return AssetKey([_part(p) for p in parts])

    def get_group_name(self, pipeline: PipelineSpec, stream: StreamSpec) -> str | None:
        return pipeline.name

    def get_owners(self, pipeline: PipelineSpec, stream: StreamSpec) -> Sequence[str]:
        # Dagster accepts an e-mail address or `team:<name>`; other owner strings stay in metadata.
        return [pipeline.owner] if pipeline.owner and _valid_owner(pipeline.owner) else []

    def get_tags(self, pipeline: PipelineSpec, stream: StreamSpec) -> Mapping[str, str]:
        tags = {
            **pipeline.tags,
            "openfuse/pipeline": pipeline.name,
            "openfuse/mode": stream.mode.value,
            "openfuse/source": pipeline.source.connector,
        }
        # Pipeline tags that Dagster would refuse (spaces, long values) stay out of asset tags.
        return {k: v for k, v in tags.items() if _valid_tag(k, v)}

    def get_kinds(self, pipeline: PipelineSpec, stream: StreamSpec) -> set[str]:
        return {"openfuse", pipeline.destination.connector}

    def get_description(self, pipeline: PipelineSpec, stream: StreamSpec) -> str | None:
        return (
            f"Stream `{stream.name}` of {pipeline.source.connector} loaded into table `{stream.table}` "
            f"by OpenFuse pipeline `{pipeline.name}` ({stream.mode.value})."
        )

    def get_metadata(self, pipeline: PipelineSpec, stream: StreamSpec) -> Mapping[str, Any]:
        """Static metadata. Never connection settings: those may hold secrets."""
        meta: dict[str, Any] = {
            "openfuse/pipeline": pipeline.name,
            "openfuse/stream": stream.name,
            "openfuse/table": stream.table,
            "openfuse/mode": stream.mode.value,
            "openfuse/schema_drift": pipeline.schema_drift.value,
        }
        if stream.cursor_field:
            meta["openfuse/cursor_field"] = stream.cursor_field
        if stream.primary_key:
            meta["openfuse/primary_key"] = MetadataValue.json(list(stream.primary_key))
        if pipeline.owner:
            meta["openfuse/owner"] = pipeline.owner
        return meta

    def get_deps(self, pipeline: PipelineSpec, stream: StreamSpec) -> Sequence[AssetKey]:
        """Upstream assets. None by default: a source table is rarely a Dagster asset, and a
        guessed key could collide with a destination key. Override to chain pipelines."""
        return []

    def get_asset_spec(self, pipeline: PipelineSpec, stream: StreamSpec) -> AssetSpec:
        """The whole spec; override to change several attributes at once."""
        return AssetSpec(
            key=self.get_asset_key(pipeline, stream),
            deps=self.get_deps(pipeline, stream),
            description=self.get_description(pipeline, stream),
            metadata=self.get_metadata(pipeline, stream),
            group_name=self.get_group_name(pipeline, stream),
            owners=self.get_owners(pipeline, stream),
            tags=self.get_tags(pipeline, stream),
            kinds=self.get_kinds(pipeline, stream),
            freshness_policy=self.get_freshness_policy(pipeline, stream),
        )

    def get_freshness_policy(self, pipeline: PipelineSpec, stream: StreamSpec) -> FreshnessPolicy | None:
        """From the pipeline's ``freshness`` block, else its schedule (``openfuse_dagster.freshness``)."""
        from openfuse_dagster.freshness import freshness_policy

        return freshness_policy(pipeline)


def build_openfuse_asset_specs(
    pipeline: PipelineSpec, translator: OpenFuseTranslator | None = None
) -> list[AssetSpec]:
    """One :class:`~dagster.AssetSpec` per stream (= per destination table), in stream order."""
    t = translator or OpenFuseTranslator()
    return [t.get_asset_spec(pipeline, s) for s in pipeline.streams]
