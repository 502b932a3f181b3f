"""The entry-point registry: built-ins, a separately installed plugin, a broken plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from openfuse_connectors import ConfigError, ConnectorNotFoundError, PluginError
from openfuse_connectors.registry import get_registry, plugin_boundary

PLUGIN = Path(__file__).resolve().parents[1] / "plugins" / "openfuse_example_plugin"


def test_builtins_register_through_entry_points() -> None:
    reg = get_registry()
    assert {"postgres"} <= set(reg.connectors)
    assert reg.origins["postgres"] == "openfuse"
    assert set(reg.get("postgres").kinds) == {"source", "destination"}


def test_unknown_connector_lists_the_installed_ones() -> None:
    with pytest.raises(ConnectorNotFoundError, match=r"unknown connector 'nosuch'.*postgres"):
        get_registry().get("nosuch")


def test_config_errors_name_field_and_hide_secrets() -> None:
    with pytest.raises(ConfigError) as ei:
        get_registry().extractor("postgres", {})
    assert ei.value.field == "source.config.dsn" and "Field required" in str(ei.value)
    with pytest.raises(ConfigError) as ei:
        get_registry().loader("postgres", {"dsn": "postgresql://u:pw@h/d", "connect_timeout": "soon"})
    assert ei.value.field == "destination.config.connect_timeout" and "soon" in str(ei.value)
    assert "pw@" not in str(ei.value)


def test_config_json_schema_marks_secrets_write_only() -> None:
    model = get_registry().get("postgres").config_model
    assert model is not None and issubclass(model, BaseModel)
    schema = model.json_schema()  # type: ignore[attr-defined]
    assert schema["properties"]["dsn"]["writeOnly"] is True
    assert "dsn" in schema["required"]


def test_plugin_boundary_wraps_foreign_errors_and_names_the_plugin() -> None:
    with (
        pytest.raises(PluginError, match="plugin 'acme' failed during read: KeyError") as ei,
        plugin_boundary("acme", "read"),
    ):
        raise KeyError("x")
    assert isinstance(ei.value.__cause__, KeyError)


def test_separately_installed_plugin_is_found_and_broken_one_reported(tmp_path: Path) -> None:
    """pip-installs tests/plugins/openfuse_example_plugin into a target dir and lists connectors there."""
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(PLUGIN),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    code = (
        "import json; from openfuse_connectors.registry import Registry;"
        "from openfuse_connectors.engine import run_pipeline; from openfuse_connectors import parse_pipeline;"
        "r = Registry.from_entry_points();"
        "c = r.get('example_numbers');"
        "print(json.dumps({'names': sorted(r.connectors), 'broken': {k: v.error for k, v in r.broken.items()},"
        " 'feature': c.required_feature, 'kinds': list(c.kinds), 'origin': r.origins['example_numbers']}))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env, timeout=120
    )
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert "example_numbers" in info["names"] and "postgres" in info["names"]
    assert info["kinds"] == ["source"] and info["feature"] == "example_feature"
    assert info["origin"] == "openfuse-example-plugin"
    assert "example_broken" in info["broken"] and "broken on purpose" in info["broken"]["example_broken"]
    # Without the plugin on the path, it is simply not there.
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            code.replace("c = r.get('example_numbers');", "c=None;").replace(
                " 'feature': c.required_feature, 'kinds': list(c.kinds), 'origin': r.origins['example_numbers']",
                "",
            ),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "example_numbers" not in json.loads(out.stdout.strip().splitlines()[-1])["names"]
