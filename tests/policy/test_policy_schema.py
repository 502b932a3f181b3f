"""The Cedar schema is generated from the Python resource model, and Cedar accepts it."""

from __future__ import annotations

import datetime as dt
import json

import cedarpy
import pytest

from openfuse_policy.entities import EntityRef
from openfuse_policy.errors import RequestError
from openfuse_policy.schema import ACTIONS, OPENFUSE_SCHEMA, GovernanceSchema, cedar_datetime
from openfuse_policy.tiers import community_policies, role_actions


def test_generated_schema_parses_in_cedar_both_ways() -> None:
    doc = OPENFUSE_SCHEMA.to_json()
    cedarpy.Schema.from_json_str(json.dumps(doc))
    # Cedar renders it as its human format, which parses back into the same schema.
    text = OPENFUSE_SCHEMA.to_text()
    again = cedarpy.Schema.from_str(text)
    assert str(again) == text
    for name in ("Workspace", "Principal", "Connection", "Pipeline", "Dataset", "Stream", "Run"):
        assert f"entity {name}" in text
    assert "source_ip?: __cedar::ipaddr" in text and "now: __cedar::datetime" in text


def test_every_action_in_the_table_is_in_the_schema_with_its_resource_types() -> None:
    actions = OPENFUSE_SCHEMA.to_json()[""]["actions"]
    assert set(ACTIONS) <= set(actions)
    assert {"read", "write", "manage"} <= set(actions)  # the groups
    for name, a in ACTIONS.items():
        assert actions[name]["appliesTo"]["resourceTypes"] == list(a.resource_types)
    assert ACTIONS["pipeline:run"].resource_types == ("Pipeline",)
    assert ACTIONS["dataset:read"].resource_types == ("Dataset", "Stream")
    assert OPENFUSE_SCHEMA.actions_on("Run") == ("run:read", "run:cancel")
    assert len(ACTIONS) == 31


def test_the_builtin_policies_validate_against_the_generated_schema() -> None:
    result = cedarpy.validate_policies(community_policies().text(), OPENFUSE_SCHEMA.cedar)
    assert result.validation_passed, result.errors
    assert set(role_actions("viewer")) < set(role_actions("editor")) < set(role_actions("admin"))
    assert set(role_actions("admin")) == set(ACTIONS)


def test_a_new_attribute_in_the_model_reaches_the_cedar_schema() -> None:
    from dataclasses import replace

    from openfuse_policy.schema import STRING, Attribute

    types = tuple(
        replace(t, attributes=(*t.attributes, Attribute("cost_center", STRING)))
        if t.name == "Pipeline"
        else t
        for t in OPENFUSE_SCHEMA.entity_types
    )
    extended = GovernanceSchema(
        types, OPENFUSE_SCHEMA.actions, OPENFUSE_SCHEMA.action_groups, OPENFUSE_SCHEMA.context
    )
    assert "cost_center: __cedar::String" in extended.to_text()
    assert extended.fingerprint != OPENFUSE_SCHEMA.fingerprint


def test_the_model_refuses_dangling_references() -> None:
    with pytest.raises(ValueError, match="unknown type Nope"):
        GovernanceSchema(OPENFUSE_SCHEMA.entity_types, (replace_action("Nope"),))


def replace_action(resource: str):  # type: ignore[no-untyped-def]
    from openfuse_policy.schema import ActionDef

    return ActionDef("x:y", (resource,))


def test_entities_are_checked_against_the_model_with_named_errors() -> None:
    e = OPENFUSE_SCHEMA.entity("Pipeline", "p1", workspace="w1", owner="ann", tags=["b", "a", "a"])
    assert e.parents == (EntityRef("Workspace", "w1"),)
    assert e.cedar["attrs"]["owner"] == {"__entity": {"type": "Principal", "id": "ann"}}
    assert e.cedar["attrs"]["tags"] == ["a", "b"]
    with pytest.raises(RequestError, match="required attribute 'owner'"):
        OPENFUSE_SCHEMA.entity("Pipeline", "p1", workspace="w1", tags=[])
    with pytest.raises(RequestError, match="unknown attribute"):
        OPENFUSE_SCHEMA.entity("Pipeline", "p1", workspace="w1", owner="a", tags=[], colour="red")
    with pytest.raises(RequestError, match="must be a set"):
        OPENFUSE_SCHEMA.entity("Pipeline", "p1", workspace="w1", owner="a", tags="finance")
    with pytest.raises(RequestError, match="must be a Principal"):
        OPENFUSE_SCHEMA.entity("Pipeline", "p1", workspace="w1", owner=EntityRef("Workspace", "w1"), tags=[])
    with pytest.raises(RequestError, match="unknown entity type"):
        OPENFUSE_SCHEMA.entity("Table", "t")


def test_context_encoding_uses_cedar_extensions() -> None:
    enc = OPENFUSE_SCHEMA.encode_context(
        {
            "now": dt.datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC),
            "license_features": {"abac"},
            "source_ip": "10.0.0.1",
        }
    )
    assert enc["now"] == {"__extn": {"fn": "datetime", "arg": "2025-01-02T03:04:05.678Z"}}
    assert enc["source_ip"] == {"__extn": {"fn": "ip", "arg": "10.0.0.1"}}
    assert "workspace" not in enc
    with pytest.raises(RequestError, match="timezone-aware"):
        cedar_datetime(dt.datetime(2025, 1, 1))
    with pytest.raises(RequestError, match="IP address"):
        OPENFUSE_SCHEMA.encode_context({"now": 0, "license_features": [], "source_ip": "10.0.0.300"})
    assert EntityRef.parse('Pipeline::"a \\"b\\""') == EntityRef("Pipeline", 'a "b"')
    assert str(EntityRef("Pipeline", 'a "b"')) == 'Pipeline::"a \\"b\\""'
