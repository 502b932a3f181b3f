"""Policies are parsed once into an immutable model; invalid ones are refused with Cedar's diagnostics."""

from __future__ import annotations

from pathlib import Path

import pytest

from openfuse_connectors.errors import ConfigError
from openfuse_policy.errors import PolicyValidationError
from openfuse_policy.obligation import Obligation
from openfuse_policy.policy import PolicySet, split_policies


def refused(text: str) -> PolicyValidationError:
    with pytest.raises(PolicyValidationError) as info:
        PolicySet.parse(text, source="t.cedar")
    assert isinstance(info.value, ConfigError)
    return info.value


def test_unknown_attribute_is_refused_naming_attribute_type_and_line() -> None:
    e = refused(
        '@id("ok")\npermit (principal, action == Action::"pipeline:read", resource);\n\n'
        '@id("owner-typo")\npermit (principal, action == Action::"pipeline:read", resource is Pipeline)\n'
        "when {\n  resource.ownr == principal\n};\n"
    )
    (d,) = e.diagnostics
    assert d.policy_id == "owner-typo" and d.kind == "validation"
    assert "ownr" in d.message and "Pipeline" in d.message
    assert d.line == 7 and d.source == "t.cedar"
    assert "t.cedar:7" in str(e)


def test_type_errors_and_unknown_actions_are_refused() -> None:
    e = refused(
        '@id("types")\npermit (principal, action == Action::"pipeline:read", resource is Pipeline)\n'
        "when { resource.tags.contains(3) };\n"
        '@id("action")\npermit (principal, action == Action::"pipeline:fly", resource);\n'
    )
    types = [d for d in e.diagnostics if d.policy_id == "types"]
    action = [d for d in e.diagnostics if d.policy_id == "action"]
    assert any("Long" in d.message and "String" in d.message for d in types)
    assert [d.line for d in action if "pipeline:fly" in d.message] == [5]


def test_optional_context_needs_has_and_is_reported_once_for_all_actions() -> None:
    e = refused('@id("ip")\npermit (principal, action, resource) when { context.source_ip.isLoopback() };')
    (d,) = e.diagnostics  # Cedar says it once per action; we say it once
    assert "source_ip" in d.message and "31 actions" in d.message


def test_parse_errors_name_the_policy_and_its_line() -> None:
    e = refused(
        '@id("fine")\npermit (principal, action, resource);\n\n@id("broken")\npermit (principal, action, resource) when { 1 + };\n'
    )
    (d,) = e.diagnostics
    assert d.kind == "parse" and d.policy_id == "broken" and d.line == 4


def test_duplicate_ids_bad_obligations_and_templates_are_refused() -> None:
    e = refused(
        '@id("a")\npermit (principal, action, resource);\n@id("a")\nforbid (principal, action, resource);'
    )
    assert e.diagnostics[0].kind == "duplicate-id" and "t.cedar:1" in e.diagnostics[0].message
    e = refused('@id("b") @obligation("blur:pii")\npermit (principal, action, resource);')
    assert e.diagnostics[0].kind == "annotation" and "blur:pii" in e.diagnostics[0].message
    e = refused('@id("c") @obligation("mask:pii")\nforbid (principal, action, resource);')
    assert "forbid" in e.diagnostics[0].message
    e = refused("permit (principal == ?principal, action, resource);")
    assert e.diagnostics[0].kind == "unsupported"


def test_model_keeps_ids_text_lines_scopes_and_obligations() -> None:
    text = (
        "// leading comment; with a semicolon\n"
        '@id("mask-pii")\n@obligation("mask:pii, hash:column:email")\n'
        'permit (principal in Workspace::"acme", action in [Action::"dataset:read", Action::"write"], '
        'resource is Dataset in Workspace::"acme")\nwhen { principal.team == "a;b" };\n'
        'forbid (principal == Principal::"eve", action, resource);\n'
    )
    ps = PolicySet.parse(text)
    assert ps.ids == ("mask-pii", "policy1")
    p = ps["mask-pii"]
    assert p.line == 2 and p.text.startswith('@id("mask-pii")') and p.text.endswith('"a;b" };')
    assert p.obligations == (Obligation("mask", "pii"), Obligation("hash", "email", "column"))
    assert str(p.principal) == 'in Workspace::"acme"'
    assert p.action.actions == ("dataset:read", "write")
    assert str(p.resource) == 'is Dataset in Workspace::"acme"'
    assert ps["policy1"].effect == "forbid" and ps["policy1"].line == 6
    assert len(split_policies(text)) == 2
    with pytest.raises(AttributeError):
        p.id = "x"  # type: ignore[misc]


def test_load_a_folder_prefixes_positional_ids_and_combines(tmp_path: Path) -> None:
    (tmp_path / "a.cedar").write_text('permit (principal, action == Action::"run:read", resource);\n')
    sub = tmp_path / "more"
    sub.mkdir()
    (sub / "b.cedar").write_text(
        '@id("b1")\nforbid (principal, action, resource) when { principal.team == "x" };\n'
    )
    ps = PolicySet.load(tmp_path)
    assert ps.ids == ("a.policy0", "b1")
    assert (ps + PolicySet.parse('@id("c")\npermit (principal, action, resource);')).ids[-1] == "c"
    with pytest.raises(PolicyValidationError, match="duplicate-id"):
        _ = ps + ps
    (sub / "c.cedar").write_text("permit (principal, action, resource) when { principal.nope };\n")
    with pytest.raises(PolicyValidationError) as info:
        PolicySet.load(tmp_path)
    assert info.value.diagnostics[0].source.endswith("c.cedar")
