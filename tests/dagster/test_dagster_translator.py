"""Asset keys, groups and the rest come from an overridable translator."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import AssetKey

from openfuse_connectors import PipelineSpec, StreamSpec
from openfuse_dagster import (
    OpenFuseTranslator,
    build_definitions,
    build_openfuse_asset_specs,
    build_openfuse_check_specs,
    openfuse_assets,
)


def pipeline(destination_config: dict[str, str] | None = None, **extra: object) -> PipelineSpec:
    return PipelineSpec.model_validate(
        {
            "name": "crm",
            "source": {"connector": "postgres", "config": {"dsn": "${OF_TEST_DSN}"}},
            "destination": {
                "connector": "postgres",
                "config": destination_config or {"dsn": "${OF_TEST_DSN}"},
            },
            "streams": [
                {"name": "public.accounts"},
                {"name": "sales.deals", "destination_table": "deal_facts"},
            ],
            **extra,
        }
    )


def test_default_keys_groups_owners_and_tags() -> None:
    spec = pipeline(owner="data@example.com", tags={"team": "sales", "note": "has spaces, so not a tag"})
    a, d = build_openfuse_asset_specs(spec)
    # No schema configured: the connector's default schema names the namespace.
    assert a.key == AssetKey(["postgres", "public", "accounts"])
    assert d.key == AssetKey(["postgres", "public", "deal_facts"])
    assert a.group_name == "crm"
    assert a.owners == ["data@example.com"]
    assert a.tags["openfuse/pipeline"] == "crm" and a.tags["team"] == "sales" and "note" not in a.tags
    assert a.kinds == {"openfuse", "postgres"}
    assert a.metadata["openfuse/stream"] == "public.accounts"
    assert not any("dsn" in k for k in a.metadata)

    schema = build_openfuse_asset_specs(pipeline({"dsn": "${OF_TEST_DSN}", "schema": "crm-v2"}))
    assert schema[0].key == AssetKey(["postgres", "crm_v2", "accounts"])
    # Owners Dagster would refuse stay in metadata only.
    odd = build_openfuse_asset_specs(pipeline(owner="the data team"))[0]
    assert odd.owners == [] and odd.metadata["openfuse/owner"] == "the data team"


class WarehouseTranslator(OpenFuseTranslator):
    def get_asset_key(self, pipeline: PipelineSpec, stream: StreamSpec) -> AssetKey:
        return AssetKey(["warehouse", stream.table])

    def get_group_name(self, pipeline: PipelineSpec, stream: StreamSpec) -> str | None:
        return "landing"


def test_overrides_change_keys_groups_and_follow_into_checks_and_definitions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = pipeline()
    assets = openfuse_assets(spec, translator=WarehouseTranslator())
    keys = {AssetKey(["warehouse", "accounts"]), AssetKey(["warehouse", "deal_facts"])}
    assert set(assets.keys) == keys
    assert set(assets.group_names_by_key.values()) == {"landing"}
    assert {c.asset_key for c in build_openfuse_check_specs(spec, WarehouseTranslator())} == keys

    monkeypatch.setenv("OF_TEST_DSN", "postgresql://postgres@127.0.0.1/x")
    (tmp_path / "crm.yaml").write_text(
        "name: crm\n"
        "source: {connector: postgres, config: {dsn: '${OF_TEST_DSN}'}}\n"
        "destination: {connector: postgres, config: {dsn: '${OF_TEST_DSN}'}}\n"
        "streams: [{name: public.accounts}]\n",
        encoding="utf-8",
    )
    d = build_definitions(tmp_path, translator=WarehouseTranslator())
    assert d.resolve_asset_graph().get_all_asset_keys() == {AssetKey(["warehouse", "accounts"])}
